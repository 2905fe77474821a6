"""The textbook's ch07/train_convnet.py ("Deep Learning from Scratch"), running on convnp.

Trains SimpleConvNet (conv 30x5x5 - relu - pool - affine 100 - relu - affine 10) on MNIST with Adam
(lr 0.001), mini-batches of 100, for 20 epochs, evaluating on 1000 samples per epoch, as the book does; then
saves the parameters (npz) and optionally the accuracy plot. The book reports 98.96% test accuracy.

Differences from the book's script: each epoch visits every training sample once (a seeded shuffle)
instead of drawing batches with replacement; float32 arithmetic by default (``--dtype float64`` for the
book's); ``--device cuda`` runs on a GPU through CuPy.

    python examples/textbook_simple_convnet.py                  # the book's 20 epochs
    python examples/textbook_simple_convnet.py --epochs 1 --train-size 2000 --test-size 500
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from convnp.data import load_mnist
from convnp.textbook import SimpleConvNet, Trainer


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=20, help="passes over the training set (the book: 20)")
    p.add_argument("--train-size", type=int, default=None, help="use only the first N training images")
    p.add_argument("--test-size", type=int, default=None, help="use only the first N test images")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--evaluate-samples", type=int, default=1000,
                   help="samples of each set used for the per-epoch accuracies (the book: 1000)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights and of the shuffles")
    p.add_argument("--save", default="params.npz", help="where to save the trained parameters ('' to skip)")
    p.add_argument("--plot", default="", help="save the accuracy curves to this image file (needs matplotlib)")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    (x_train, t_train), (x_test, t_test) = load_mnist(flatten=False)
    x_train, t_train = x_train[:args.train_size], t_train[:args.train_size]
    x_test, t_test = x_test[:args.test_size], t_test[:args.test_size]
    dtype = np.dtype(args.dtype)
    x_train, x_test = x_train.astype(dtype), x_test.astype(dtype)

    network = SimpleConvNet(input_dim=(1, 28, 28),
                            conv_param={'filter_num': 30, 'filter_size': 5, 'pad': 0, 'stride': 1},
                            hidden_size=100, output_size=10, weight_init_std=0.01, seed=args.seed, dtype=dtype)
    if args.device == "cuda":
        import cupy
        network.to("cuda")
        x_train, t_train, x_test, t_test = (cupy.asarray(a) for a in (x_train, t_train, x_test, t_test))

    trainer = Trainer(network, x_train, t_train, x_test, t_test, epochs=args.epochs,
                      mini_batch_size=args.batch_size, optimizer='Adam', optimizer_param={'lr': args.lr},
                      evaluate_sample_num_per_epoch=args.evaluate_samples, verbose=not args.quiet, seed=args.seed)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start

    if args.save:
        network.save_params(args.save)
        if not args.quiet:
            print(f"Saved Network Parameters to {args.save}")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        epochs = np.arange(1, len(trainer.train_acc_list) + 1)
        plt.plot(epochs, trainer.train_acc_list, marker='o', label='train', markevery=2)
        plt.plot(epochs, trainer.test_acc_list, marker='s', label='test', markevery=2)
        plt.xlabel("epochs")
        plt.ylabel("accuracy")
        plt.ylim(0, 1.0)
        plt.legend(loc='lower right')
        plt.savefig(args.plot, dpi=100)
        plt.close()
    print(json.dumps({"script": "textbook_simple_convnet", "epochs": args.epochs, "train_size": len(x_train),
                      "test_size": len(x_test), "dtype": args.dtype, "device": args.device,
                      "test_acc": trainer.test_acc, "seconds": round(seconds, 1)}))
    return trainer


if __name__ == "__main__":
    main()
