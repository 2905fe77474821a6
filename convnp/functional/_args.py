"""Kept for ``functional/conv.py`` until it imports :mod:`convnp.utils.args` itself (then delete this file)."""
from ..utils.args import int_pair, pair  # noqa: F401
