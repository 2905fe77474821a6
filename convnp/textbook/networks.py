"""The textbook's networks: SimpleConvNet and DeepConvNet ("Deep Learning from Scratch", ch. 7-8).

Same constructor arguments, ``params`` dict (W1, b1, ...), ``layers`` OrderedDict and methods as the book
(``predict``, ``loss``, ``accuracy``, ``gradient``, ``numerical_gradient``, ``save_params``,
``load_params``), built from the :mod:`convnp.textbook.layers` wrappers, so the arithmetic is convnp's.
Additions: ``seed`` and ``dtype`` arguments, ``to(device)`` for CuPy, and ``to_model()``, which returns an
equivalent :class:`convnp.nn.Sequential` (summary, viz, save and the CLI then apply).

Example::

    (x_train, t_train), (x_test, t_test) = convnp.data.load_mnist()
    net = SimpleConvNet(seed=0)
    grads = net.gradient(x_train[:100], t_train[:100])     # {'W1': ..., 'b1': ..., ...}
    print(net.accuracy(x_test, t_test))
"""
from __future__ import annotations

import pickle
import warnings
from collections import OrderedDict

import numpy as np

from ..backend import get_array_module, no_grad, to_device, to_numpy
from ..gradcheck import numerical_gradient as _numerical_gradient
from .convert import layers_to_model
from .layers import Affine, BatchNormalization, Convolution, Dropout, Pooling, Relu, SoftmaxWithLoss

__all__ = ["SimpleConvNet", "DeepConvNet"]

_CONV_KEYS = ("filter_num", "filter_size", "pad", "stride")


def _conv_param(where, name, given, default):
    param = dict(default)
    unknown = sorted(set(given) - set(_CONV_KEYS))
    if unknown:
        raise ValueError(f"{where}: {name} has unknown keys {unknown}; expected {list(_CONV_KEYS)}")
    param.update(given)
    for key in _CONV_KEYS:
        v = param[key]
        low = 0 if key == "pad" else 1
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"{where}: {name}['{key}'] must be an integer >= {low}, got {v!r}")
    return param


def _init_scale(weight_init_std, fan_in, where):
    """A number, or the book's 'relu'/'he' (sqrt(2/fan_in)) and 'sigmoid'/'xavier' (sqrt(1/fan_in))."""
    if isinstance(weight_init_std, str):
        key = weight_init_std.lower()
        if key in ("relu", "he"):
            return float(np.sqrt(2.0 / fan_in))
        if key in ("sigmoid", "xavier"):
            return float(np.sqrt(1.0 / fan_in))
        raise ValueError(f"{where}: weight_init_std must be a number, 'he'/'relu' or 'xavier'/'sigmoid', "
                         f"got {weight_init_std!r}")
    return float(weight_init_std)


