"""Data sets, loaders and transforms."""
from .mnist import load_mnist, MNIST_DIR
from .idx import read_idx, verify_checksum, sha256_of
from .dataset import Dataset, ArrayDataset, Subset, as_dataset, random_split
from .loader import DataLoader
from . import transforms
from .datasets import load_fashion_mnist, load_cifar10, load_dataset, dataset_info, download_file, data_home

__all__ = ["load_mnist", "MNIST_DIR", "read_idx", "verify_checksum", "sha256_of",
           "Dataset", "ArrayDataset", "Subset", "as_dataset", "random_split", "DataLoader", "transforms",
           "load_fashion_mnist", "load_cifar10", "load_dataset", "dataset_info", "download_file", "data_home"]
