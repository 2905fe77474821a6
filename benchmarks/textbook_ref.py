"""The plain textbook implementation ("Deep Learning from Scratch", ch. 7), float64, as a benchmark peer.

Written in the book's style for comparison only: im2col with a loop over filter offsets, Convolution,
Pooling, Relu, Affine, SoftmaxWithLoss, Adam; SimpleConvNet and DeepConvNet. Not used by convnp itself.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np


def im2col(x, fh, fw, stride=1, pad=0):
    n, c, h, w = x.shape
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    img = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)], "constant")
    col = np.zeros((n, c, fh, fw, oh, ow))
    for y in range(fh):
        for xx in range(fw):
            col[:, :, y, xx, :, :] = img[:, :, y:y + stride * oh:stride, xx:xx + stride * ow:stride]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, -1)


def col2im(col, shape, fh, fw, stride=1, pad=0):
    n, c, h, w = shape
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    col = col.reshape(n, oh, ow, c, fh, fw).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((n, c, h + 2 * pad + stride - 1, w + 2 * pad + stride - 1))
    for y in range(fh):
        for xx in range(fw):
            img[:, :, y:y + stride * oh:stride, xx:xx + stride * ow:stride] += col[:, :, y, xx, :, :]
    return img[:, :, pad:h + pad, pad:w + pad]


class Convolution:
    def __init__(self, W, b, stride=1, pad=0):
        self.W, self.b, self.stride, self.pad = W, b, stride, pad

    def forward(self, x):
        fn, c, fh, fw = self.W.shape
        n, _, h, w = x.shape
        oh, ow = (h + 2 * self.pad - fh) // self.stride + 1, (w + 2 * self.pad - fw) // self.stride + 1
        self.x, self.col = x, im2col(x, fh, fw, self.stride, self.pad)
        self.col_W = self.W.reshape(fn, -1).T
        out = self.col @ self.col_W + self.b
        return out.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)

    def backward(self, dout):
        fn, c, fh, fw = self.W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, fn)
        self.db = dout.sum(axis=0)
        self.dW = (self.col.T @ dout).transpose(1, 0).reshape(fn, c, fh, fw)
        return col2im(dout @ self.col_W.T, self.x.shape, fh, fw, self.stride, self.pad)


class Pooling:
    def __init__(self, ph, pw, stride=2, pad=0):
        self.ph, self.pw, self.stride, self.pad = ph, pw, stride, pad

    def forward(self, x):
        n, c, h, w = x.shape
        oh, ow = (h - self.ph) // self.stride + 1, (w - self.pw) // self.stride + 1
        col = im2col(x, self.ph, self.pw, self.stride, self.pad).reshape(-1, self.ph * self.pw)
        self.x, self.arg_max = x, np.argmax(col, axis=1)
        return np.max(col, axis=1).reshape(n, oh, ow, c).transpose(0, 3, 1, 2)

    def backward(self, dout):
        dout = dout.transpose(0, 2, 3, 1)
        size = self.ph * self.pw
        dmax = np.zeros((dout.size, size))
        dmax[np.arange(self.arg_max.size), self.arg_max.flatten()] = dout.flatten()
        dcol = dmax.reshape(dout.shape + (size,)).reshape(dout.shape[0] * dout.shape[1] * dout.shape[2], -1)
        return col2im(dcol, self.x.shape, self.ph, self.pw, self.stride, self.pad)


class Relu:
    def forward(self, x):
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        dout = dout.copy()
        dout[self.mask] = 0
        return dout


class Affine:
    def __init__(self, W, b):
        self.W, self.b = W, b

    def forward(self, x):
        self.shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        return self.x @ self.W + self.b

    def backward(self, dout):
        self.dW, self.db = self.x.T @ dout, dout.sum(axis=0)
        return (dout @ self.W.T).reshape(self.shape)


class Dropout:
    def __init__(self, ratio=0.5):
        self.ratio = ratio

    def forward(self, x, train=True):
        if train:
            self.mask = np.random.rand(*x.shape) > self.ratio
            return x * self.mask
        return x * (1.0 - self.ratio)

    def backward(self, dout):
        return dout * self.mask


class SoftmaxWithLoss:
    def forward(self, x, t):
        x = x - x.max(axis=1, keepdims=True)
        self.y = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
        self.t = t
        return -np.log(self.y[np.arange(len(t)), t] + 1e-7).mean()

    def backward(self):
        dx = self.y.copy()
        dx[np.arange(len(self.t)), self.t] -= 1
        return dx / len(self.t)


class Adam:
    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr, self.beta1, self.beta2, self.iter, self.m, self.v = lr, beta1, beta2, 0, None, None

    def update(self, params, grads):
        if self.m is None:
            self.m = {k: np.zeros_like(v) for k, v in params.items()}
            self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.iter += 1
        lr_t = self.lr * np.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)
        for k in params:
            self.m[k] += (1 - self.beta1) * (grads[k] - self.m[k])
            self.v[k] += (1 - self.beta2) * (grads[k] ** 2 - self.v[k])
            params[k] -= lr_t * self.m[k] / (np.sqrt(self.v[k]) + 1e-7)


class _Net:
    def predict(self, x, train=False):
        for layer in self.layers.values():
            x = layer.forward(x, train) if isinstance(layer, Dropout) else layer.forward(x)
        return x

    def gradient(self, x, t):
        self.last.forward(self.predict(x, train=True), t)
        dout = self.last.backward()
        for layer in reversed(list(self.layers.values())):
            dout = layer.backward(dout)
        grads = {}
        for i, name in self.param_layers:
            grads[f"W{i}"], grads[f"b{i}"] = self.layers[name].dW, self.layers[name].db
        return grads


class SimpleConvNet(_Net):
    """conv 30 5x5 - relu - pool 2 - affine 100 - relu - affine 10 (the book's train_convnet.py)."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        p = self.params = {
            "W1": 0.01 * rng.standard_normal((30, 1, 5, 5)), "b1": np.zeros(30),
            "W2": 0.01 * rng.standard_normal((30 * 12 * 12, 100)), "b2": np.zeros(100),
            "W3": 0.01 * rng.standard_normal((100, 10)), "b3": np.zeros(10)}
        self.layers = OrderedDict([
            ("Conv1", Convolution(p["W1"], p["b1"])), ("Relu1", Relu()), ("Pool1", Pooling(2, 2, 2)),
            ("Affine1", Affine(p["W2"], p["b2"])), ("Relu2", Relu()), ("Affine2", Affine(p["W3"], p["b3"]))])
        self.param_layers = [(1, "Conv1"), (2, "Affine1"), (3, "Affine2")]
        self.last = SoftmaxWithLoss()


