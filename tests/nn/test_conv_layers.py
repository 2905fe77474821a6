"""Conv2D, DepthwiseConv2D, Conv2DTranspose, ZeroPadding2D/Padding2D layers."""
import itertools

import numpy as np
import pytest

import convnp
from convnp import nn
from convnp.gradcheck import check_module_gradients
from torch_oracle import assert_matches_torch


def f64(layer):
    return layer.astype(np.float64)


# ----------------------------------------------------------------------------- basics
def test_conv2d_lenet_layer_shape_and_parameter_count():
    layer = nn.Conv2D(30, 5, seed=0)
    y = layer(np.zeros((2, 1, 28, 28), np.float32))
    assert y.shape == (2, 30, 24, 24) and y.dtype == np.float32
    assert layer.num_parameters() == 780
    assert layer.weight.shape == (30, 1, 5, 5) and layer.bias.shape == (30,)
    assert list(layer.state_dict()) == ["weight", "bias"]
    assert list(nn.Conv2D(4, 3, use_bias=False, in_channels=2).state_dict()) == ["weight"]


def test_conv2d_he_normal_init_is_seeded():
    a, b = nn.Conv2D(64, 3, in_channels=32, seed=1), nn.Conv2D(64, 3, in_channels=32, seed=1)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert abs(a.weight.data.std() - np.sqrt(2 / (32 * 9))) < 0.01  # he_normal: std sqrt(2 / fan_in)
    assert np.all(a.bias.data == 0)


def test_conv2d_rounds_down_like_pytorch():
    y = nn.Conv2D(2, 3, strides=2, in_channels=1)(np.zeros((1, 1, 8, 8), np.float32))
    assert y.shape == (1, 2, 3, 3)  # (8 - 3) / 2 + 1 = 3.5 -> 3: trailing partial window dropped
    y = nn.Conv2D(2, 3, strides=2, padding="same", in_channels=1)(np.zeros((1, 1, 8, 7), np.float32))
    assert y.shape == (1, 2, 4, 4)  # Keras "same": ceil(H / S)


def test_activation_inside_and_compute_input_grad():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    plain = nn.Conv2D(4, 3, in_channels=3, seed=0)
    relu = nn.Conv2D(4, 3, in_channels=3, seed=0, activation="relu")
    np.testing.assert_array_equal(relu(x), np.maximum(plain(x), 0))
    dy = rng.standard_normal((2, 4, 4, 4)).astype(np.float32)
    dx_relu = relu.backward(dy)
    dx_plain = plain.backward(dy * (plain(x) > 0))
    np.testing.assert_allclose(dx_relu, dx_plain, rtol=1e-6, atol=1e-6)
    assert list(relu.state_dict()) == ["weight", "bias"]  # the activation is not a child
    first = nn.Conv2D(4, 3, in_channels=3, seed=0)
    first.compute_input_grad = False
    first(x)
    assert first.backward(dy) is None
    plain.zero_grad(); plain(x); plain.backward(dy)
    # without dx the weight gradient may come from the direct kernel, with it (3 input channels) from the GEMM
    # path: float32 sums in another order
    np.testing.assert_allclose(first.weight.grad, plain.weight.grad, rtol=1e-5, atol=1e-6)


def test_gradients_accumulate_across_calls():
    layer = nn.Conv2D(2, 3, in_channels=1, seed=0)
    x = np.ones((1, 1, 5, 5), np.float32)
    dy = np.ones((1, 2, 3, 3), np.float32)
    layer(x); layer.backward(dy)
    first = layer.weight.grad.copy()
    layer(x); layer.backward(dy)
    np.testing.assert_allclose(layer.weight.grad, 2 * first)
    np.testing.assert_allclose(layer.bias.grad, [18, 18])


def test_config_rebuild_repr_and_state_roundtrip():
    layer = nn.Conv2D(8, (3, 2), strides=2, padding="same", groups=2, activation="relu", padding_mode="reflect", seed=3)
    x = np.random.default_rng(1).standard_normal((2, 4, 9, 9)).astype(np.float32)
    y = layer(x)
    cfg = layer.get_config()
    assert cfg["in_channels"] == 4 and cfg["filters"] == 8 and cfg["padding"] == "same"
    twin = nn.Conv2D(**cfg)
    assert twin.built and twin.weight.shape == (8, 2, 3, 2)
    twin.load_state_dict(layer.state_dict())
    np.testing.assert_array_equal(twin(x), y)
    text = repr(layer)
    assert text.startswith("Conv2D(filters=8, kernel_size=(3, 2), strides=2, padding='same', groups=2")
    assert "padding_mode='reflect'" in text and "in_channels=4" in text and "use_bias" not in text
    dw = nn.DepthwiseConv2D(3, depth_multiplier=2, padding=1)
    dw(x)
    assert nn.DepthwiseConv2D(**dw.get_config()).weight.shape == (8, 1, 3, 3)
    tr = nn.Conv2DTranspose(5, 3, strides=2, output_padding=1)
    tr(x)
    assert nn.Conv2DTranspose(**tr.get_config()).weight.shape == (4, 5, 3, 3)
    assert repr(tr) == "Conv2DTranspose(filters=5, kernel_size=3, strides=2, output_padding=1, in_channels=4)"


