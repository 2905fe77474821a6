"""convnp.textbook optimizers and Trainer: in-place updates through convnp.optim, the book's formulas,
every sample once per epoch, and the textbook script learning MNIST in CI."""
import importlib.util
import pathlib

import numpy as np
import pytest

import convnp
from convnp.textbook import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop, SimpleConvNet, Trainer
from convnp.textbook.optimizers import get_textbook_optimizer

ROOT = pathlib.Path(__file__).resolve().parents[2]


class RecordingNet:
    """A stand-in network whose inputs are sample ids: records which samples each step saw."""

    def __init__(self):
        self.params = {"W": np.zeros(3)}
        self.batches = []

    def gradient(self, x, t):
        self.batches.append(np.asarray(x).copy())
        return {"W": np.ones(3)}

    def loss(self, x, t):
        return float(len(x))

    def accuracy(self, x, t, batch_size=100):
        return len(x) / 1000.0


class CountingOptimizer:
    def __init__(self):
        self.steps = 0

    def update(self, params, grads):
        self.steps += 1
        params["W"] -= 0.5 * grads["W"]


# ----------------------------------------------------------------------------- Trainer (no optim needed)
def test_trainer_visits_every_sample_once_per_epoch():
    x = np.arange(23)
    net, opt = RecordingNet(), CountingOptimizer()
    trainer = Trainer(net, x, x, x[:5], x[:5], epochs=3, mini_batch_size=5, optimizer=opt, verbose=False, seed=0)
    trainer.train()
    assert trainer.iter_per_epoch == 5 and trainer.max_iter == 15 and opt.steps == 15
    assert [len(b) for b in net.batches] == [5, 5, 5, 5, 3] * 3  # the last batch of each epoch is smaller
    epochs = [np.concatenate(net.batches[i * 5:(i + 1) * 5]) for i in range(3)]
    for seen in epochs:
        np.testing.assert_array_equal(np.sort(seen), x)  # each sample exactly once
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled every epoch
    assert trainer.train_loss_list == [5.0, 5.0, 5.0, 5.0, 3.0] * 3
    assert len(trainer.train_acc_list) == len(trainer.test_acc_list) == 3 and trainer.current_epoch == 3
    np.testing.assert_array_equal(net.params["W"], -7.5)
    again = RecordingNet()
    Trainer(again, x, x, x, x, epochs=3, mini_batch_size=5, optimizer=CountingOptimizer(), verbose=False,
            seed=0).train()
    np.testing.assert_array_equal(np.concatenate(again.batches), np.concatenate(net.batches))  # seeded


def test_trainer_evaluates_on_a_sample_and_prints(capsys):
    x = np.arange(40)
    trainer = Trainer(RecordingNet(), x, x, x[:30], x[:30], epochs=2, mini_batch_size=10,
                      optimizer=CountingOptimizer(), evaluate_sample_num_per_epoch=20, seed=1)
    trainer.train()
    assert trainer.train_acc_list == [0.02, 0.02] and trainer.test_acc_list == [0.02, 0.02]
    assert trainer.test_acc == 0.03  # the final accuracy uses the whole test set
    out = capsys.readouterr().out
    assert "=== epoch:1, train loss:10.0000, train acc:0.0200, test acc:0.0200 ===" in out
    assert "test acc:0.03" in out.splitlines()[-1]


def test_trainer_errors():
    x = np.arange(10)
    with pytest.raises(ValueError, match="Trainer: x_train has 10 samples but t_train has 9"):
        Trainer(RecordingNet(), x, x[:9], x, x)
    with pytest.raises(ValueError, match="Trainer: mini_batch_size must be a positive integer, got 0"):
        Trainer(RecordingNet(), x, x, x, x, mini_batch_size=0)
    with pytest.raises(ValueError, match="Trainer: epochs must be a non-negative integer, got -1"):
        Trainer(RecordingNet(), x, x, x, x, epochs=-1)
    with pytest.raises(ValueError, match="unknown optimizer 'adamax'; choose one of SGD, Momentum"):
        Trainer(RecordingNet(), x, x, x, x, optimizer="adamax")


