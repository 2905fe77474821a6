"""convnp.textbook: the "Deep Learning from Scratch" API (ch. 5-8) running on convnp's own ops.

Layers with the book's signatures (``Convolution(W, b, stride, pad)``, ``Pooling``, ``Relu``, ``Sigmoid``,
``Affine``, ``SoftmaxWithLoss``, ``Dropout``, ``BatchNormalization``), its networks (``SimpleConvNet``,
``DeepConvNet``), optimizers (``SGD``, ``Momentum``, ``Nesterov``, ``AdaGrad``, ``RMSprop``, ``Adam``) and
``Trainer``. The arithmetic is convnp's (im2col convolution, strided max pooling, convnp.optim), so the
book's code runs faster, on CuPy arrays too, and ``network.to_model()`` gives a regular convnp model.

    from convnp.data import load_mnist
    from convnp.textbook import SimpleConvNet, Trainer

    (x_train, t_train), (x_test, t_test) = load_mnist(flatten=False)
    network = SimpleConvNet(input_dim=(1, 28, 28), conv_param={'filter_num': 30, 'filter_size': 5,
                            'pad': 0, 'stride': 1}, hidden_size=100, output_size=10, weight_init_std=0.01)
    trainer = Trainer(network, x_train, t_train, x_test, t_test, epochs=20, mini_batch_size=100,
                      optimizer='Adam', optimizer_param={'lr': 0.001}, evaluate_sample_num_per_epoch=1000)
    trainer.train()
    network.save_params("params.npz")
"""
from .layers import (Affine, BatchNormalization, Convolution, Dropout, Pooling, Relu, Sigmoid, SoftmaxWithLoss,
                     StableSoftmaxWithLoss, cross_entropy_error, softmax)
from .networks import DeepConvNet, SimpleConvNet
from .optimizers import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop, get_textbook_optimizer
from .trainer import Trainer
from .convert import layers_to_model

__all__ = ["Convolution", "Pooling", "Relu", "Sigmoid", "Affine", "SoftmaxWithLoss", "StableSoftmaxWithLoss",
           "softmax", "cross_entropy_error", "Dropout",
           "BatchNormalization", "SimpleConvNet", "DeepConvNet", "SGD", "Momentum", "Nesterov", "AdaGrad",
           "RMSprop", "Adam", "get_textbook_optimizer", "Trainer", "layers_to_model"]
