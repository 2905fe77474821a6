"""Small helpers every layer of convnp may import (they import nothing of convnp): argument checking."""
from .args import int_pair, pair, positive_int

__all__ = ["int_pair", "pair", "positive_int"]
