"""Layers, one kind per file (thin wrappers over convnp.functional)."""
from .activation import Activation, ReLU, LeakyReLU, ELU, Sigmoid, Tanh, Softmax, LogSoftmax, get_activation_layer
from .dense import Dense, Flatten

__all__ = ["Activation", "ReLU", "LeakyReLU", "ELU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax",
           "get_activation_layer", "Dense", "Flatten"]