class _BookNet:
    """What SimpleConvNet and DeepConvNet share: the book's methods on ``params`` / ``layers``."""

    #: param key -> (layer name, attribute): "W1" -> ("Conv1", "W")
    _param_map: "OrderedDict[str, tuple[str, str]]"

    def _setup_random(self, seed, dtype):
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise ValueError(f"{type(self).__name__}: dtype must be a float type, got {self.dtype}")
        # seed None draws from np.random's global state, like the book (np.random.seed(...) reproduces it)
        self._rng = np.random if seed is None else np.random.default_rng(seed)

    def _randn(self, scale, shape):
        return (scale * self._rng.standard_normal(shape)).astype(self.dtype)

    def _child_seed(self, seed):
        return None if seed is None else int(self._rng.integers(2 ** 31))

    def _zeros(self, n):
        return np.zeros(n, dtype=self.dtype)

    def _rewire(self):
        """Point every layer at the current arrays of ``params`` (after ``to()`` or a rebinding)."""
        for key, (layer, attr) in self._param_map.items():
            setattr(self.layers[layer], attr, self.params[key])

    # ------------------------------------------------------------------ device
    @property
    def xp(self):
        """numpy or cupy, whichever holds the parameters."""
        return get_array_module(*self.params.values())

    def _to_device(self, a):
        xp = self.xp
        if xp is np:
            return to_numpy(a)
        return xp.asarray(a)

    def to(self, device):
        """Move ``params`` (and batch-norm running statistics) to 'cpu' or 'cuda', in place; returns self."""
        for key in self.params:
            self.params[key] = to_device(self.params[key], device)
        for layer in self.layers.values():
            if isinstance(layer, BatchNormalization):
                layer.running_mean = to_device(layer.running_mean, device)
                layer.running_var = to_device(layer.running_var, device)
        self._rewire()
        return self

    # ------------------------------------------------------------------ the book's methods
    def predict(self, x, train_flg=False):
        """Scores (N, output_size) before the softmax. ``train_flg`` switches Dropout / BatchNormalization."""
        x = self._to_device(x)
        for layer in self.layers.values():
            if isinstance(layer, (Dropout, BatchNormalization)):
                x = layer.forward(x, train_flg)
            else:
                x = layer.forward(x)
        return x

    def loss(self, x, t):
        """Mean cross-entropy of ``predict(x, train_flg=True)`` against ``t`` (labels (N,) or one-hot (N, K))."""
        y = self.predict(x, train_flg=True)
        return self.last_layer.forward(y, self._to_device(t))

    def accuracy(self, x, t, batch_size=100):
        """Fraction of ``x`` classified as ``t`` (labels or one-hot), evaluated in batches of ``batch_size``."""
        t = to_numpy(t)
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        if len(t) != len(x):
            raise ValueError(f"{type(self).__name__}.accuracy: x has {len(x)} samples but t has {len(t)}")
        if len(x) == 0:
            return 0.0
        correct = 0
        with no_grad():
            for start in range(0, len(x), int(batch_size)):
                y = self.predict(x[start:start + batch_size], train_flg=False)
                correct += int((to_numpy(y.argmax(axis=1)) == t[start:start + batch_size]).sum())
        return correct / len(x)

    def gradient(self, x, t):
        """Backprop gradients of ``loss(x, t)``: a dict with the keys of ``params``."""
        self.loss(x, t)
        dout = self.last_layer.backward(1)
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)
        return {key: getattr(self.layers[layer], "d" + attr) for key, (layer, attr) in self._param_map.items()}

    def numerical_gradient(self, x, t, eps=1e-6):
        """Central-difference gradients of ``loss(x, t)`` (:func:`convnp.gradcheck.numerical_gradient`), for
        gradient checks in float64 on tiny inputs. (With Dropout the loss is random: use ratio 0 to check.)"""
        x, t = self._to_device(x), self._to_device(t)
        with no_grad():
            return {key: _numerical_gradient(lambda: self.loss(x, t), self.params[key], eps) for key in self.params}

    # ------------------------------------------------------------------ files
    def save_params(self, file_name="params.npz"):
        """Write ``params`` to ``file_name`` as an npz archive (exactly that name; no pickle)."""
        with open(file_name, "wb") as f:
            np.savez(f, **{k: to_numpy(v) for k, v in self.params.items()})

    def load_params(self, file_name="params.npz", allow_pickle=False):
        """Read parameters saved by :meth:`save_params` (npz) into ``params``, in place.

        The book's ``save_params`` writes a pickle (``params.pkl``). Unpickling can run arbitrary code, so
        such a file is read only with ``allow_pickle=True`` (for files you trust), with a warning.
        Keys and shapes must match this network; values are cast to its dtype and device.
        """
        with open(file_name, "rb") as f:
            magic = f.read(4)
        if magic.startswith(b"PK"):  # a zip archive: npz
            with np.load(file_name, allow_pickle=False) as data:
                loaded = {k: data[k] for k in data.files}
        elif not allow_pickle:
            raise ValueError(f"load_params: {file_name!r} is not an npz file (the textbook's save_params writes "
                             "a pickle); unpickling can run arbitrary code, so pass allow_pickle=True only for a "
                             "file you trust")
        else:
            warnings.warn(f"load_params: reading {file_name!r} with pickle (allow_pickle=True); unpickling can "
                          "run arbitrary code: only do this for files you trust, and re-save with "
                          "save_params() as npz", UserWarning, stacklevel=2)
            with open(file_name, "rb") as f:
                loaded = dict(pickle.load(f))
        missing = [k for k in self.params if k not in loaded]
        unexpected = [k for k in loaded if k not in self.params]
        wrong = [f"{k}: expected {tuple(self.params[k].shape)}, got {tuple(np.shape(loaded[k]))}"
                 for k in self.params if k in loaded and tuple(np.shape(loaded[k])) != tuple(self.params[k].shape)]
        if missing or unexpected or wrong:
            parts = ([f"missing keys {missing}"] if missing else []) + \
                    ([f"unexpected keys {unexpected}"] if unexpected else []) + \
                    ([f"shape mismatch for {'; '.join(wrong)}"] if wrong else [])
            raise ValueError(f"load_params: {file_name!r} does not fit this {type(self).__name__}: "
                             + " | ".join(parts))
        xp = self.xp
        for key, value in loaded.items():
            self.params[key][...] = xp.asarray(np.asarray(value), dtype=self.params[key].dtype)

    # ------------------------------------------------------------------ conversion
    def to_model(self):
        """An equivalent :class:`convnp.nn.Sequential` with copies of the weights (see :mod:`.convert`)."""
        return layers_to_model(list(self.layers.values()), self.input_dim)

    def __repr__(self):
        lines = [f"{type(self).__name__}("]
        lines += [f"  ({name}): {layer!r}" for name, layer in self.layers.items()]
        lines.append(f"  (last_layer): {self.last_layer!r}")
        return "\n".join(lines) + "\n)"


