"""LeNet-5, AlexNet and VGG: paper/torchvision parameter counts and keys, equality with torch.nn references,
config and checkpoint round trips, errors."""
import json

import numpy as np
import pytest

import convnp
from convnp import models
from convnp.nn import module_from_config, module_to_config

torch = pytest.importorskip("torch")
from zoo_torch_refs import TAlexNet, TVGG, as_np, copy_into  # noqa: E402


def test_every_registered_zoo_model_has_a_paper_docstring():
    for name in ["lenet5", "lenet5_modern", "alexnet", "alexnet_paper", "vgg11", "vgg13", "vgg16", "vgg19", "vgg16_bn",
                 "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "preact_resnet18", "resnet18_cifar",
                 "resnet20_cifar", "densenet121", "densenet169"]:
        doc = models.MODELS[name].__doc__
        assert doc and any(y in doc for y in ("1998", "2012", "2015", "2016", "2017")), name


def test_lenet5_paper_layout_and_shapes():
    m = models.lenet5()
    assert m.num_parameters() == 61_706
    assert list(m.state_dict())[:2] == ["c1.weight", "c1.bias"]
    assert m.c1.act.name == "tanh" and type(m.s2).__name__ == "AvgPool2D"
    text = m.summary((1, 32, 32), print_fn=None)
    assert "(None, 6, 28, 28)" in text and "(None, 16, 5, 5)" in text and "(None, 120, 1, 1)" in text
    assert m(np.zeros((3, 1, 32, 32), np.float32)).shape == (3, 10)
    assert models.lenet5(activation="sigmoid").c3.act.name == "sigmoid"
    modern = models.lenet5_modern()
    assert type(modern.s2).__name__ == "MaxPool2D" and modern.c1.act.name == "relu"
    assert modern(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)
    with pytest.raises(ValueError, match="lenet5: input_size must be 32 .* or 28 .* got 64"):
        models.lenet5(input_size=64)
    with pytest.raises(ValueError, match="pooling must be 'avg'"):
        models.lenet5(pooling="median")


@pytest.fixture(scope="module")
def alex():
    return models.alexnet()


def test_alexnet_count_keys_and_torch_equality(alex):
    assert alex.num_parameters() == 61_100_840
    keys = [k for k in alex.state_dict() if k.endswith("weight")]
    assert keys == ["features.0.weight", "features.3.weight", "features.6.weight", "features.8.weight",
                    "features.10.weight", "classifier.1.weight", "classifier.4.weight", "classifier.6.weight"]
    torch.manual_seed(0)
    ref = TAlexNet().eval()
    copy_into(alex, ref).eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 67, 67)).astype(np.float32)  # adaptive pool: small inputs
    np.testing.assert_allclose(alex(x), as_np(ref(torch.from_numpy(x))), rtol=1e-4, atol=1e-5)


def test_alexnet_paper_structure():
    m = models.alexnet_paper()
    assert m.num_parameters() == 60_965_224
    # groups=1 adds the weights that cross the two GPUs in conv2, conv4, conv5
    full = sum(p.size for k, p in m.state_dict().items() if k.split(".")[1] in ("conv2", "conv4", "conv5")
               and k.endswith("weight"))
    assert m.num_parameters() + full == 62_378_344
    f = m.features
    assert f.conv1.filters == 96 and f.conv1.kernel_size == (11, 11) and f.conv1.strides == (4, 4)
    assert np.all(np.array(f.pool1.pool_size) == 3) and np.all(np.array(f.pool1.strides) == 2)  # overlapping
    assert type(f.norm1).__name__ == "LocalResponseNorm" and type(f.norm2).__name__ == "LocalResponseNorm"
    assert m.classifier.drop6.rate == 0.5
    assert np.all(f.conv2.bias.data == 1) and np.all(f.conv1.bias.data == 0)
    text = m.summary((3, 227, 227), print_fn=None)
    assert "(None, 96, 55, 55)" in text and "(None, 256, 6, 6)" in text
    with pytest.raises(ValueError, match="alexnet_paper: groups must be 1 or 2"):
        models.alexnet_paper(groups=4)


