"""ResNet family: torchvision keys and parameter counts, equality with plain torch.nn references (eval and
train-mode BN, forward and input/parameter gradients), block gradient checks, CIFAR and pre-activation variants."""
import numpy as np
import pytest

import convnp
from convnp import models
from convnp.gradcheck import check_module_gradients
from convnp.models.resnet import BasicBlock, Bottleneck, PreActBlock, ResNet, ZeroPadShortcut

torch = pytest.importorskip("torch")
from torch_oracle import assert_matches_torch  # noqa: E402
from zoo_torch_refs import TResNet, as_np, copy_into, randomize_bn  # noqa: E402

PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_counts_equal_torchvision(name):
    assert models.get_model(name).num_parameters() == PARAMS[name]


def test_resnet18_keys_are_torchvision_keys():
    sd = models.resnet18().state_dict()
    keys = list(sd)
    assert keys[:6] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                        "bn1.num_batches_tracked"]
    assert keys[-2:] == ["fc.weight", "fc.bias"]
    for k in ["layer1.0.conv1.weight", "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var",
              "layer4.1.bn2.bias"]:
        assert k in sd
    assert "layer1.0.downsample.0.weight" not in sd  # identity shortcut: no projection
    assert len(keys) == 122  # torchvision resnet18().state_dict() has 122 entries
    assert sd["layer3.0.downsample.0.weight"].shape == (256, 128, 1, 1)


def test_bottleneck_keys_and_shapes():
    sd = models.resnet50().state_dict()
    assert len(sd) == 320  # torchvision resnet50
    assert sd["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert sd["layer1.0.conv3.weight"].shape == (256, 64, 1, 1)
    assert sd["fc.weight"].shape == (1000, 2048)


def _pair(block, layers, widths, stem="imagenet", shortcut="B", num_classes=7, seed=0):
    torch.manual_seed(seed)
    ref = randomize_bn(TResNet(block, layers, num_classes, 3, widths, stem, shortcut), seed).double()
    ours = ResNet(block, layers, num_classes, 3, widths, stem, shortcut, seed=seed).astype(np.float64)
    return copy_into(ours, ref), ref


CASES = [("basic", (1, 1, 1, 1), (4, 8, 8, 16), "imagenet", "B"),
         ("bottleneck", (1, 2), (4, 8), "imagenet", "B"),
         ("preact", (2, 1), (4, 8), "cifar", "B"),
         ("basic", (2, 2), (4, 8), "cifar", "A")]


@pytest.mark.parametrize("block,layers,widths,stem,shortcut", CASES)
def test_matches_torch_eval_and_train(block, layers, widths, stem, shortcut):
    ours, ref = _pair(block, layers, widths, stem, shortcut)
    x = np.random.default_rng(1).standard_normal((3, 3, 33, 35))
    ref.eval()
    np.testing.assert_allclose(ours.eval()(x), as_np(ref(torch.from_numpy(x))), rtol=1e-9, atol=1e-10)
    # train mode: batch statistics, and the running statistics move the same way; gradients agree
    ref.train()
    ours.train()
    ours.zero_grad()
    assert_matches_torch(ours, ref, x, rtol=1e-8, atol=1e-9, param_rtol=1e-7, seed=2)
    ref_state = ref.state_dict()
    for name, value in ours.state_dict().items():
        if "running" in name:
            np.testing.assert_allclose(value, as_np(ref_state[name]), rtol=1e-9, err_msg=name)


def test_full_resnet18_float32_matches_torch_at_small_input():
    torch.manual_seed(0)
    ref = randomize_bn(TResNet()).eval()
    ours = copy_into(models.resnet18(), ref).eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with convnp.no_grad():
        y = ours(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, as_np(ref(torch.from_numpy(x))), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cls,cin,c,stride", [(BasicBlock, 3, 4, 2), (BasicBlock, 4, 4, 1), (Bottleneck, 4, 2, 2),
                                              (PreActBlock, 3, 4, 2), (PreActBlock, 4, 4, 1)])
