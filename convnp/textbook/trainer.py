"""The textbook's Trainer ("Deep Learning from Scratch", common/trainer.py), visiting every sample once per epoch.

The book draws each mini-batch with replacement (``np.random.choice``) and evaluates at the start of each
epoch; this Trainer shuffles the training set once per epoch with a seeded permutation, visits every sample
exactly once (the last batch may be smaller), and evaluates at the end of each epoch.

Example::

    trainer = Trainer(network, x_train, t_train, x_test, t_test, epochs=20, mini_batch_size=100,
                      optimizer='Adam', optimizer_param={'lr': 0.001}, evaluate_sample_num_per_epoch=1000)
    trainer.train()
    trainer.test_acc_list   # one test accuracy per epoch
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from .optimizers import get_textbook_optimizer

__all__ = ["Trainer"]


class Trainer:
    """Train a textbook network (``gradient``, ``params``, ``accuracy``) with a textbook optimizer.

    Args:
        network: e.g. :class:`SimpleConvNet`.
        x_train, t_train, x_test, t_test: arrays (NumPy or CuPy); labels as indices (N,) or one-hot (N, K).
        epochs: passes over the training set.
        mini_batch_size: samples per step.
        optimizer: a name ('SGD', 'Momentum', 'Nesterov', 'AdaGrad', 'RMSprop', 'Adam') or an optimizer object.
        optimizer_param: keyword arguments of the named optimizer (the book's lr etc.).
        evaluate_sample_num_per_epoch: evaluate the per-epoch accuracies on the first this-many samples of
            each set (None: all of them).
        verbose: print one line per epoch and the final test accuracy.
        seed: seed of the per-epoch shuffles (and of nothing else).

    After ``train()``: ``train_loss_list`` (one loss per step), ``train_acc_list`` and ``test_acc_list``
    (one per epoch), ``test_acc`` (final accuracy on the whole test set).
    """

    def __init__(self, network, x_train, t_train, x_test, t_test, epochs=20, mini_batch_size=100,
                 optimizer='Adam', optimizer_param={'lr': 0.001},  # noqa: B006 (the book's signature)
                 evaluate_sample_num_per_epoch=None, verbose=True, seed=None):
        for name, x, t in (("train", x_train, t_train), ("test", x_test, t_test)):
            if len(x) != len(t):
                raise ValueError(f"Trainer: x_{name} has {len(x)} samples but t_{name} has {len(t)}")
        if len(x_train) == 0:
            raise ValueError("Trainer: x_train is empty")
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"Trainer: epochs must be a non-negative integer, got {epochs!r}")
        if isinstance(mini_batch_size, bool) or not isinstance(mini_batch_size, (int, np.integer)) \
                or mini_batch_size < 1:
            raise ValueError(f"Trainer: mini_batch_size must be a positive integer, got {mini_batch_size!r}")
        if evaluate_sample_num_per_epoch is not None and int(evaluate_sample_num_per_epoch) < 1:
            raise ValueError(f"Trainer: evaluate_sample_num_per_epoch must be positive or None, "
                             f"got {evaluate_sample_num_per_epoch!r}")
        self.network = network
        self.verbose = bool(verbose)
        self.x_train, self.t_train, self.x_test, self.t_test = x_train, t_train, x_test, t_test
        self.epochs = int(epochs)
        self.batch_size = int(mini_batch_size)
        self.evaluate_sample_num_per_epoch = evaluate_sample_num_per_epoch
        self.optimizer = get_textbook_optimizer(optimizer, **(optimizer_param or {})) \
            if isinstance(optimizer, str) else get_textbook_optimizer(optimizer)
        self.rng = np.random.default_rng(seed)

        self.train_size = len(x_train)
        self.iter_per_epoch = -(-self.train_size // self.batch_size)  # ceil: the last batch may be smaller
        self.max_iter = self.epochs * self.iter_per_epoch
        self.current_iter = 0
        self.current_epoch = 0
        self.train_loss_list, self.train_acc_list, self.test_acc_list = [], [], []
        self.test_acc = None

    def train_step(self, batch_index):
        """One update on the samples ``batch_index`` of the training set; returns the batch loss
        (computed by the forward pass of that same step, before the update)."""
        xp = get_array_module(self.x_train)
        idx = batch_index if xp is np else xp.asarray(batch_index)
        x_batch, t_batch = self.x_train[idx], self.t_train[idx]
        grads = self.network.gradient(x_batch, t_batch)
        self.optimizer.update(self.network.params, grads)
        last = getattr(self.network, "last_layer", None)
        loss = float(last.loss) if getattr(last, "loss", None) is not None else \
            float(self.network.loss(x_batch, t_batch))
        self.train_loss_list.append(loss)
        self.current_iter += 1
        return loss

    def evaluate(self):
        """(train accuracy, test accuracy) on the first ``evaluate_sample_num_per_epoch`` samples."""
        k = self.evaluate_sample_num_per_epoch
        xtr, ttr, xte, tte = self.x_train, self.t_train, self.x_test, self.t_test
        if k is not None:
            k = int(k)
            xtr, ttr, xte, tte = xtr[:k], ttr[:k], xte[:k], tte[:k]
        return self.network.accuracy(xtr, ttr), self.network.accuracy(xte, tte)

    def train(self):
        """Run ``epochs`` epochs (each a fresh permutation of the training set), then the final test accuracy."""
        for _ in range(self.epochs):
            order = self.rng.permutation(self.train_size)
            for start in range(0, self.train_size, self.batch_size):
                self.train_step(order[start:start + self.batch_size])
            self.current_epoch += 1
            train_acc, test_acc = self.evaluate()
            self.train_acc_list.append(train_acc)
            self.test_acc_list.append(test_acc)
            if self.verbose:
                loss = self.train_loss_list[-1] if self.train_loss_list else float("nan")
                print(f"=== epoch:{self.current_epoch}, train loss:{loss:.4f}, train acc:{train_acc:.4f}, "
                      f"test acc:{test_acc:.4f} ===", flush=True)
        self.test_acc = self.network.accuracy(self.x_test, self.t_test)
        if self.verbose:
            print("=============== Final Test Accuracy ===============")
            print(f"test acc:{self.test_acc}")
        return self