class SimpleConvNet(_BookNet):
    """The book's simple CNN: conv - relu - pool - affine - relu - affine - softmax.

    Args:
        input_dim: (C, H, W) of one sample.
        conv_param: filter_num, filter_size, pad, stride of the convolution (missing keys take the defaults).
        hidden_size: width of the hidden affine layer.
        output_size: number of classes.
        weight_init_std: std of the Gaussian initial weights (a number), or 'he'/'relu', 'xavier'/'sigmoid'.
        seed: None (np.random's global state, as the book) or a seed for a private Generator.
        dtype: float64 (the book's arrays) or float32 (twice as fast, too coarse for numerical gradients).

    Shape: (N, C, H, W) -> scores (N, output_size). Conv output OH = (H + 2*pad - filter_size) // stride + 1,
    pooling 2x2 stride 2: OH // 2. Params: W1 (FN, C, FS, FS), b1, W2 (FN*OH/2*OW/2, hidden), b2,
    W3 (hidden, output_size), b3.
    Example: ``SimpleConvNet()`` on MNIST reaches about 99% test accuracy after 20 epochs of Adam.
    """

    def __init__(self, input_dim=(1, 28, 28),
                 conv_param={'filter_num': 30, 'filter_size': 5, 'pad': 0, 'stride': 1},  # noqa: B006 (the book's)
                 hidden_size=100, output_size=10, weight_init_std=0.01, seed=None, dtype=np.float64):
        where = "SimpleConvNet"
        if len(tuple(input_dim)) != 3:
            raise ValueError(f"{where}: input_dim must be (C, H, W), got {input_dim!r}")
        self.input_dim = tuple(int(v) for v in input_dim)
        p = _conv_param(where, "conv_param", conv_param, {'filter_num': 30, 'filter_size': 5, 'pad': 0, 'stride': 1})
        for name, v in (("hidden_size", hidden_size), ("output_size", output_size)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{where}: {name} must be a positive integer, got {v!r}")
        c, h, w = self.input_dim
        fn, fs, pad, stride = p['filter_num'], p['filter_size'], p['pad'], p['stride']
        oh, ow = (h + 2 * pad - fs) // stride + 1, (w + 2 * pad - fs) // stride + 1
        if h + 2 * pad < fs or w + 2 * pad < fs or oh < 2 or ow < 2:
            raise ValueError(f"{where}: a {fs}x{fs} filter (pad {pad}, stride {stride}) on a {h}x{w} input gives a "
                             f"{max(oh, 0)}x{max(ow, 0)} map, too small for the 2x2 pooling")
        pool_output_size = fn * (oh // 2) * (ow // 2)

        self._setup_random(seed, dtype)
        self.params = {}
        self.params['W1'] = self._randn(_init_scale(weight_init_std, c * fs * fs, where), (fn, c, fs, fs))
        self.params['b1'] = self._zeros(fn)
        self.params['W2'] = self._randn(_init_scale(weight_init_std, pool_output_size, where),
                                        (pool_output_size, hidden_size))
        self.params['b2'] = self._zeros(hidden_size)
        self.params['W3'] = self._randn(_init_scale(weight_init_std, hidden_size, where), (hidden_size, output_size))
        self.params['b3'] = self._zeros(output_size)

        self.layers = OrderedDict()
        self.layers['Conv1'] = Convolution(self.params['W1'], self.params['b1'], stride, pad)
        self.layers['Relu1'] = Relu()
        self.layers['Pool1'] = Pooling(pool_h=2, pool_w=2, stride=2)
        self.layers['Affine1'] = Affine(self.params['W2'], self.params['b2'])
        self.layers['Relu2'] = Relu()
        self.layers['Affine2'] = Affine(self.params['W3'], self.params['b3'])
        self.last_layer = SoftmaxWithLoss()
        self._param_map = OrderedDict([('W1', ('Conv1', 'W')), ('b1', ('Conv1', 'b')),
                                       ('W2', ('Affine1', 'W')), ('b2', ('Affine1', 'b')),
                                       ('W3', ('Affine2', 'W')), ('b3', ('Affine2', 'b'))])


class DeepConvNet(_BookNet):
    """The book's deep CNN (ch. 8, ~99.4% on MNIST): He-initialized 3x3 convolutions, no batch norm.

        conv - relu - conv - relu - pool - conv - relu - conv - relu - pool - conv - relu - conv - relu - pool -
        affine - relu - dropout - affine - dropout - softmax

    Args:
        input_dim: (C, H, W).
        conv_param_1 ... conv_param_6: the six convolutions (book defaults: 16, 16, 32, 32, 64, 64 filters of
            3x3, pad 1 except conv 4 with pad 2, stride 1).
        hidden_size, output_size: widths of the two affine layers.
        dropout_ratio: of both Dropout layers (the book's 0.5).
        seed, dtype: as in :class:`SimpleConvNet`.

    Params: W1..W6 (conv filters), W7 (64*4*4, hidden), W8 (hidden, output_size) and b1..b8.
    Weights start at He's scale sqrt(2 / fan_in). Pooling rounds odd sizes down.
    """

    _DEFAULTS = [{'filter_num': 16, 'filter_size': 3, 'pad': 1, 'stride': 1},
                 {'filter_num': 16, 'filter_size': 3, 'pad': 1, 'stride': 1},
                 {'filter_num': 32, 'filter_size': 3, 'pad': 1, 'stride': 1},
                 {'filter_num': 32, 'filter_size': 3, 'pad': 2, 'stride': 1},
                 {'filter_num': 64, 'filter_size': 3, 'pad': 1, 'stride': 1},
                 {'filter_num': 64, 'filter_size': 3, 'pad': 1, 'stride': 1}]

    def __init__(self, input_dim=(1, 28, 28),
                 conv_param_1=None, conv_param_2=None, conv_param_3=None,
                 conv_param_4=None, conv_param_5=None, conv_param_6=None,
                 hidden_size=50, output_size=10, dropout_ratio=0.5, seed=None, dtype=np.float64):
        where = "DeepConvNet"
        if len(tuple(input_dim)) != 3:
            raise ValueError(f"{where}: input_dim must be (C, H, W), got {input_dim!r}")
        self.input_dim = tuple(int(v) for v in input_dim)
        given = [conv_param_1, conv_param_2, conv_param_3, conv_param_4, conv_param_5, conv_param_6]
        convs = [_conv_param(where, f"conv_param_{i + 1}", g or {}, d)
                 for i, (g, d) in enumerate(zip(given, self._DEFAULTS))]
        self._setup_random(seed, dtype)
        self.params, self.layers, self._param_map = {}, OrderedDict(), OrderedDict()
        c, h, w = self.input_dim
        for i, p in enumerate(convs):
            fn, fs, pad, stride = p['filter_num'], p['filter_size'], p['pad'], p['stride']
            h, w = (h + 2 * pad - fs) // stride + 1, (w + 2 * pad - fs) // stride + 1
            if h < 1 or w < 1:
                raise ValueError(f"{where}: conv_param_{i + 1} gives an empty feature map for input_dim "
                                 f"{self.input_dim}")
            k = str(i + 1)
            self.params['W' + k] = self._randn(np.sqrt(2.0 / (c * fs * fs)), (fn, c, fs, fs))
            self.params['b' + k] = self._zeros(fn)
            self.layers['Conv' + k] = Convolution(self.params['W' + k], self.params['b' + k], stride, pad)
            self.layers['Relu' + k] = Relu()
            self._param_map['W' + k], self._param_map['b' + k] = ('Conv' + k, 'W'), ('Conv' + k, 'b')
            c = fn
            if i % 2 == 1:
                if h < 2 or w < 2:
                    raise ValueError(f"{where}: the feature map before pooling {i // 2 + 1} is {h}x{w}, "
                                     f"too small for 2x2 pooling (input_dim {self.input_dim})")
                h, w = h // 2, w // 2
                self.layers['Pool' + str(i // 2 + 1)] = Pooling(pool_h=2, pool_w=2, stride=2)
        flat = c * h * w
        self.params['W7'] = self._randn(np.sqrt(2.0 / flat), (flat, hidden_size))
        self.params['b7'] = self._zeros(hidden_size)
        self.params['W8'] = self._randn(np.sqrt(2.0 / hidden_size), (hidden_size, output_size))
        self.params['b8'] = self._zeros(output_size)
        self.layers['Affine1'] = Affine(self.params['W7'], self.params['b7'])
        self.layers['Relu7'] = Relu()
        self.layers['Dropout1'] = Dropout(dropout_ratio, seed=self._child_seed(seed))
        self.layers['Affine2'] = Affine(self.params['W8'], self.params['b8'])
        self.layers['Dropout2'] = Dropout(dropout_ratio, seed=self._child_seed(seed))
        self.last_layer = SoftmaxWithLoss()
        for k, name in (('7', 'Affine1'), ('8', 'Affine2')):
            self._param_map['W' + k], self._param_map['b' + k] = (name, 'W'), (name, 'b')