@pytest.mark.parametrize("training", [True, False])
def test_block_gradients_float64(cls, cin, c, stride, training):
    block = cls(cin, c, stride, seed=0).astype(np.float64).train(training)
    for m in block.modules():  # non-trivial running statistics for eval mode
        if hasattr(m, "running_var") and m.running_var is not None:
            object.__setattr__(m, "running_var", np.full_like(m.running_var, 1.7))
            object.__setattr__(m, "running_mean", np.full_like(m.running_mean, 0.3))
    x = np.random.default_rng(3).standard_normal((2, cin, 5, 5))
    check_module_gradients(block, x, tol=1e-4)  # ReLU kinks near BN outputs of ~0 cost a little accuracy


def test_zero_pad_shortcut_forward_backward_and_gradient():
    sc = ZeroPadShortcut(2, 5, 2)
    x = np.arange(2 * 2 * 5 * 5, dtype=np.float64).reshape(2, 2, 5, 5)
    y = sc(x)
    assert y.shape == (2, 5, 3, 3)
    np.testing.assert_array_equal(y[:, :2], x[:, :, ::2, ::2])
    assert not y[:, 2:].any()
    check_module_gradients(sc, np.random.default_rng(0).standard_normal((2, 2, 5, 5)))
    with pytest.raises(ValueError, match=r"ZeroPadShortcut: out_channels \(1\) must be >= in_channels \(2\)"):
        ZeroPadShortcut(2, 1)


def test_cifar_variants():
    m = models.resnet20_cifar()
    assert m.num_parameters() == 269_722  # He et al. 2016: 0.27M
    assert not hasattr(m, "maxpool") and m.conv1.kernel_size == (3, 3)
    assert m(np.zeros((2, 3, 32, 32), np.float32)).shape == (2, 10)
    assert models.resnet18_cifar().num_parameters() == 11_173_962
    pre = models.preact_resnet18()
    assert pre.num_parameters() == 11_687_720 and "bn_final.weight" in pre.state_dict()
    assert models.preact_resnet18(num_classes=10, stem="cifar", in_channels=1)(
        np.zeros((1, 1, 32, 32), np.float32)).shape == (1, 10)


def test_training_step_reduces_loss():
    m = ResNet("basic", (1, 1), 3, 3, (4, 8), stem="cifar", seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 3, 8)

    def loss_and_grad():
        z = m(x)
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        loss = -np.log(p[np.arange(8), labels]).mean()
        p[np.arange(8), labels] -= 1
        return loss, p / 8

    first, g = loss_and_grad()
    for _ in range(15):
        m.zero_grad()
        m.backward(g)
        for p in m.parameters():
            p.data -= 0.1 * p.grad
        loss, g = loss_and_grad()
    assert loss < 0.5 * first


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="ResNet: block must be one of"):
        ResNet("wide")
    with pytest.raises(ValueError, match="ResNet: stem must be 'imagenet' or 'cifar', got 'tiny'"):
        ResNet(stem="tiny")
    with pytest.raises(ValueError, match=r"ResNet: layers \(2, 2\) and widths \(64,\) must have the same length"):
        ResNet(layers=(2, 2), widths=(64,))
    with pytest.raises(ValueError, match="shortcut must be 'A' .* got 'C'"):
        ResNet(layers=(1, 1), widths=(4, 8), shortcut="C")
    with pytest.raises(ValueError, match="ResNet: expected 3 input channels, got 1"):
        models.resnet18_cifar()(np.zeros((1, 1, 32, 32), np.float32))
    with pytest.raises(TypeError, match="pass options by keyword"):
        models.resnet18(10)


def test_summary_and_config_round_trip():
    m = ResNet("basic", (1, 1), 5, 3, (4, 8), stem="cifar", seed=1)
    text = m.summary((3, 16, 16), print_fn=None)
    assert "layer2.0.downsample.0 (Conv2D)" in text and f"{m.num_parameters():,}" in text
    from convnp.nn import module_from_config, module_to_config
    import json
    rebuilt = module_from_config(json.loads(json.dumps(module_to_config(m))))
    rebuilt.load_state_dict(m.state_dict())
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(rebuilt.eval()(x), m.eval()(x), rtol=1e-6)
    factory_cfg = module_to_config(models.resnet20_cifar(num_classes=4))
    assert factory_cfg == {"factory": "resnet20_cifar", "config": {"num_classes": 4}}
