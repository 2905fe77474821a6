"""DenseNet: torchvision keys and parameter counts, equality with a torch.nn reference (eval and train-mode
BN, gradients), the memory-conscious dense block's gradients."""
import numpy as np
import pytest

from convnp import models
from convnp.gradcheck import check_module_gradients
from convnp.models.densenet import DenseBlock, densenet

torch = pytest.importorskip("torch")
from torch_oracle import assert_matches_torch  # noqa: E402
from zoo_torch_refs import TDenseNet, as_np, copy_into, randomize_bn  # noqa: E402


@pytest.fixture(scope="module")
def d121():
    return models.densenet121()


def test_densenet121_count_and_torchvision_keys(d121):
    assert d121.num_parameters() == 7_978_856
    sd = d121.state_dict()
    assert len(sd) == 727  # torchvision densenet121().state_dict()
    assert sd["features.denseblock1.denselayer1.norm1.weight"].shape == (64,)
    assert sd["features.denseblock1.denselayer1.conv1.weight"].shape == (128, 64, 1, 1)
    assert sd["features.denseblock1.denselayer6.conv2.weight"].shape == (32, 128, 3, 3)
    assert sd["features.transition1.conv.weight"].shape == (128, 256, 1, 1)
    assert sd["features.norm5.running_var"].shape == (1024,)
    assert sd["classifier.weight"].shape == (1000, 1024)


def test_densenet169_count():
    assert models.densenet169().num_parameters() == 14_149_480


def test_small_densenet_matches_torch_eval_and_train():
    cfg = dict(block_config=(2, 3), growth_rate=4, num_init_features=8, bn_size=2, num_classes=5)
    torch.manual_seed(0)
    ref = randomize_bn(TDenseNet(**cfg)).double()
    ours = copy_into(densenet(**cfg, seed=0).astype(np.float64), ref)
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 30))
    np.testing.assert_allclose(ours.eval()(x), as_np(ref.eval()(torch.from_numpy(x))), rtol=1e-9, atol=1e-10)
    ref.train()
    ours.train()
    assert_matches_torch(ours, ref, x, rtol=1e-8, atol=1e-9, param_rtol=1e-7, seed=1)


def test_densenet121_float32_matches_torch(d121):
    torch.manual_seed(0)
    ref = randomize_bn(TDenseNet()).eval()
    ours = copy_into(d121, ref).eval()
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(ours(x), as_np(ref(torch.from_numpy(x))), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("training", [True, False])
def test_dense_block_gradients_float64(training):
    block = DenseBlock(3, 3, growth_rate=2, bn_size=2, seed=0).astype(np.float64).train(training)
    rng = np.random.default_rng(5)
    for name, p in block.named_parameters():  # BN biases away from 0: no ReLU input sits exactly on the kink
        if "norm" in name:
            p.data = rng.uniform(0.5, 1.5, p.shape) * (1 if name.endswith("weight") else rng.choice([-1, 1], p.shape))
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    y = block(x)
    assert y.shape == (2, 3 + 3 * 2, 4, 4)
    np.testing.assert_array_equal(y[:, :3], x)  # the input comes first, as torch.cat([x, ...])
    check_module_gradients(block, x, tol=1e-4)


def test_dense_block_wrong_channels():
    with pytest.raises(ValueError, match="DenseBlock: expected 3 input channels, got 4"):
        DenseBlock(3, 2)(np.zeros((1, 4, 8, 8), np.float32))
