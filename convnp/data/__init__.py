"""Data sets, loaders and transforms."""
from .mnist import load_mnist, MNIST_DIR
from .idx import read_idx, verify_checksum, sha256_of

__all__ = ["load_mnist", "MNIST_DIR", "read_idx", "verify_checksum", "sha256_of"]
