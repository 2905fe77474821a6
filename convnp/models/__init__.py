"""The model zoo: ``convnp.models.NAME()`` or ``get_model("NAME")``; one family per file."""
from .registry import MODELS, get_model, list_models, register_model

# Families register themselves on import; add one import line per family file.
from . import lenet, vgg, resnet, densenet  # noqa: F401,E402  (model zoo, issue 6)
from .alexnet import alexnet, alexnet_paper  # noqa: F401,E402  (models.alexnet is the factory, not the file)
from .imagenet import preprocess_imagenet, decode_predictions, imagenet_class_names  # noqa: E402
from . import textbook_nets  # noqa: F401,E402  (simple_convnet, deep_convnet, mnist_best; issue 4)
from . import export  # noqa: F401,E402  (ONNX exporters of the ResNet/DenseNet blocks, in nn.serialize.EXPORTERS)

__all__ = ["MODELS", "get_model", "list_models", "register_model"]


def __getattr__(name):
    if name in MODELS:
        return MODELS[name]
    raise AttributeError(f"module 'convnp.models' has no attribute {name!r}")