def test_layers_in_sequential_train_end_to_end():
    model = nn.Sequential([nn.ZeroPadding2D(2), nn.Conv2D(6, 5, activation="relu", seed=0),
                           nn.DepthwiseConv2D(3, strides=2, padding="same", seed=1),
                           nn.Conv2DTranspose(3, 2, strides=2, seed=2), nn.Flatten(), nn.Dense(2, seed=3)])
    x = np.random.default_rng(2).standard_normal((3, 1, 8, 8)).astype(np.float32)
    y = model(x)
    assert y.shape == (3, 2)
    assert model[3].output_shape((3, 6, 4, 4)) == (3, 3, 8, 8)
    dx = model.backward(np.ones_like(y))
    assert dx.shape == x.shape
    assert all(p.grad is not None for p in model.parameters())


# ----------------------------------------------------------------------------- gradient checks (float64)
GRAD_GRID = list(itertools.product([1, 2], [0, (1, 2), "same", "valid"], ["zeros", "reflect", "circular"], [1, 2]))


@pytest.mark.parametrize("stride,padding,mode,dilation", GRAD_GRID)
def test_conv2d_gradient_check(stride, padding, mode, dilation):
    i = GRAD_GRID.index((stride, padding, mode, dilation))
    groups, use_bias = (1, 2)[i % 2], i % 3 != 2
    layer = nn.Conv2D(4, (3, 2), strides=stride, padding=padding, dilation_rate=dilation, groups=groups,
                      use_bias=use_bias, padding_mode=mode, in_channels=2, seed=i)
    x = np.random.default_rng(i).standard_normal((2, 2, 7, 6))  # odd sizes
    errors = check_module_gradients(f64(layer), x, tol=1e-5)
    assert set(errors) == ({"input", "weight", "bias"} if use_bias else {"input", "weight"})


@pytest.mark.parametrize("depth_multiplier,stride,padding", [(1, 1, "same"), (2, 2, 1), (3, (1, 2), "valid")])
def test_depthwise_gradient_check(depth_multiplier, stride, padding):
    layer = nn.DepthwiseConv2D(3, depth_multiplier=depth_multiplier, strides=stride, padding=padding, in_channels=3,
                               padding_mode="replicate", seed=0)
    assert layer.weight.shape == (3 * depth_multiplier, 1, 3, 3) and layer.groups == 3
    check_module_gradients(f64(layer), np.random.default_rng(1).standard_normal((2, 3, 6, 5)), tol=1e-5)


@pytest.mark.parametrize("stride,padding,output_padding,dilation,groups", [
    (1, 0, 0, 1, 1), (2, 1, 1, 1, 2), ((2, 3), ((1, 0), (0, 2)), (1, 2), 1, 1), (1, 1, 1, 2, 2)])
def test_conv_transpose_gradient_check(stride, padding, output_padding, dilation, groups):
    layer = nn.Conv2DTranspose(4, (3, 2), strides=stride, padding=padding, output_padding=output_padding,
                               dilation_rate=dilation, groups=groups, in_channels=2, seed=0)
    check_module_gradients(f64(layer), np.random.default_rng(2).standard_normal((2, 2, 3, 4)), tol=1e-5)


@pytest.mark.parametrize("layer", [nn.ZeroPadding2D(((1, 2), (0, 3))), nn.Padding2D(2, "reflect"),
                                   nn.Padding2D((1, 3), "replicate"), nn.Padding2D(((0, 3), (2, 1)), "circular")])
def test_padding_layer_gradient_check(layer):
    check_module_gradients(layer, np.random.default_rng(3).standard_normal((2, 2, 4, 3)))


