"""`convnp summary NAME` builds each zoo model at the input size it is made for."""
import pytest

from convnp.cli import main
from convnp.models.registry import default_input_shape


@pytest.mark.parametrize("name,params", [("resnet18", "11,689,512"), ("lenet5", "61,706"),
                                         ("resnet20_cifar", "269,722"), ("simple_convnet", "433,890")])
def test_summary_of_zoo_models_uses_their_input_size(capsys, name, params):
    assert main(["summary", name]) == 0
    out = capsys.readouterr().out
    assert f"Total params: {params}" in out


def test_default_input_shapes():
    assert default_input_shape("vgg16") == (3, 224, 224)
    assert default_input_shape("simple_convnet") == (1, 28, 28)
    assert default_input_shape("resnet18_cifar", in_channels=1, input_size=28) == (1, 28, 28)