# ----------------------------------------------------------------------------- optimizers
def _book_step(name, params, grads, state, t):
    """The book's update formulas (common/optimizer.py), for comparison."""
    lr = {"sgd": 0.1, "momentum": 0.1, "adagrad": 0.1, "rmsprop": 0.01, "adam": 0.01}[name]
    for k in params:
        g = grads[k]
        if name == "sgd":
            params[k] -= lr * g
        elif name == "momentum":
            v = state.setdefault(k, np.zeros_like(g))
            v *= 0.9
            v -= lr * g
            params[k] += v
        elif name == "adagrad":
            h = state.setdefault(k, np.zeros_like(g))
            h += g * g
            params[k] -= lr * g / (np.sqrt(h) + 1e-7)
        elif name == "rmsprop":
            h = state.setdefault(k, np.zeros_like(g))
            h *= 0.99
            h += 0.01 * g * g
            params[k] -= lr * g / (np.sqrt(h) + 1e-7)
        elif name == "adam":
            m = state.setdefault("m" + k, np.zeros_like(g))
            v = state.setdefault("v" + k, np.zeros_like(g))
            lr_t = lr * np.sqrt(1.0 - 0.999 ** t) / (1.0 - 0.9 ** t)
            m += 0.1 * (g - m)
            v += 0.001 * (g * g - v)
            params[k] -= lr_t * m / (np.sqrt(v) + 1e-7)


@pytest.mark.parametrize("name,make", [("sgd", lambda: SGD(lr=0.1)), ("momentum", lambda: Momentum(lr=0.1)),
                                       ("adagrad", lambda: AdaGrad(lr=0.1)), ("rmsprop", lambda: RMSprop(lr=0.01)),
                                       ("adam", lambda: Adam(lr=0.01))])
def test_optimizers_follow_the_books_formulas_in_place(name, make):
    rng = np.random.default_rng(0)
    params = {"W1": rng.standard_normal((3, 4)), "b1": rng.standard_normal(4)}
    book = {k: v.copy() for k, v in params.items()}
    arrays = dict(params)
    opt, state = make(), {}
    for t in range(1, 11):
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        opt.update(params, grads)
        _book_step(name, book, grads, state, t)
    for k in params:
        assert params[k] is arrays[k]  # updated in place: layers holding these arrays see the change
        np.testing.assert_allclose(params[k], book[k], rtol=1e-6, atol=1e-9)


def test_optimizer_lr_changes_and_errors():
    params = {"W": np.zeros(2)}
    opt = SGD(lr=1.0)
    opt.update(params, {"W": np.ones(2)})
    opt.lr = 0.5
    opt.update(params, {"W": np.ones(2)})
    np.testing.assert_allclose(params["W"], -1.5)
    with pytest.raises(ValueError, match=r"SGD.update: grads has no entry for \['b'\]"):
        SGD().update({"W": np.zeros(2), "b": np.zeros(1)}, {"W": np.zeros(2)})
    with pytest.raises(ValueError, match=r"Adam.update: grads\['W'\] has shape \(3,\) but params\['W'\] has \(2,\)"):
        Adam().update({"W": np.zeros(2)}, {"W": np.zeros(3)})
    with pytest.raises(ValueError, match="SGD: lr must be non-negative, got -1"):
        SGD(lr=-1)
    with pytest.raises(ValueError, match=r"Adam: beta1 must be in \[0, 1\), got 1.0"):
        Adam(beta1=1.0)
    assert isinstance(get_textbook_optimizer("RMSprpo".replace("prpo", "prop"), lr=0.1), RMSprop)
    assert isinstance(get_textbook_optimizer("rmsprpo"), RMSprop)  # the book's Trainer spelling


# ----------------------------------------------------------------------------- learning MNIST
def test_trainer_with_adam_learns_mnist_in_one_epoch():
    (x_train, t_train), (x_test, t_test) = convnp.data.load_mnist()
    network = SimpleConvNet(hidden_size=50, weight_init_std=0.01, seed=0, dtype=np.float32)
    w1 = network.params['W1']
    trainer = Trainer(network, x_train[:1000], t_train[:1000], x_test[:500], t_test[:500], epochs=1,
                      mini_batch_size=10, optimizer='Adam', optimizer_param={'lr': 0.001},
                      evaluate_sample_num_per_epoch=100, verbose=False, seed=0)
    trainer.train()
    assert network.params['W1'] is w1 and network.layers['Conv1'].W is w1
    assert len(trainer.train_loss_list) == 100
    assert np.mean(trainer.train_loss_list[-5:]) < np.mean(trainer.train_loss_list[:5]) - 0.5
    assert trainer.test_acc > 0.5, trainer.test_acc  # chance is 0.1 (about 0.75 after these 100 steps)


def test_textbook_example_script_runs(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("textbook_example", ROOT / "examples" / "textbook_simple_convnet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    save = tmp_path / "params.npz"
    trainer = module.main(["--epochs", "1", "--train-size", "1000", "--test-size", "300", "--batch-size", "10",
                           "--evaluate-samples", "300", "--save", str(save), "--quiet"])
    assert save.exists() and trainer.test_acc > 0.5
    assert '"test_acc"' in capsys.readouterr().out
    net = SimpleConvNet(dtype=np.float32)
    net.load_params(str(save))
    np.testing.assert_array_equal(net.params['W1'], trainer.network.params['W1'])
