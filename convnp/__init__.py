"""convnp: convolutional neural networks in plain, readable NumPy (CuPy on a GPU).

    import convnp
    from convnp import nn
    model = nn.Sequential([nn.Conv2D(30, 5, activation="relu"), nn.MaxPool2D(2), nn.Flatten(),
                           nn.Dense(100, activation="relu"), nn.Dense(10)])
"""
from . import backend, functional, nn, data, models
from .backend import no_grad, get_array_module, to_device, to_numpy
from . import signal  # 2-D correlate/convolve as in SciPy, named kernels
from . import optim  # optimizers, learning-rate schedules, gradient clipping
from . import train  # the fit loop; gives nn.Sequential and the zoo models compile/fit/predict/save
from .train import Model  # class Net(convnp.Model, nn.Module): a network of your own with fit/predict/save
from . import viz  # plots; matplotlib is imported only when one is drawn
from .io.checkpoint import load  # convnp.load(path): a checkpoint or saved model, ready for predict

functional_ = functional
F = functional

from ._version import __version__  # noqa: E402
__all__ = ["backend", "functional", "F", "nn", "data", "models", "train", "Model", "no_grad", "get_array_module", "to_device", "to_numpy"]
