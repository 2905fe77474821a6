"""argparse ``type=`` functions that refuse bad values at parse time, naming the value received.

argparse adds the flag: ``convnp evaluate: error: argument --batch-size: must be a positive integer, got '-5'``
(exit status 2). Example: ``p.add_argument("--lr", type=positive_float)``.
"""
from __future__ import annotations

import argparse
import math
import os


def _number(text, kind):
    try:
        return kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a number'}, got {text!r}") \
            from None


def positive_int(text) -> int:
    """An integer >= 1 (batch sizes, epochs, subsets, top-k)."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def non_negative_int(text) -> int:
    """An integer >= 0 (seeds: NumPy refuses negative ones)."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def port_number(text) -> int:
    """A TCP port 0..65535 (0: any free port)."""
    value = _number(text, int)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 0..65535, got {text!r}")
    return value


def positive_float(text) -> float:
    """A finite number > 0 (learning rates, timeouts); refuses nan and inf."""
    value = _number(text, float)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def fraction(text) -> float:
    """A number in [0, 1) (0 turns the feature off; validation split); refuses nan."""
    value = _number(text, float)
    if not (0.0 <= value < 1.0):
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1), got {text!r}")
    return value


def check_writable_dir(path, flag: str = "--out") -> str:
    """Create ``path`` (a folder) if needed and prove it writable by creating and removing a file in it, so
    a bad ``--out`` fails before training rather than after the first epoch. Raises OSError naming the flag."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".convnp-write-test-{os.getpid()}")
        with open(probe, "wb"):
            pass
        os.remove(probe)
    except OSError as e:
        raise OSError(f"{flag} {path} is not a writable folder ({e.strerror or e})") from None
    return path
