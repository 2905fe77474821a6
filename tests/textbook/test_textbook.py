"""convnp.textbook networks: gradient check on MNIST, to_model() equivalence, save/load, pickle opt-in, errors."""
import pickle

import numpy as np
from convnp.textbook import StableSoftmaxWithLoss
import pytest

import convnp
from convnp import nn
from convnp.backend import cupy_available
from convnp.textbook import (Affine, BatchNormalization, Convolution, DeepConvNet, Dropout, Pooling, Relu,
                             SimpleConvNet, layers_to_model)


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))


@pytest.fixture(scope="module")
def mnist():
    (x_train, t_train), (x_test, t_test) = convnp.data.load_mnist()
    return x_train, t_train, x_test, t_test


def small_net(**kwargs):
    cfg = dict(input_dim=(1, 14, 14), conv_param={'filter_num': 3, 'filter_size': 5, 'pad': 1, 'stride': 1},
               hidden_size=6, weight_init_std=0.3, seed=0)
    cfg.update(kwargs)
    net = SimpleConvNet(**cfg)
    rng = np.random.default_rng(1)
    for k in ('b1', 'b2', 'b3'):  # nonzero biases keep the ReLUs of blank pixels away from their kink at 0
        net.params[k][...] = 0.1 * rng.standard_normal(net.params[k].shape)
    return net


# ----------------------------------------------------------------------------- SimpleConvNet
def test_simple_convnet_shapes_follow_the_book():
    net = SimpleConvNet(seed=0)
    shapes = {k: v.shape for k, v in net.params.items()}
    assert shapes == {'W1': (30, 1, 5, 5), 'b1': (30,), 'W2': (4320, 100), 'b2': (100,), 'W3': (100, 10),
                      'b3': (10,)}
    assert list(net.params) == ['W1', 'b1', 'W2', 'b2', 'W3', 'b3']
    assert list(net.layers) == ['Conv1', 'Relu1', 'Pool1', 'Affine1', 'Relu2', 'Affine2']
    assert net.params['W1'].dtype == np.float64 and abs(net.params['W2'].std() - 0.01) < 1e-3
    assert net.layers['Conv1'].W is net.params['W1']  # layers share the arrays of params, as in the book
    np.random.seed(5)
    a = SimpleConvNet(hidden_size=4)
    np.random.seed(5)
    np.testing.assert_array_equal(a.params['W1'], SimpleConvNet(hidden_size=4).params['W1'])  # global state


def test_simple_convnet_gradient_check_on_mnist(mnist):
    x, t = mnist[0][:3, :, ::2, ::2].astype(np.float64), mnist[1][:3]  # 3 images at 14x14
    net = small_net()
    net.last_layer = StableSoftmaxWithLoss()  # the book's loss has log(y + 1e-7), its backward has no 1e-7
    grads = net.gradient(x, t)
    numeric = net.numerical_gradient(x, t)
    errors = {k: rel_err(grads[k], numeric[k]) for k in net.params}
    assert set(errors) == set(net.params)
    assert max(errors.values()) < 1e-8, errors


def test_predict_loss_accuracy(mnist):
    x, t = mnist[0][:30], mnist[1][:30]
    net = SimpleConvNet(hidden_size=8, seed=0)
    y = net.predict(x)
    assert y.shape == (30, 10)
    loss = net.loss(x, t)
    assert loss == pytest.approx(np.log(10), rel=0.01)  # tiny weights: near-uniform scores
    acc = net.accuracy(x, t, batch_size=7)
    assert acc == np.mean(y.argmax(axis=1) == t)
    assert net.accuracy(x, np.eye(10)[t]) == acc  # one-hot labels too