@pytest.fixture(scope="module")
def vgg16():
    return models.vgg16()


def test_vgg16_count_and_keys(vgg16):
    assert vgg16.num_parameters() == 138_357_544
    weights = [k for k in vgg16.state_dict() if k.endswith("weight")]
    assert weights[:3] == ["features.0.weight", "features.2.weight", "features.5.weight"]
    assert weights[-3:] == ["classifier.0.weight", "classifier.3.weight", "classifier.6.weight"]
    assert vgg16.state_dict()["features.28.weight"].shape == (512, 512, 3, 3)


def test_vgg_bn_adds_two_parameters_per_conv_channel():
    # vgg16_bn = 138,357,544 + 2 * 4,224 = 138,365,992 at full width; checked cheaply at 1/16 width
    small, small_bn = models.vgg16(width=1 / 16), models.vgg16_bn(width=1 / 16)
    channels = sum(p.shape[0] for k, p in small.state_dict().items() if k.startswith("features") and p.ndim == 4)
    assert small_bn.num_parameters() - small.num_parameters() == 2 * channels
    assert 138_357_544 + 2 * 4_224 == 138_365_992


@pytest.mark.parametrize("depth,bn", [(11, False), (16, True)])
def test_vgg_reduced_width_matches_torch(depth, bn):
    torch.manual_seed(0)
    ref = TVGG(depth, bn, num_classes=6, width=1 / 16).double()
    name = f"vgg{depth}" + ("_bn" if bn else "")
    ours = copy_into(models.get_model(name, num_classes=6, width=1 / 16).astype(np.float64), ref)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32))
    np.testing.assert_allclose(ours.eval()(x), as_np(ref.eval()(torch.from_numpy(x))), rtol=1e-8, atol=1e-10)
    if bn:  # train-mode BN in the features (the classifier's dropout is random)
        np.testing.assert_allclose(ours.features.train()(x), as_np(ref.features.train()(torch.from_numpy(x))),
                                   rtol=1e-8, atol=1e-10)


def test_vgg_errors():
    from convnp.models.vgg import vgg_features
    with pytest.raises(ValueError, match="vgg: depth must be one of"):
        vgg_features(12)


def test_zoo_model_round_trips_through_config_and_weights(tmp_path):
    m = models.vgg11(num_classes=3, width=1 / 32, seed=0)
    cfg = json.loads(json.dumps(module_to_config(m)))
    assert cfg == {"factory": "vgg11", "config": {"num_classes": 3, "width": 1 / 32, "seed": 0}}
    rebuilt = module_from_config(cfg)
    from convnp.io.weights import save_weights
    save_weights(m, tmp_path / "w.safetensors")
    rebuilt.load_weights(tmp_path / "w.safetensors")
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(rebuilt.eval()(x), m.eval()(x))


def test_checkpoint_save_and_load_when_available(tmp_path):
    if not hasattr(convnp, "load"):
        pytest.skip("convnp.load (checkpoints) not available yet")
    m = models.resnet20_cifar(num_classes=4, seed=0)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    m.eval()
    expected = m(x)
    m.save(str(tmp_path / "r20"))
    files = list(tmp_path.iterdir())
    loaded = convnp.load(str(files[0]))
    np.testing.assert_allclose(loaded.eval()(x), expected, rtol=1e-6)
    # models built from classes rather than factories rebuild from their layer configs
    from convnp.models.densenet import densenet
    from convnp.models.resnet import ResNet
    for i, m in enumerate([ResNet("preact", (1, 1), 3, 3, (4, 8), stem="cifar", seed=0),
                           densenet((1, 2), 4, 8, 2, num_classes=3, seed=0)]):
        m.eval()
        expected = m(x)
        m.save(str(tmp_path / f"m{i}.npz"))
        np.testing.assert_allclose(convnp.load(str(tmp_path / f"m{i}.npz")).eval()(x), expected, rtol=1e-6)
