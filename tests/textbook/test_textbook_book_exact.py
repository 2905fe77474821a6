"""convnp.textbook reproduces "Deep Learning from Scratch" (ch. 6/7) bit for bit: the book's optimizers and
its softmax + cross_entropy_error (delta 1e-7) are written out here from the book's formulas, and 100
steps of each against convnp.textbook differ by less than 1e-12 (relative to each array's largest entry)."""
import numpy as np
import pytest

from convnp import textbook


# ------------------------------------------------------------------------ the book's algorithms (ch. 6)
class BookSGD:
    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        for key in params:
            params[key] -= self.lr * grads[key]


class BookMomentum:
    def __init__(self, lr=0.01, momentum=0.9):
        self.lr, self.momentum, self.v = lr, momentum, None

    def update(self, params, grads):
        if self.v is None:
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params:
            self.v[key] = self.momentum * self.v[key] - self.lr * grads[key]
            params[key] += self.v[key]


class BookNesterov:
    def __init__(self, lr=0.01, momentum=0.9):
        self.lr, self.momentum, self.v = lr, momentum, None

    def update(self, params, grads):
        if self.v is None:
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params:
            self.v[key] *= self.momentum
            self.v[key] -= self.lr * grads[key]
            params[key] += self.momentum * self.momentum * self.v[key]
            params[key] -= (1 + self.momentum) * self.lr * grads[key]


class BookAdaGrad:
    def __init__(self, lr=0.01):
        self.lr, self.h = lr, None

    def update(self, params, grads):
        if self.h is None:
            self.h = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params:
            self.h[key] += grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)


class BookRMSprop:
    def __init__(self, lr=0.01, decay_rate=0.99):
        self.lr, self.decay_rate, self.h = lr, decay_rate, None

    def update(self, params, grads):
        if self.h is None:
            self.h = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params:
            self.h[key] *= self.decay_rate
            self.h[key] += (1 - self.decay_rate) * grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)


class BookAdam:
    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr, self.beta1, self.beta2, self.iter, self.m, self.v = lr, beta1, beta2, 0, None, None

    def update(self, params, grads):
        if self.m is None:
            self.m = {key: np.zeros_like(val) for key, val in params.items()}
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        self.iter += 1
        lr_t = self.lr * np.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)
        for key in params:
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta2) * (grads[key] ** 2 - self.v[key])
            params[key] -= lr_t * self.m[key] / (np.sqrt(self.v[key]) + 1e-7)


def book_softmax(x):
    x = x - np.max(x, axis=-1, keepdims=True)
    return np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)


def book_cross_entropy_error(y, t):
    if y.ndim == 1:
        t, y = t.reshape(1, t.size), y.reshape(1, y.size)
    if t.size == y.size:
        t = t.argmax(axis=1)
    batch_size = y.shape[0]
    return -np.sum(np.log(y[np.arange(batch_size), t] + 1e-7)) / batch_size


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


PAIRS = [("SGD", BookSGD, {"lr": 0.1}), ("Momentum", BookMomentum, {"lr": 0.05, "momentum": 0.9}),
         ("Nesterov", BookNesterov, {"lr": 0.05, "momentum": 0.9}), ("AdaGrad", BookAdaGrad, {"lr": 0.1}),
         ("RMSprop", BookRMSprop, {"lr": 0.01, "decay_rate": 0.99}), ("Adam", BookAdam, {"lr": 0.01})]


@pytest.mark.parametrize("name,book_cls,kwargs", PAIRS, ids=[p[0] for p in PAIRS])
def test_optimizer_100_steps_match_the_book(name, book_cls, kwargs):
    """A small softmax regression trained with both: the gradients come from the book's formulas, so any
    difference in an update feeds every later step."""
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((32, 6)), rng.integers(0, 4, 32)
    init = {"W": rng.standard_normal((6, 4)) * 0.5, "b": rng.standard_normal(4) * 0.1}
    mine, book = {k: v.copy() for k, v in init.items()}, {k: v.copy() for k, v in init.items()}
    opt_mine, opt_book = getattr(textbook, name)(**kwargs), book_cls(**kwargs)

    def grads(p):
        y = book_softmax(x @ p["W"] + p["b"])
        d = y.copy()
        d[np.arange(len(t)), t] -= 1
        d /= len(t)
        return {"W": x.T @ d, "b": d.sum(axis=0)}

    for _ in range(100):
        w_before = mine["W"]
        opt_mine.update(mine, grads(mine))
        opt_book.update(book, grads(book))
        assert mine["W"] is w_before  # updated in place, as the book's
    for k in init:
        assert not np.allclose(mine[k], init[k])  # it trained
        assert _rel(mine[k], book[k]) < 1e-12, (k, _rel(mine[k], book[k]))


def test_softmax_with_loss_is_the_books():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 5)) * 4
    t = rng.integers(0, 5, 8)
    layer = textbook.SoftmaxWithLoss()
    for _ in range(100):  # 100 gradient steps on the logits themselves
        loss = layer.forward(x, t)
        y = book_softmax(x)
        assert loss == pytest.approx(book_cross_entropy_error(y, t), rel=1e-12)
        dx = layer.backward()
        d = y.copy()
        d[np.arange(8), t] -= 1
        assert _rel(dx, d / 8) < 1e-12
        x = x - 0.5 * dx
    onehot = np.eye(5)[t]
    assert layer.forward(x, onehot) == pytest.approx(book_cross_entropy_error(book_softmax(x), onehot), rel=1e-12)
    assert _rel(layer.backward(), (book_softmax(x) - onehot) / 8) < 1e-12
    # the 1e-7: a certain wrong answer costs -log(1e-7) = 16.1, not infinity
    assert textbook.cross_entropy_error(np.array([[1.0, 0.0]]), np.array([1])) == pytest.approx(-np.log(1e-7))
    assert textbook.cross_entropy_error(book_softmax(x), t) == pytest.approx(book_cross_entropy_error(book_softmax(x), t),
                                                                             rel=1e-12)


def test_pooling_stride_defaults_to_two_as_the_book():
    assert textbook.Pooling(2, 2).stride == 2
    assert "default 2" in textbook.Pooling.__doc__
