"""Train SimpleConvNet briefly on MNIST and look inside it: the pictures a CNN course shows.

Writes to --out (default ``viz_mnist/``):

* ``filters_before_after.png``: the 30 conv1 filters (5x5) at initialization and after training, on one
  grey scale. With Adam at lr 1e-3 the filters change only a little in a short run (the before and after
  pictures look alike; the weights move by a fraction of their random spread): their differences, not
  clean edge detectors, are what training adds here (``learned_response.png`` shows what they respond to);
* ``conv1_feature_maps.png``: what those 30 filters respond to in one test digit;
* ``kernel_response.png`` and ``learned_response.png``: Sobel/Laplacian/Gaussian next to learned filters
  applied to the same digit (correlation, as the layer computes it);
* ``misclassified.png`` and ``confusion_matrix.png``: the validation digits it gets wrong;
* ``curves.png``: loss and accuracy per epoch (train and validation);
* ``saliency.png``: which pixels move the predicted class score, and Grad-CAM on conv1.

About a minute on a laptop CPU with the defaults (3,000 training images, 3 epochs):

    python examples/visualize_mnist.py --out viz_mnist
"""
from __future__ import annotations

import argparse
import copy
import os

import numpy as np

from convnp import models, viz
from convnp.data import load_mnist
from convnp.signal import kernels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="viz_mnist", help="folder for the PNG files")
    parser.add_argument("--train-size", type=int, default=3000, help="train on the first N images")
    parser.add_argument("--val-size", type=int, default=1000, help="validate on the first N test images")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    def out(name):
        return os.path.join(args.out, name)

    (x_train, t_train), (x_test, t_test) = load_mnist()
    x_train, t_train = x_train[: args.train_size], t_train[: args.train_size]
    x_val, t_val = x_test[: args.val_size], t_test[: args.val_size]

    model = models.simple_convnet(seed=args.seed)  # conv1 30@5x5 - relu - pool - fc1 100 - fc2 10
    initial = copy.deepcopy(model)  # the filters before training, for the side-by-side picture
    model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"], lr=1e-3)
    history = model.fit(x_train, t_train, epochs=args.epochs, batch_size=100, validation_data=(x_val, t_val),
                        seed=args.seed, verbose=2)

    viz.plot_filters(model, layer="conv1", before=initial, ncols=6, path=out("filters_before_after.png"),
                     title="conv1 filters")
    digit = x_test[0]  # a 7
    viz.plot_feature_maps(model, digit, layers=["conv1"], max_maps=30, ncols=10,
                          path=out("conv1_feature_maps.png"), title=f"conv1 feature maps of a {t_test[0]}")
    viz.plot_kernel_response(digit, {"sobel x": kernels.sobel_x(), "sobel y": kernels.sobel_y(),
                                     "laplacian": kernels.laplacian(), "gaussian 5x5": kernels.gaussian(5, 1.0)},
                             path=out("kernel_response.png"), title="classic kernels")
    viz.plot_kernel_response(digit, model, max_kernels=12, path=out("learned_response.png"),
                             title="learned conv1 filters (before bias and ReLU)")
    predictions = viz.predict_classes(model, x_val)
    viz.plot_misclassified(model, x_val, t_val, y_pred=predictions, path=out("misclassified.png"))
    viz.plot_confusion_matrix(t_val, predictions, num_classes=10, path=out("confusion_matrix.png"))
    viz.plot_history(history, path=out("curves.png"))
    viz.plot_saliency(model, digit, layer="conv1", path=out("saliency.png"))

    accuracy = float(np.mean(predictions == t_val))
    print(f"validation accuracy {accuracy:.2%} on {len(t_val)} test images; pictures in {args.out}/")
    for name in sorted(os.listdir(args.out)):
        print("  ", name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
