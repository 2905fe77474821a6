"""Inference fusion (convnp.nn.fusion): batch norm + residual add + ReLU in one pass, only where nothing can tell."""
import numpy as np
import pytest

import convnp
from convnp import nn
from convnp.functional import normalization as N
from convnp.models.resnet import BasicBlock, Bottleneck, PreActBlock
from convnp.nn import fusion


def _trained_stats(model, rng):
    """Give every batch norm non-trivial running statistics and affine parameters."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2D):
            c = m.num_features
            m.running_mean = rng.standard_normal(c).astype(np.float32)
            m.running_var = rng.uniform(0.5, 2.0, c).astype(np.float32)
            m.weight.data[...] = rng.uniform(0.5, 1.5, c)
            m.bias.data[...] = rng.standard_normal(c)
    return model


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_add", [False, True])
@pytest.mark.parametrize("relu", [False, True])
def test_batch_norm_inference_is_bn_then_add_then_relu(dtype, with_add, relu):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 6, 7)).astype(dtype)
    add = rng.standard_normal(x.shape).astype(dtype) if with_add else None
    w, b = rng.uniform(0.5, 1.5, 5).astype(dtype), rng.standard_normal(5).astype(dtype)
    rm, rv = rng.standard_normal(5).astype(dtype), rng.uniform(0.5, 2, 5).astype(dtype)
    expect = (x - rm.reshape(1, 5, 1, 1)) / np.sqrt(rv.reshape(1, 5, 1, 1) + 1e-5) * w.reshape(1, 5, 1, 1) \
        + b.reshape(1, 5, 1, 1)
    if with_add:
        expect = expect + add
    if relu:
        expect = np.maximum(expect, 0)
    got = N.batch_norm_inference(x, w, b, rm, rv, 1e-5, add=add, relu=relu)
    np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-5)
    assert got.shape == x.shape


def test_batch_norm_inference_keeps_nan_and_checks_the_residual_shape():
    x = np.ones((2, 3, 4, 4), np.float32)
    x[0, 1, 2, 3] = np.nan
    add = np.zeros_like(x)
    add[1, 2, 0, 0] = np.nan
    ones, zeros = np.ones(3, np.float32), np.zeros(3, np.float32)
    y = N.batch_norm_inference(x, ones, zeros, zeros, ones, add=add, relu=True)
    assert np.isnan(y[0, 1, 2, 3]) and np.isnan(y[1, 2, 0, 0]) and np.isnan(y).sum() == 2
    with pytest.raises(ValueError, match=r"add has shape \(2, 3, 4, 3\)"):
        N.batch_norm_inference(x, ones, zeros, zeros, ones, add=add[..., :3])


@pytest.mark.parametrize("block", [lambda: BasicBlock(8, 16, strides=2, seed=1), lambda: BasicBlock(8, 8, seed=1),
                                   lambda: Bottleneck(16, 4, seed=2), lambda: PreActBlock(8, 16, strides=2, seed=3)])
def test_fused_blocks_equal_the_layer_by_layer_output(block):
    rng = np.random.default_rng(1)
    model = _trained_stats(block(), rng).eval()
    x = rng.standard_normal((2, model.conv1.in_channels, 10, 10)).astype(np.float32)
    layered = model(x)  # gradients on: the layers one by one (their caches are needed)
    with convnp.no_grad():
        fused = model(x)
    np.testing.assert_allclose(fused, layered, rtol=1e-6, atol=1e-6)
    assert (layered > 0).any()
    if not isinstance(model, PreActBlock):  # (a pre-activation block ends in the sum, not a ReLU)
        assert (layered == 0).any()  # the last ReLU did something to compare


def test_resnet_inference_fuses_and_matches_and_keeps_nan():
    rng = np.random.default_rng(2)
    model = _trained_stats(convnp.models.resnet18(num_classes=7, seed=0), rng).eval()
    x = rng.standard_normal((2, 3, 40, 40)).astype(np.float32)
    layered = model(x)
    calls = []
    original = N.batch_norm_inference
    try:
        N.batch_norm_inference = lambda *a, **k: calls.append(1) or original(*a, **k)
        with convnp.no_grad():
            fused = model(x)
            x[1, 0, 5, 5] = np.nan
            with_nan = model(x)
    finally:
        N.batch_norm_inference = original
    np.testing.assert_allclose(fused, layered, rtol=1e-5, atol=1e-5)
    assert len(calls) == 2 * (1 + 2 * 8)  # stem + two per basic block, two forwards
    assert np.isnan(with_nan[1]).all() and np.isfinite(with_nan[0]).all()


def test_no_fusion_where_it_would_show():
    rng = np.random.default_rng(3)
    block = _trained_stats(BasicBlock(4, 4, seed=0), rng)
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    assert not fusion.fusable(block.bn1, block.relu1, x)  # training mode
    block.eval()
    assert not fusion.fusable(block.bn1, block.relu1, x)  # gradients on
    with convnp.no_grad():
        assert fusion.fusable(block.bn1, block.relu1, x)
        assert not fusion.fusable(block.bn1, nn.LeakyReLU(), x)
        recorded, _ = nn.capture_activations(block, x)  # every layer's output is recorded: no fusion
    assert [name for name, _, _ in recorded] == ["conv1", "bn1", "relu1", "conv2", "bn2", "relu2"]
    block.relu1 = nn.LeakyReLU(0.5)  # a replaced activation runs as written
    layered = block(x)
    with convnp.no_grad():
        np.testing.assert_allclose(block(x), layered, rtol=1e-6, atol=1e-6)


def test_fused_inference_leaves_no_stale_cache_behind():
    rng = np.random.default_rng(4)
    block = _trained_stats(BasicBlock(4, 4, seed=0), rng).eval()
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    block(x)  # caches from a forward with gradients
    with convnp.no_grad():
        block(x)
    for layer in (block.bn1, block.relu1, block.bn2, block.relu2):
        with pytest.raises(RuntimeError, match="before forward"):
            layer.backward(np.ones((2, 4, 6, 6), np.float32))


# ----------------------------------------------------------------------------- conv + ReLU + max pool (training)
@pytest.fixture
def kernels_on():
    from convnp import accel
    previous = accel.set_enabled(True)
    try:
        yield accel
    finally:
        accel.set_enabled(previous)


def _conv_pool(in_channels, filters, kernel, padding, pool, use_bias=True, seed=0):
    return nn.Sequential([nn.Conv2D(filters, kernel, padding=padding, activation="relu", in_channels=in_channels,
                                    use_bias=use_bias, seed=seed), nn.MaxPool2D(pool)])


def _layer_by_layer(model, x, dy):
    """The two layers called one by one (no fusion): y, dx and the parameters' gradients."""
    conv, pool = model[0], model[1]
    model.zero_grad()
    y = pool(conv(x))
    dx = conv.backward(pool.backward(dy))
    return y, dx, [p.grad.copy() for p in model.parameters()]


