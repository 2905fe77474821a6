"""``convnp viz filters|features|history|misclassified|saliency``: PNGs of a trained network, written to --out.

Thin: open the checkpoint with ``convnp.load``, read the image or data set, call :mod:`convnp.viz`.
An IMAGE is an image file (PNG/JPEG/..., converted to the checkpoint's input shape like ``convnp
predict`` does), a ``.npy`` array (C, H, W) or (H, W), or ``test:N`` for image N of the checkpoint's test set.
"""
from __future__ import annotations

import os

import numpy as np


def register(sub):
    p = sub.add_parser("viz", help="draw filters, feature maps, curves, mistakes and saliency as PNG files",
                       description="Visualize a trained network; every command writes PNG files to --out.")
    vs = p.add_subparsers(dest="viz_command", metavar="WHAT")

    def command(name, help_text, func, checkpoint=True, image=False):
        q = vs.add_parser(name, help=help_text, description=help_text)
        if checkpoint:
            q.add_argument("checkpoint", metavar="CKPT", help="a checkpoint or saved model (.npz)")
        if image:
            q.add_argument("image", metavar="IMAGE", help="an image file, a .npy array, or test:N (test image N)")
        q.add_argument("--out", default=".", help="folder for the PNG files (default: the current folder)")
        q.add_argument("--dpi", type=int, default=100)
        q.set_defaults(func=func)
        return q

    q = command("filters", "the filters of a conv layer (default: the first)", run_filters)
    q.add_argument("--layer", default=None, help="layer name or index (default: the first conv layer)")
    q.add_argument("--mode", default="auto", choices=["auto", "channels", "rgb", "mean"])
    q.add_argument("--scale", default="shared", choices=["shared", "filter"])
    q.add_argument("--before", default=None, metavar="CKPT", help="a checkpoint to draw on the left (e.g. epoch 0)")
    q.add_argument("--max-filters", type=int, default=64)

    q = command("features", "the feature maps of chosen layers for one image", run_features, image=True)
    q.add_argument("--layers", nargs="+", default=None, help="layer names or indices (default: the conv layers)")
    q.add_argument("--max-maps", type=int, default=16)
    q.add_argument("--invert", default="auto", choices=["auto", "yes", "no"],
                   help="invert grey image files (auto: when the border is bright, as for ink on paper)")

    q = command("history", "loss and accuracy curves of a training run", run_history, checkpoint=False)
    q.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (history.json/.csv or last.npz) or a log file")
    q.add_argument("--metrics", nargs="+", default=None, help="values to draw (default: all but epoch/lr/time)")

    q = command("misclassified", "the test images the model gets wrong, and the confusion matrix", run_misclassified)
    q.add_argument("--dataset", default=None, help="default: the checkpoint's data set (mnist when unknown)")
    q.add_argument("--data-dir", default=None)
    q.add_argument("--limit", type=int, default=2000, help="use the first N test images (default 2000)")
    q.add_argument("--max-images", type=int, default=36)

    q = command("saliency", "gradient saliency and Grad-CAM of one prediction", run_saliency, image=True)
    q.add_argument("--class-index", type=int, default=None, help="class to explain (default: the prediction)")
    q.add_argument("--layer", default=None, help="Grad-CAM layer name or index (default: the last conv layer)")
    q.add_argument("--invert", default="auto", choices=["auto", "yes", "no"])
    p.set_defaults(func=lambda args: _no_command(p))


def _no_command(parser) -> int:
    parser.print_help()
    return 2


# ---------------------------------------------------------------------------- helpers
def _open(path):
    import convnp
    model = convnp.load(path)
    info = getattr(model, "_checkpoint_info", {}) or {}
    return model, info


def _layer(model, spec):
    """A layer argument: a name of the model if it is one, else an integer index."""
    if spec is None:
        return None
    if spec in dict(model.named_modules()):
        return spec
    try:
        return int(spec)
    except ValueError:
        return spec  # viz reports the unknown name with the list of layers


def _normalize_like_training(x, info):
    if str(info.get("dataset") or "").lower() == "cifar10":
        from ..data.datasets import CIFAR10_MEAN, CIFAR10_STD
        from ..data.transforms import Normalize
        return Normalize(CIFAR10_MEAN, CIFAR10_STD)(x)
    return x


def _test_set(info, dataset=None, data_dir=None):
    from ..data import load_dataset
    name = dataset or info.get("dataset") or "mnist"
    _, (x, t) = load_dataset(name, data_dir)
    return name, x, t


