"""Run under ``mpiexec -n 1`` and ``mpiexec -n 2`` (tests/distributed/test_distributed.py does): data-parallel
training through convnp.train.Trainer on an MNIST subset.

1. Equivalence through the real fit loop: a float64 model trained for a few steps with the global
   batch split over the ranks ends with the weights a one-process Trainer (world=SingleProcessComm(),
   same seed, same global batch) reaches, to float64 rounding.
2. A float32 LeNet-like run on an MNIST subset; rank 0 prints ``RESULT {json}`` with the test accuracy
   and the number of training samples each rank saw, for comparison across world sizes.
"""
import json
import sys

import numpy as np

from convnp import nn
from convnp.data import load_mnist
from convnp.distributed import SingleProcessComm, get_world
from convnp.train import Trainer

world = get_world()
n_train = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
(x_train, t_train), (x_test, t_test) = load_mnist()
x_train, t_train = x_train[:n_train], t_train[:n_train]
x_test, t_test = x_test[:1000], t_test[:1000]


def small_cnn(seed):
    return nn.Sequential([nn.Conv2D(6, 5, activation="relu", seed=seed), nn.MaxPool2D(2), nn.Flatten(),
                          nn.Dense(32, activation="relu", seed=seed + 1), nn.Dense(10, seed=seed + 2)])


# 1. equivalence through Trainer.fit (float64, 3 global batches of 24 = 2 x 12) ---------------------
def trained_weights(trainer_world, model_seed):
    model = small_cnn(model_seed)
    model(np.zeros((1, 1, 28, 28), np.float32))
    model.astype(np.float64)
    trainer = Trainer(model, "sgd", "cross_entropy", ["accuracy"], world=trainer_world, lr=0.05)
    trainer.fit(x_train[:72].astype(np.float64), t_train[:72], epochs=1, batch_size=24, seed=11, verbose=0)
    return model.state_dict()


if world.size > 1:
    dist = trained_weights(world, model_seed=world.rank)  # different init per rank: the broadcast fixes it
    ref = trained_weights(SingleProcessComm(), model_seed=0)
    for k, v in ref.items():
        np.testing.assert_allclose(dist[k], v, rtol=1e-9, atol=1e-12, err_msg=k)

# 2. accuracy on a subset (float32) ------------------------------------------------------------------
model = small_cnn(0)
trainer = Trainer(model, "sgd", "cross_entropy", ["accuracy"], lr=0.1, momentum=0.9)
history = trainer.fit(x_train, t_train, epochs=2, batch_size=64, seed=0, verbose=0)
result = trainer.evaluate(x_test, t_test)
if world.is_root:
    print("RESULT " + json.dumps({"size": world.size, "test_accuracy": result["accuracy"],
                                  "train_loss": float(history.last()["loss"])}), flush=True)