class DeepConvNet(_Net):
    """The book's DeepConvNet layers, 6 conv 3x3 (16,16,32,32,64,64) + 3 pools + affine 50 + dropout + affine 10,
    with every conv padded by 1 (the book pads conv4 by 2) so that it does exactly the work of
    ``convnp.models.deep_convnet`` and the PyTorch peer: 3x3 maps at the end, 101,152 parameters."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        chans = [(1, 16), (16, 16), (16, 32), (32, 32), (32, 64), (64, 64)]
        p = self.params = {}
        for i, (ci, co) in enumerate(chans, 1):
            p[f"W{i}"] = np.sqrt(2.0 / (ci * 9)) * rng.standard_normal((co, ci, 3, 3))
            p[f"b{i}"] = np.zeros(co)
        p["W7"], p["b7"] = np.sqrt(2.0 / (64 * 9)) * rng.standard_normal((64 * 3 * 3, 50)), np.zeros(50)
        p["W8"], p["b8"] = np.sqrt(2.0 / 50) * rng.standard_normal((50, 10)), np.zeros(10)
        layers, self.param_layers = [], []
        pads = [1, 1, 1, 1, 1, 1]
        for i in range(1, 7):
            layers.append((f"Conv{i}", Convolution(p[f"W{i}"], p[f"b{i}"], 1, pads[i - 1])))
            layers.append((f"Relu{i}", Relu()))
            self.param_layers.append((i, f"Conv{i}"))
            if i % 2 == 0:
                layers.append((f"Pool{i // 2}", Pooling(2, 2, 2)))
        layers += [("Affine1", Affine(p["W7"], p["b7"])), ("Relu7", Relu()), ("Drop1", Dropout(0.5)),
                   ("Affine2", Affine(p["W8"], p["b8"]))]
        self.param_layers += [(7, "Affine1"), (8, "Affine2")]
        self.layers = OrderedDict(layers)
        self.last = SoftmaxWithLoss()