def test_zero_padding_values():
    layer = nn.ZeroPadding2D(((1, 0), (0, 2)))
    y = layer(np.ones((1, 1, 2, 2), np.float32))
    np.testing.assert_array_equal(y[0, 0], [[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]])
    assert layer.output_shape((1, 1, 2, 2)) == (1, 1, 3, 4)
    assert nn.ZeroPadding2D(2)(np.zeros((1, 1, 28, 28), np.float32)).shape == (1, 1, 32, 32)
    assert nn.ZeroPadding2D((1, 2)).pads == ((1, 1), (2, 2))


# ----------------------------------------------------------------------------- against torch.nn
TORCH_GRID = [(s, p, m) for s, p, m in itertools.product([1, 2], [0, 1, (2, 1), "same", "valid"],
                                                          ["zeros", "reflect", "replicate", "circular"])
              if not (p == "same" and s != 1)]  # torch has no strided "same" (covered by the functional tests)


@pytest.mark.parametrize("stride,padding,mode", TORCH_GRID)
def test_conv2d_matches_torch_conv2d(stride, padding, mode):
    torch = pytest.importorskip("torch")
    i = TORCH_GRID.index((stride, padding, mode))
    groups, dilation, use_bias = (1, 2)[i % 2], (1, 2)[(i // 2) % 2], i % 3 != 0
    rng = np.random.default_rng(i)
    ours = nn.Conv2D(6, 3, strides=stride, padding=padding, dilation_rate=dilation, groups=groups,
                     use_bias=use_bias, padding_mode=mode, in_channels=4, seed=i)
    theirs = torch.nn.Conv2d(4, 6, 3, stride=stride, padding=padding, dilation=dilation, groups=groups,
                             bias=use_bias, padding_mode=mode)
    if use_bias:
        ours.bias.data[:] = rng.standard_normal(6)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.data))
        if use_bias:
            theirs.bias.copy_(torch.tensor(ours.bias.data))
    x = rng.standard_normal((2, 4, 9, 8)).astype(np.float32)
    assert_matches_torch(ours, theirs, x, rtol=1e-4, atol=1e-4, param_atol=1e-3, seed=i)