CONV_POOL_CASES = [  # (N, C, H, W), filters, kernel, padding, pool, bias
    ((6, 8, 27, 27), 8, 5, 0, 2, True),  # an odd conv output (23): the last row and column dropped
    ((5, 8, 14, 14), 16, 3, 1, 2, False),
    ((3, 16, 7, 7), 32, 3, "same", 2, True),  # DeepConvNet's last block shape, odd size
    ((4, 8, 12, 13), 8, 3, 1, 3, True),  # 3x3 windows
]


@pytest.mark.parametrize("shape, filters, kernel, padding, pool, bias", CONV_POOL_CASES)
@pytest.mark.parametrize("nan_in", [None, "x", "w"])
def test_conv_relu_pool_trains_fused_with_the_layers_numbers(kernels_on, shape, filters, kernel, padding, pool, bias,
                                                              nan_in):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(np.float32)
    model = _conv_pool(shape[1], filters, kernel, padding, pool, bias)
    model.build(shape)
    if nan_in == "x":
        x[1, 0, 4, 5] = np.nan
    elif nan_in == "w":
        model[0].weight.data[3, 0, 1, 1] = np.nan
    y_shape = model[0].output_shape(shape)
    dy = rng.standard_normal((shape[0], filters, y_shape[2] // pool, y_shape[3] // pool)).astype(np.float32)
    expect_y, expect_dx, expect_grads = _layer_by_layer(model, x, dy)

    model.zero_grad()
    y = model(x)
    assert fusion.ran_fused(model[0], model[1])  # the kernels are on: this block runs as one operation
    dx = model.backward(dy)
    np.testing.assert_allclose(y, expect_y, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dx, expect_dx, rtol=1e-5, atol=1e-5)
    for grad, expect in zip([p.grad for p in model.parameters()], expect_grads):
        np.testing.assert_allclose(grad, expect, rtol=1e-5, atol=1e-4)
    if nan_in is None:
        assert np.isfinite(y).all() and (y == 0).any() and (y > 0).any()  # the ReLU did something to compare
    else:  # NaN reaches the output as it does layer by layer: never a silent zero
        assert np.isnan(y).any()


def test_conv_relu_pool_without_input_gradient(kernels_on):
    rng = np.random.default_rng(6)
    model = _conv_pool(1, 8, 5, 0, 2)
    model[0].compute_input_grad = False  # a network's first layer
    x = rng.standard_normal((4, 1, 16, 16)).astype(np.float32)
    dy = rng.standard_normal((4, 8, 6, 6)).astype(np.float32)
    y = model(x)
    assert fusion.ran_fused(model[0], model[1])
    assert model.backward(dy) is None
    fused_dw = model[0].weight.grad.copy()
    _, _, (dw, db) = _layer_by_layer(model, x, dy)
    np.testing.assert_allclose(fused_dw, dw, rtol=1e-5, atol=1e-5)
    assert y.shape == (4, 8, 6, 6)


def test_conv_relu_pool_fuses_only_where_nothing_can_tell(kernels_on):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 8, 12, 12)).astype(np.float32)
    model = _conv_pool(8, 8, 3, 1, 2)
    model.build(x.shape)
    conv, pool = model[0], model[1]
    assert fusion.conv_pool_fusable(conv, pool, x)
    few = _conv_pool(4, 8, 3, 1, 2)
    few.build((2, 4, 12, 12))
    assert not fusion.conv_pool_fusable(few[0], few[1], x[:, :4])  # dx of 4 channels: the GEMM's backward
    few[0].compute_input_grad = False
    assert fusion.conv_pool_fusable(few[0], few[1], x[:, :4])  # (a first layer: no dx)
    assert not fusion.conv_pool_fusable(conv, pool, x.astype(np.float64))  # float64: the NumPy path
    with kernels_on.disabled():
        assert not fusion.conv_pool_fusable(conv, pool, x)  # CONVNP_ACCEL=0
    others = [nn.MaxPool2D(2, strides=1), nn.MaxPool2D(2, padding=1), nn.MaxPool2D(2, ceil_mode=True),
              nn.MaxPool2D(2, return_indices=True), nn.AvgPool2D(2), nn.MaxPool2D((2, 3))]
    for other in others:
        assert not fusion.conv_pool_fusable(conv, other, x), other
    for kwargs in (dict(activation="leaky_relu"), dict(strides=2), dict(dilation_rate=2), dict(activation=None),
                   dict(padding_mode="reflect")):
        options = dict(dict(padding=1, activation="relu", in_channels=8, seed=0), **kwargs)
        other = nn.Conv2D(8, 3, **options)
        other.build(x.shape)
        assert not fusion.conv_pool_fusable(other, pool, x), kwargs
    recorded, _ = nn.capture_activations(model, x)  # every layer's output recorded: the layers run one by one
    assert [name for name, _, _ in recorded] == ["0", "1"]
    model(x)
    with pytest.raises(RuntimeError, match="ran fused with the Conv2D"):
        pool.backward(np.ones((2, 8, 6, 6), np.float32))  # its gradient comes through the Sequential
    with convnp.no_grad():
        inference = model(x)
        np.testing.assert_allclose(inference, pool(conv(x)), rtol=1e-6, atol=1e-6)
    with pytest.raises(RuntimeError, match="before forward"):
        model.backward(np.ones_like(inference))  # the no_grad forward kept no cache: no stale gradient