def test_to_model_gives_the_same_outputs_and_gradients(mnist):
    x, t = mnist[0][:4].astype(np.float64), mnist[1][:4]
    net = SimpleConvNet(hidden_size=20, weight_init_std=0.1, seed=1)
    model = net.to_model()
    assert [type(m).__name__ for m in model] == ["Conv2D", "ReLU", "MaxPool2D", "Flatten", "Dense", "ReLU", "Dense"]
    np.testing.assert_array_equal(model[0].weight.data, net.params['W1'])
    np.testing.assert_array_equal(model[4].weight.data, net.params['W2'].T)  # Dense weight is (out, in)
    model.eval()
    np.testing.assert_allclose(model(x), net.predict(x), rtol=1e-12, atol=1e-13)
    # backward through the converted model gives the textbook gradients (transposed for Dense)
    grads = net.gradient(x, t)
    model.zero_grad()
    model(x)
    loss_fn = nn.losses.CrossEntropyLoss()
    loss_fn(model(x), t)
    model.backward(loss_fn.backward())
    np.testing.assert_allclose(model[0].weight.grad, grads['W1'], rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(model[4].weight.grad, grads['W2'].T, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(model[6].bias.grad, grads['b3'], rtol=1e-9, atol=1e-14)
    assert model.summary((1, 28, 28), print_fn=None).count("Conv2D") == 1
    assert net.params['W1'] is net.layers['Conv1'].W  # converting copies: the textbook net is untouched


def test_to_model_saves_and_rebuilds_from_config(mnist, tmp_path):
    x = mnist[0][:2]
    model = SimpleConvNet(hidden_size=8, seed=0).to_model().eval()
    cfg = nn.module_to_config(model)
    rebuilt = nn.module_from_config(cfg).astype(np.float64)
    rebuilt(x)
    rebuilt.load_state_dict(model.state_dict())
    np.testing.assert_allclose(rebuilt.eval()(x), model(x))


def test_to_model_saves_as_a_convnp_checkpoint(mnist, tmp_path):
    from convnp.io.checkpoint import load, save_model
    x = mnist[0][:3]
    net = SimpleConvNet(hidden_size=8, weight_init_std=0.1, seed=0)
    path = save_model(net.to_model(), str(tmp_path / "simple.npz"), input_shape=(1, 28, 28))
    loaded = load(path)  # rebuilt from its JSON config (float32 by default), in eval mode
    np.testing.assert_allclose(loaded(x), net.predict(x), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- DeepConvNet
def test_deep_convnet_is_the_books_architecture(mnist):
    net = DeepConvNet(seed=0)
    assert [net.params['W%d' % i].shape[0] for i in range(1, 7)] == [16, 16, 32, 32, 64, 64]
    assert net.params['W7'].shape == (64 * 4 * 4, 50) and net.params['W8'].shape == (50, 10)
    assert list(net.layers)[:5] == ['Conv1', 'Relu1', 'Conv2', 'Relu2', 'Pool1']
    assert list(net.layers)[-5:] == ['Affine1', 'Relu7', 'Dropout1', 'Affine2', 'Dropout2']
    assert abs(net.params['W6'].std() - np.sqrt(2 / (64 * 9))) < 0.005  # He initialization
    assert net.predict(mnist[0][:2]).shape == (2, 10)


def test_deep_convnet_gradient_check():
    small = {'filter_num': 2, 'filter_size': 3, 'pad': 1, 'stride': 1}
    net = DeepConvNet(input_dim=(1, 8, 8), **{f'conv_param_{i}': small for i in range(1, 7)}, hidden_size=4,
                      output_size=3, dropout_ratio=0.0, seed=0)
    net.last_layer = StableSoftmaxWithLoss()  # exact log: the numerical gradient matches to rounding
    rng = np.random.default_rng(0)
    for k in net.params:
        if k.startswith('b'):
            net.params[k][...] = 0.1 * rng.standard_normal(net.params[k].shape)
    x, t = rng.standard_normal((2, 1, 8, 8)), np.array([0, 2])
    grads, numeric = net.gradient(x, t), net.numerical_gradient(x, t)
    errors = {k: rel_err(grads[k], numeric[k]) for k in net.params}
    assert len(errors) == 16 and max(errors.values()) < 1e-7, errors


def test_deep_convnet_to_model_folds_the_books_dropout_scaling(mnist):
    x = mnist[0][:3].astype(np.float64)
    net = DeepConvNet(seed=0)
    model = net.to_model()
    assert [type(m).__name__ for m in model][-5:] == ["Dense", "ReLU", "Dropout", "Dense", "Dropout"]
    np.testing.assert_allclose(model[-2].weight.data, 0.25 * net.params['W8'].T)  # both 0.5 factors
    np.testing.assert_allclose(model[-2].bias.data, 0.5 * net.params['b8'])  # only the trailing one
    np.testing.assert_allclose(model.eval()(x), net.predict(x, train_flg=False), rtol=1e-11, atol=1e-13)


def test_layers_to_model_with_batch_norm_and_dropout_in_both_modes():
    rng = np.random.default_rng(0)
    layers = [Convolution(rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)),
              BatchNormalization(1 + rng.random(3), rng.standard_normal(3), running_mean=rng.standard_normal(3),
                                 running_var=1 + rng.random(3)),
              Relu(), Dropout(0.25, seed=0), Pooling(2, 2), Affine(rng.standard_normal((12, 5)), rng.standard_normal(5)),
              BatchNormalization(np.ones(5), np.zeros(5), momentum=0.8)]
    model = layers_to_model(layers, (2, 6, 6))
    assert type(model[1]).__name__ == "BatchNorm2D" and type(model[-1]).__name__ == "BatchNorm1D"
    assert model[1].momentum == pytest.approx(0.1) and model[-1].momentum == pytest.approx(0.2)
    x = rng.standard_normal((4, 2, 6, 6))
    ref = x
    for layer in layers:
        ref = layer.forward(ref, train_flg=False) if isinstance(layer, (Dropout, BatchNormalization)) \
            else layer.forward(ref)
    np.testing.assert_allclose(model.eval()(x), ref, rtol=1e-11, atol=1e-12)
    # training mode with the same keep-mask: the folded (1 - ratio) makes inverted dropout exact
    model.train()
    h = model[:3](x)
    mask = np.random.default_rng(1).random(h.shape) > 0.25  # the book's Dropout: x * mask in training
    ref = layers[6].forward(layers[5].forward(layers[4].forward(h * mask)), train_flg=True)
    assert [type(m).__name__ for m in model][3:7] == ["Dropout", "MaxPool2D", "Flatten", "Dense"]
    out = model[7](model[6](model[5](model[4](h * mask / 0.75))))  # nn.Dropout with the same mask
    np.testing.assert_allclose(out, ref, rtol=1e-11, atol=1e-12)


# ----------------------------------------------------------------------------- files
def test_save_load_round_trip(tmp_path, mnist):
    x = mnist[0][:5]
    a, b = SimpleConvNet(hidden_size=10, seed=0), SimpleConvNet(hidden_size=10, seed=1)
    path = tmp_path / "params.npz"
    a.save_params(str(path))
    w1 = b.params['W1']
    b.load_params(str(path))
    assert b.params['W1'] is w1 and b.layers['Conv1'].W is w1  # loaded in place: layers stay wired
    np.testing.assert_array_equal(b.predict(x), a.predict(x))
    odd = tmp_path / "params.pkl"
    a.save_params(str(odd))  # the book's default name: still npz, written under exactly that name
    assert odd.exists() and odd.read_bytes()[:2] == b"PK"
    b.load_params(str(odd))
    with pytest.raises(ValueError, match=r"does not fit this SimpleConvNet: .*shape mismatch for W2: expected \(4320, 12\), got \(4320, 10\)"):
        SimpleConvNet(hidden_size=12).load_params(str(path))
    np.savez(tmp_path / "x.npz", W1=a.params['W1'])
    with pytest.raises(ValueError, match=r"missing keys \['b1', 'W2', 'b2', 'W3', 'b3'\]"):
        b.load_params(str(tmp_path / "x.npz"))


def test_textbook_pickle_files_need_the_opt_in(tmp_path, mnist):
    a = SimpleConvNet(hidden_size=10, seed=0)
    path = tmp_path / "params.pkl"
    with open(path, "wb") as f:  # what the book's save_params writes
        pickle.dump({k: v.copy() for k, v in a.params.items()}, f)
    b = SimpleConvNet(hidden_size=10, seed=1)
    before = b.params['W1'].copy()
    with pytest.raises(ValueError, match="not an npz file .* pass allow_pickle=True only for a file you trust"):
        b.load_params(str(path))
    np.testing.assert_array_equal(b.params['W1'], before)
    with pytest.warns(UserWarning, match="reading .*params.pkl.* with pickle"):
        b.load_params(str(path), allow_pickle=True)
    np.testing.assert_array_equal(b.predict(mnist[0][:3]), a.predict(mnist[0][:3]))


# ----------------------------------------------------------------------------- errors, devices
def test_network_error_messages():
    with pytest.raises(ValueError, match=r"SimpleConvNet: a 5x5 filter \(pad 0, stride 1\) on a 4x4 input gives a 0x0 map"):
        SimpleConvNet(input_dim=(1, 4, 4))
    with pytest.raises(ValueError, match=r"SimpleConvNet: conv_param has unknown keys \['size'\]"):
        SimpleConvNet(conv_param={'size': 3})
    with pytest.raises(ValueError, match=r"SimpleConvNet: conv_param\['stride'\] must be an integer >= 1, got 0"):
        SimpleConvNet(conv_param={'stride': 0})
    with pytest.raises(ValueError, match=r"SimpleConvNet: input_dim must be \(C, H, W\), got \(28, 28\)"):
        SimpleConvNet(input_dim=(28, 28))
    with pytest.raises(ValueError, match="SimpleConvNet: hidden_size must be a positive integer, got 0"):
        SimpleConvNet(hidden_size=0)
    with pytest.raises(ValueError, match="weight_init_std must be a number, 'he'/'relu' or 'xavier'/'sigmoid'"):
        SimpleConvNet(weight_init_std="big")
    with pytest.raises(ValueError, match="DeepConvNet: the feature map before pooling 1 is 1x1"):
        DeepConvNet(input_dim=(1, 1, 1))
    net = SimpleConvNet(hidden_size=4, seed=0)
    with pytest.raises(ValueError, match=r"Convolution: input has 3 channels"):
        net.predict(np.zeros((1, 3, 28, 28)))
    with pytest.raises(ValueError, match=r"Affine: input \(1, 30, 13, 13\) has 5070 features per sample but W \(4320, 4\) expects 4320"):
        net.predict(np.zeros((1, 1, 30, 30)))
    with pytest.raises(ValueError, match="accuracy: x has 2 samples but t has 3"):
        net.accuracy(np.zeros((2, 1, 28, 28)), np.zeros(3, int))
    assert SimpleConvNet(weight_init_std='he', seed=0).params['W3'].std() == pytest.approx(np.sqrt(2 / 100), rel=0.1)


@pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a GPU")
def test_simple_convnet_on_cupy(mnist):  # pragma: no cover - GPU only
    import cupy
    x, t = mnist[0][:8], mnist[1][:8]
    cpu = SimpleConvNet(hidden_size=16, weight_init_std=0.1, seed=0)
    gpu = SimpleConvNet(hidden_size=16, weight_init_std=0.1, seed=0).to("cuda")
    assert isinstance(gpu.params['W1'], cupy.ndarray) and gpu.layers['Conv1'].W is gpu.params['W1']
    np.testing.assert_allclose(cupy.asnumpy(gpu.predict(x)), cpu.predict(x), rtol=1e-9, atol=1e-12)
    g_cpu, g_gpu = cpu.gradient(x, t), gpu.gradient(cupy.asarray(x), cupy.asarray(t))
    for k in g_cpu:
        np.testing.assert_allclose(cupy.asnumpy(g_gpu[k]), g_cpu[k], rtol=1e-7, atol=1e-12)
    model = gpu.to_model().eval()
    np.testing.assert_allclose(cupy.asnumpy(model(cupy.asarray(x))), cpu.predict(x), rtol=1e-9, atol=1e-12)
    assert gpu.accuracy(x, t) == cpu.accuracy(x, t)
