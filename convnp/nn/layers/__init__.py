"""Layers, one kind per file (thin wrappers over convnp.functional)."""
from .activation import Activation, ReLU, LeakyReLU, ELU, Sigmoid, Tanh, Softmax, LogSoftmax, get_activation_layer
from .dense import Dense, Flatten
from .conv import Conv2D, DepthwiseConv2D, Conv2DTranspose
from .padding import ZeroPadding2D, Padding2D
from .pooling import MaxPool2D, AvgPool2D, MaxUnpool2D, GlobalAvgPool2D, GlobalMaxPool2D, AdaptiveAvgPool2D
from .normalization import BatchNorm2D, BatchNorm1D, LocalResponseNorm
from .dropout import Dropout

__all__ = ["Activation", "ReLU", "LeakyReLU", "ELU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax",
           "get_activation_layer", "Dense", "Flatten"]
__all__ += ["Conv2D", "DepthwiseConv2D", "Conv2DTranspose", "ZeroPadding2D", "Padding2D"]
__all__ += ["MaxPool2D", "AvgPool2D", "MaxUnpool2D", "GlobalAvgPool2D", "GlobalMaxPool2D", "AdaptiveAvgPool2D"]
__all__ += ["BatchNorm2D", "BatchNorm1D", "LocalResponseNorm"]
__all__ += ["Dropout"]