def test_torch_state_dict_loads_strict():
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Conv2d(3, 5, (3, 2), stride=2, padding=1, groups=1)
    ours = nn.Conv2D(5, (3, 2), strides=2, padding=1)
    ours(np.zeros((1, 3, 8, 8), np.float32))
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()}, strict=True)
    x = np.random.default_rng(5).standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(ours(x), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("depth_multiplier", [1, 2])
def test_depthwise_matches_torch(depth_multiplier):
    torch = pytest.importorskip("torch")
    ours = nn.DepthwiseConv2D(3, depth_multiplier=depth_multiplier, strides=2, padding=1, seed=0)
    x = np.random.default_rng(6).standard_normal((2, 4, 7, 7)).astype(np.float32)
    ours(x)  # builds the weights
    theirs = torch.nn.Conv2d(4, 4 * depth_multiplier, 3, stride=2, padding=1, groups=4)
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    assert_matches_torch(ours, theirs, x, rtol=1e-4, atol=1e-5, param_atol=1e-4, seed=7)


@pytest.mark.parametrize("stride,padding,output_padding,groups", [(1, 0, 0, 1), (2, 1, 1, 2), (3, 2, (2, 1), 1)])
def test_conv_transpose_matches_torch(stride, padding, output_padding, groups):
    torch = pytest.importorskip("torch")
    ours = nn.Conv2DTranspose(6, 3, strides=stride, padding=padding, output_padding=output_padding, groups=groups,
                              in_channels=4, seed=0)
    ours.bias.data[:] = np.arange(6)
    theirs = torch.nn.ConvTranspose2d(4, 6, 3, stride=stride, padding=padding, output_padding=output_padding,
                                      groups=groups)
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(8).standard_normal((2, 4, 5, 4)).astype(np.float32)
    y, _ = assert_matches_torch(ours, theirs, x, rtol=1e-4, atol=1e-4, param_atol=1e-3, seed=9)
    assert ours.output_shape(x.shape) == y.shape


# ----------------------------------------------------------------------------- bad input
def test_conv2d_error_messages():
    layer = nn.Conv2D(4, 3, in_channels=3)
    with pytest.raises(ValueError, match=r"^Conv2D: expected 3 input channels, got 4 \(input shape \(1, 4, 8, 8\)\)$"):
        layer(np.zeros((1, 4, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"Conv2D: expected a 4-D input \(N, C, H, W\), got shape \(3, 8, 8\)"):
        layer(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"Conv2D: expected a 4-D input \(N, C, H, W\), got shape \(2, 8\)"):
        nn.Conv2D(4, 3)(np.zeros((2, 8), np.float32))
    with pytest.raises(ValueError, match=r"^Conv2D: kernel 5x5 \(dilated extent 5x5\) is larger than the padded input "
                                         r"4x4 \(input 2x2, padding \(\(1, 1\), \(1, 1\)\)\)$"):
        nn.Conv2D(2, 5, padding=1)(np.zeros((1, 1, 2, 2), np.float32))
    with pytest.raises(ValueError, match=r"Conv2D: kernel 3x3 \(dilated extent 7x7\)"):
        nn.Conv2D(2, 3, dilation_rate=3)(np.zeros((1, 1, 6, 6), np.float32))
    with pytest.raises(ValueError, match=r"^Conv2D: strides must be positive, got 0$"):
        nn.Conv2D(2, 3, strides=0)
    with pytest.raises(ValueError, match=r"^Conv2D: strides must be positive, got \(1, 0\)$"):
        nn.Conv2D(2, 3, strides=(1, 0))
    with pytest.raises(ValueError, match=r"^Conv2D: in_channels \(3\) must be divisible by groups \(2\)$"):
        nn.Conv2D(4, 3, groups=2, in_channels=3)
    with pytest.raises(ValueError, match=r"^Conv2D: in_channels \(5\) must be divisible by groups \(2\)$"):
        nn.Conv2D(4, 3, groups=2)(np.zeros((1, 5, 6, 6), np.float32))
    with pytest.raises(ValueError, match=r"^Conv2D: filters \(5\) must be divisible by groups \(2\)$"):
        nn.Conv2D(5, 3, groups=2)
    with pytest.raises(ValueError, match=r"^Conv2D: unknown padding 'full'; expected 'valid', 'same', an int"):
        nn.Conv2D(4, 3, padding="full")
    with pytest.raises(ValueError, match=r"Conv2D: padding must be non-negative, got \(\(-1, -1\), \(-1, -1\)\)"):
        nn.Conv2D(4, 3, padding=-1)
    with pytest.raises(ValueError, match=r"^Conv2D: unknown padding_mode 'wrap'; choose one of zeros, reflect"):
        nn.Conv2D(4, 3, padding_mode="wrap")
    with pytest.raises(ValueError, match=r"^Conv2D: filters must be a positive integer, got 0$"):
        nn.Conv2D(0, 3)
    with pytest.raises(ValueError, match=r"^Conv2D: kernel_size must be an int or a pair of ints, got \(3, 3, 3\)$"):
        nn.Conv2D(2, (3, 3, 3))
    with pytest.raises(ValueError, match=r"^Conv2D: groups must be a positive integer, got 0$"):
        nn.Conv2D(2, 3, groups=0)
    with pytest.raises(ValueError, match=r"^Conv2D: reflect padding \(3\) must be smaller than the input height \(3\)$"):
        nn.Conv2D(2, 3, padding=3, padding_mode="reflect")(np.zeros((1, 1, 3, 3), np.float32))
    with pytest.raises(RuntimeError, match="Conv2D.backward called before forward"):
        nn.Conv2D(2, 3, in_channels=1).backward(np.zeros((1, 2, 1, 1), np.float32))
    layer = nn.Conv2D(2, 3, in_channels=1)
    with convnp.no_grad():
        layer(np.zeros((1, 1, 5, 5), np.float32))
    with pytest.raises(RuntimeError, match="or the forward ran under convnp.no_grad"):
        layer.backward(np.zeros((1, 2, 3, 3), np.float32))


def test_other_layer_error_messages():
    with pytest.raises(ValueError, match=r"^DepthwiseConv2D: depth_multiplier must be a positive integer, got 0$"):
        nn.DepthwiseConv2D(3, depth_multiplier=0)
    with pytest.raises(ValueError, match=r"^DepthwiseConv2D: expected 3 input channels, got 2"):
        nn.DepthwiseConv2D(3, in_channels=3)(np.zeros((1, 2, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"^DepthwiseConv2D: strides must be positive, got 0$"):
        nn.DepthwiseConv2D(3, strides=0)
    with pytest.raises(ValueError, match=r"^Conv2DTranspose: in_channels \(3\) must be divisible by groups \(2\)$"):
        nn.Conv2DTranspose(4, 3, groups=2, in_channels=3)
    with pytest.raises(ValueError, match=r"^Conv2DTranspose: filters \(3\) must be divisible by groups \(2\)$"):
        nn.Conv2DTranspose(3, 3, groups=2)
    with pytest.raises(ValueError, match=r"^Conv2DTranspose: output_padding \(2\) along height must be non-negative "
                                         r"and smaller than the stride \(2\) or the dilation \(1\)$"):
        nn.Conv2DTranspose(3, 3, strides=2, output_padding=2)
    with pytest.raises(ValueError, match=r"^Conv2DTranspose: padding must be 'valid', an int, a pair .* got 'same'$"):
        nn.Conv2DTranspose(3, 3, padding="same")
    with pytest.raises(ValueError, match=r"^Conv2DTranspose: strides must be positive, got 0$"):
        nn.Conv2DTranspose(3, 3, strides=0)
    with pytest.raises(ValueError, match=r"^Conv2DTranspose: expected 2 input channels, got 3"):
        nn.Conv2DTranspose(3, 3, in_channels=2)(np.zeros((1, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"^Padding2D: unknown mode 'edge'; choose one of zeros, reflect"):
        nn.Padding2D(1, "edge")
    with pytest.raises(ValueError, match=r"^ZeroPadding2D: padding must be an int, a pair \(ph, pw\) or .* got 'same'$"):
        nn.ZeroPadding2D("same")
    with pytest.raises(ValueError, match=r"^ZeroPadding2D: expected a 4-D input \(N, C, H, W\), got shape \(4, 4\)$"):
        nn.ZeroPadding2D(1)(np.zeros((4, 4), np.float32))


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("kernel,dilation", [((4, 2), 1), ((2, 3), (1, 2))])
def test_same_padding_even_kernel_matches_torch(kernel, dilation):
    """An odd total padding puts the extra row/column at the bottom/right, as torch's padding='same'."""
    torch = pytest.importorskip("torch")
    ours = nn.Conv2D(3, kernel, padding="same", dilation_rate=dilation, in_channels=2, seed=0)
    theirs = torch.nn.Conv2d(2, 3, kernel, padding="same", dilation=dilation)
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(10).standard_normal((1, 2, 6, 7)).astype(np.float32)
    np.testing.assert_allclose(ours(x), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_json_config_roundtrip_of_a_conv_stack():
    import json
    model = nn.Sequential([nn.ZeroPadding2D(((1, 0), (2, 1))),
                           nn.Conv2D(4, (3, 2), strides=(2, 1), padding=((1, 0), (0, 1)), activation="relu"),
                           nn.DepthwiseConv2D(3, depth_multiplier=2, padding="same"),
                           nn.Conv2DTranspose(2, 3, strides=2, output_padding=(1, 0)), nn.Padding2D(1, "reflect")])
    assert model[2].output_shape((2, 5, 8, 8)) == (2, 10, 8, 8)  # before build: channels from the input
    x = np.random.default_rng(11).standard_normal((2, 3, 8, 8)).astype(np.float32)
    y = model(x)
    twin = nn.module_from_config(json.loads(json.dumps(nn.module_to_config(model))))
    twin.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(twin(x), y)
    assert [type(m).__name__ for m in twin] == ["ZeroPadding2D", "Conv2D", "DepthwiseConv2D", "Conv2DTranspose",
                                                "Padding2D"]


# ----------------------------------------------------------------------------- backends (CuPy when a GPU is present)
def _device(xp):
    return "cpu" if xp is np else "cuda"


@pytest.mark.parametrize("make", [lambda: nn.Conv2D(5, 3, strides=2, padding="same", activation="relu", seed=0),
                                  lambda: nn.Conv2D(4, (3, 2), padding=1, dilation_rate=2, groups=2, seed=1),
                                  lambda: nn.DepthwiseConv2D(3, depth_multiplier=2, padding="same", seed=2),
                                  lambda: nn.Conv2DTranspose(3, 3, strides=2, padding=1, output_padding=1, seed=3),
                                  lambda: nn.ZeroPadding2D((1, 2))])
def test_layers_agree_on_every_backend(xp, make):
    """On a GPU machine: the layer on CuPy (custom kernels included) gives NumPy's output and gradients."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 4, 9, 8)).astype(np.float32)
    layer = make()
    y_ref = layer(x)
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    dx_ref = layer.backward(dy)
    grads_ref = [np.array(p.grad) for p in layer.parameters()]
    layer.zero_grad()
    layer.to(_device(xp))
    y = layer(xp.asarray(x))
    dx = layer.backward(xp.asarray(dy))
    assert isinstance(y, xp.ndarray) and isinstance(dx, xp.ndarray)
    np.testing.assert_allclose(convnp.to_numpy(y), y_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(convnp.to_numpy(dx), dx_ref, rtol=1e-4, atol=1e-4)
    for p, g in zip(layer.parameters(), grads_ref):
        np.testing.assert_allclose(convnp.to_numpy(p.grad), g, rtol=1e-4, atol=1e-4)
    layer.to("cpu")