@pytest.mark.parametrize("plan", ["fixed", "measure"])
def test_conv_relu_pool_on_an_empty_or_tiny_batch(kernels_on, plan, monkeypatch):
    monkeypatch.setenv("CONVNP_PLAN", plan)  # (measuring must not time providers on an empty batch)
    model = _conv_pool(16, 16, 3, 1, 2)
    empty = np.zeros((0, 16, 8, 8), np.float32)
    y = model(empty)
    assert y.shape == (0, 16, 4, 4) and not fusion.ran_fused(model[0], model[1])
    assert model.backward(np.zeros(y.shape, np.float32)).shape == empty.shape
    one = np.random.default_rng(8).standard_normal((1, 16, 3, 3)).astype(np.float32)
    y = model(one)  # a 3x3 conv output: one 2x2 window, the last row and column dropped
    assert y.shape == (1, 16, 1, 1)
    assert model.backward(np.ones(y.shape, np.float32)).shape == one.shape


def test_functional_conv_relu_pool_backward_errors_say_what_was_wrong(kernels_on):
    from convnp.functional import conv_pool as FCP
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 8, 6, 6)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    assert FCP.can_run(x, w, None, 1, 2)
    y, cache = FCP.conv2d_relu_max_pool2d_forward(x, w, None, 1, 2, save_cache=False)
    assert cache is None and y.shape == (2, 16, 3, 3)
    with pytest.raises(RuntimeError, match="no cache"):
        FCP.conv2d_relu_max_pool2d_backward(np.ones_like(y), cache)
    y, cache = FCP.conv2d_relu_max_pool2d_forward(x, w, None, 1, 2)
    with pytest.raises(ValueError, match=r"pooled output's shape \(2, 16, 3, 3\), got \(2, 16, 6, 6\)"):
        FCP.conv2d_relu_max_pool2d_backward(np.ones((2, 16, 6, 6), np.float32), cache)
    dx, dw, db = FCP.conv2d_relu_max_pool2d_backward(np.ones_like(y), cache)
    assert dx.shape == x.shape and dw.shape == w.shape and db is None