def read_image(spec, info, invert="auto"):
    """(C, H, W) float32 input for the model from IMAGE (file, .npy or test:N), and a label for titles."""
    if spec.startswith("test:"):
        try:
            index = int(spec[5:])
        except ValueError:
            raise ValueError(f"IMAGE test:N needs an integer N, got {spec!r}") from None
        name, x, t = _test_set(info)
        if not 0 <= index < len(x):
            raise ValueError(f"IMAGE {spec}: the {name} test set has {len(x)} images (0..{len(x) - 1})")
        return _normalize_like_training(x[index:index + 1], info)[0], f"{name} test image {index} (label {t[index]})"
    if not os.path.exists(spec):
        raise FileNotFoundError(f"image not found: {spec}")
    if spec.lower().endswith(".npy"):
        arr = np.load(spec, allow_pickle=False).astype(np.float32)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise ValueError(f"{spec}: expected an array (C, H, W) or (H, W), got shape {arr.shape}")
        return arr, os.path.basename(spec)
    from .train import load_image
    shape = info.get("input_shape") or (1, 28, 28)
    x = load_image(spec, tuple(shape), invert)
    return _normalize_like_training(x[None], info)[0], os.path.basename(spec)


def _write(fig, out, name, dpi):
    path = os.path.join(out, name)
    os.makedirs(out, exist_ok=True)
    fig.savefig(path, dpi=dpi, facecolor="white")
    print(f"wrote {path}")
    return path


# ---------------------------------------------------------------------------- commands
def run_filters(args) -> int:
    from .. import viz
    model, _ = _open(args.checkpoint)
    before = _open(args.before)[0] if args.before else None
    fig = viz.plot_filters(model, layer=_layer(model, args.layer), mode=args.mode, scale=args.scale, before=before,
                           max_filters=args.max_filters, dpi=args.dpi)
    _write(fig, args.out, "filters.png", args.dpi)
    return 0


def run_features(args) -> int:
    from .. import viz
    model, info = _open(args.checkpoint)
    x, label = read_image(args.image, info, args.invert)
    layers = None if args.layers is None else [_layer(model, s) for s in args.layers]
    fig = viz.plot_feature_maps(model, x, layers=layers, max_maps=args.max_maps, title=label, dpi=args.dpi)
    _write(fig, args.out, "features.png", args.dpi)
    return 0


def run_history(args) -> int:
    from .. import viz
    fig = viz.plot_history(args.run_dir, metrics=args.metrics, dpi=args.dpi)
    _write(fig, args.out, "history.png", args.dpi)
    return 0


def run_misclassified(args) -> int:
    from .. import viz
    model, info = _open(args.checkpoint)
    if args.limit < 1:
        raise ValueError(f"--limit must be positive, got {args.limit}")
    name, x, t = _test_set(info, args.dataset, args.data_dir)
    x, t = x[: args.limit], t[: args.limit]
    shape = info.get("input_shape")
    if shape is not None and tuple(shape) != tuple(x.shape[1:]):
        raise ValueError(f"{args.checkpoint} expects inputs {tuple(shape)} but {name} images are {tuple(x.shape[1:])}")
    x_in = _normalize_like_training(x, info)
    pred = viz.predict_classes(model, x_in)
    names = info.get("class_names")
    fig = viz.plot_misclassified(model, x, t, y_pred=pred, max_images=args.max_images, class_names=names,
                                 dpi=args.dpi)
    _write(fig, args.out, "misclassified.png", args.dpi)
    k = max(int(t.max()), int(pred.max())) + 1 if names is None else len(names)
    fig = viz.plot_confusion_matrix(t, pred, class_names=names, num_classes=k, dpi=args.dpi,
                                    title=f"{name} test, first {len(t)} images: accuracy {np.mean(pred == t):.2%}")
    _write(fig, args.out, "confusion_matrix.png", args.dpi)
    return 0


def run_saliency(args) -> int:
    from .. import viz
    model, info = _open(args.checkpoint)
    x, label = read_image(args.image, info, args.invert)
    fig = viz.plot_saliency(model, x, class_index=args.class_index, layer=_layer(model, args.layer),
                            class_names=info.get("class_names"), title=label, dpi=args.dpi)
    _write(fig, args.out, "saliency.png", args.dpi)
    return 0
