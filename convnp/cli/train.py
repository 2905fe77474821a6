"""``convnp train``, ``convnp evaluate``, ``convnp predict`` and ``convnp summary``.

Thin: parse flags, call :mod:`convnp.train`, :mod:`convnp.data` and :mod:`convnp.io`. Plain ``convnp train``
trains SimpleConvNet on the MNIST copy shipped in the package (Adam 1e-3 with cosine decay, batch 100, 5 epochs,
random shifts of up to 2 pixels) and writes
``best.npz``, ``last.npz``, ``history.csv``, ``history.json`` and ``curves.png`` to ``runs/latest``.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

from .. import accel

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def register(sub):
    p = sub.add_parser("train", help="train a CNN (default: SimpleConvNet on the shipped MNIST)",
                       description="Train a model from the zoo on MNIST, Fashion-MNIST or CIFAR-10. Flags left "
                                   "out take the model's recipe defaults (simple_convnet: 5 epochs, batch 100, "
                                   "Adam lr 1e-3 with cosine decay, random shifts).")
    p.add_argument("--model", default="simple_convnet", help="model name (see `convnp summary --list`)")
    p.add_argument("--dataset", default="mnist", help="mnist (shipped), fashion_mnist or cifar10")
    p.add_argument("--data-dir", default=None, help="folder with the data set files (default: the cache dir)")
    p.add_argument("--download", action="store_true", help="download missing data set files")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--optimizer", default=None, help="adam, sgd, momentum, rmsprop, adamw, ...")
    p.add_argument("--lr", type=float, default=None, help="learning rate (peak rate with --schedule onecycle)")
    p.add_argument("--schedule", default=None, choices=["none", "cosine", "onecycle", "step"],
                   help="learning-rate schedule")
    aug = p.add_mutually_exclusive_group()
    aug.add_argument("--augment", dest="augment", action="store_true", default=None,
                     help="random rotations/zooms/shifts (digits) or crops/flips (CIFAR-10)")
    aug.add_argument("--no-augment", dest="augment", action="store_false")
    p.add_argument("--seed", type=int, default=0, help="seed of weights, shuffling and augmentation")
    p.add_argument("--out", default=os.path.join("runs", "latest"), help="output folder (default runs/latest)")
    p.add_argument("--resume", default=None, metavar="CKPT", help="continue from a checkpoint (e.g. OUT/last.npz)")
    p.add_argument("--subset", type=int, default=None, metavar="N", help="train on the first N images only")
    p.add_argument("--test-subset", type=int, default=None, metavar="N",
                   help="validate and test on the first N test images only (quick trials)")
    p.add_argument("--val-split", type=float, default=0.0,
                   help="hold out this fraction of the training set for validation (default: validate on "
                        "the test set each epoch)")
    p.add_argument("--progress", default="auto", choices=["auto", "tqdm", "plain", "summary"])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.set_defaults(func=run_train)

    p = sub.add_parser("evaluate", help="accuracy of a checkpoint on a test set")
    p.add_argument("checkpoint")
    p.add_argument("--dataset", default=None, help="default: the data set the checkpoint was trained on")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--subset", type=int, default=None, metavar="N", help="the first N test images only")
    p.add_argument("--report", action="store_true", help="per-class precision/recall and confusion matrix")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run_evaluate)

    p = sub.add_parser("predict", help="classify image files (PNG/JPEG) with a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="+", help="image files or folders of images")
    p.add_argument("--top", type=int, default=1, help="show the K most likely classes")
    p.add_argument("--invert", default="auto", choices=["auto", "yes", "no"],
                   help="invert dark-on-light images to the light-on-dark look of MNIST (auto: by the border)")
    p.set_defaults(func=run_predict)

    p = sub.add_parser("summary", help="print a model's layers, output shapes and parameter counts")
    p.add_argument("model", nargs="?", default=None, help="model name or checkpoint file")
    p.add_argument("--input-shape", default=None, help="C,H,W (default 1,28,28)")
    p.add_argument("--list", action="store_true", help="list the registered models")
    p.set_defaults(func=run_summary)


# ---------------------------------------------------------------------------- train
def _recipe(model_name):
    from ..models.textbook_nets import TRAINING_RECIPES
    return dict(TRAINING_RECIPES.get(model_name, TRAINING_RECIPES["simple_convnet"]))


def _build_model(name, input_shape, num_classes=None, seed=None):
    from .. import models
    if name not in models.MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(models.list_models())}")
    import inspect
    factory = models.MODELS[name]
    params = inspect.signature(factory).parameters
    kwargs = {"num_classes": num_classes, "seed": seed}
    if "in_channels" in params:
        kwargs["in_channels"] = input_shape[0]
    if "input_size" in params:
        kwargs["input_size"] = input_shape[1]
    return factory(**{k: v for k, v in kwargs.items() if k in params and v is not None})


def make_schedule(name, optimizer, epochs, steps_per_epoch, lr):
    """``(LRScheduler callback or None)`` for a schedule name."""
    from ..train import LRScheduler
    if name in (None, "none"):
        return None
    from ..optim import lr_scheduler as S
    if name == "cosine":
        return LRScheduler(S.CosineAnnealingLR(optimizer, T_max=epochs))
    if name == "step":
        return LRScheduler(S.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1))
    if name == "onecycle":
        return LRScheduler(S.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch), step_per="batch")
    raise ValueError(f"unknown schedule {name!r}; choose none, cosine, onecycle or step")


def run_train(args) -> int:
    from ..data import load_dataset, dataset_info
    from ..data.transforms import default_augmentation
    from ..train import CSVLogger, JSONLogger, ModelCheckpoint, NaNGuard, Trainer
    from ..distributed import get_world

    world = get_world()
    say = print if world.is_root else (lambda *a, **k: None)
    recipe = _recipe(args.model)
    epochs = recipe["epochs"] if args.epochs is None else args.epochs
    batch_size = recipe["batch_size"] if args.batch_size is None else args.batch_size
    optimizer = recipe["optimizer"] if args.optimizer is None else args.optimizer
    lr = recipe["lr"] if args.lr is None else args.lr
    augment = recipe["augment"] if args.augment is None else args.augment
    schedule = recipe["schedule"] if args.schedule is None else args.schedule
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"--epochs ({epochs}) and --batch-size ({batch_size}) must be positive")
    if args.resume is not None and not os.path.exists(args.resume):
        raise FileNotFoundError(f"checkpoint not found: {args.resume}")

    input_shape, class_names = dataset_info(args.dataset)
    (x_train, t_train), (x_test, t_test) = load_dataset(args.dataset, args.data_dir, args.download)
    if args.subset is not None:
        if args.subset < 1:
            raise ValueError(f"--subset must be positive, got {args.subset}")
        x_train, t_train = x_train[:args.subset], t_train[:args.subset]
    if args.test_subset is not None:
        if args.test_subset < 1:
            raise ValueError(f"--test-subset must be positive, got {args.test_subset}")
        x_test, t_test = x_test[:args.test_subset], t_test[:args.test_subset]
    transform = default_augmentation(args.dataset, "shift" if augment == "shift" else "full") if augment else None
    if args.dataset.lower() == "cifar10":
        from ..data.datasets import CIFAR10_MEAN, CIFAR10_STD
        from ..data.transforms import Normalize
        norm = Normalize(CIFAR10_MEAN, CIFAR10_STD)
        x_test = norm(x_test)
        transform = norm if transform is None else _then(transform, norm)

    model = _build_model(args.model, input_shape, len(class_names), args.seed)
    if args.device != "cpu":
        model.to(args.device)
    trainer = Trainer(model, optimizer, "cross_entropy", ["accuracy"], world=world, lr=lr)
    trainer.extra_state = {"dataset": args.dataset, "class_names": class_names, "model_name": args.model,
                           "normalize": "cifar10" if args.dataset.lower() == "cifar10" else None}
    trainer._prepare(x_train[:1])
    val_split = args.val_split or 0.0
    n_train = len(x_train) - int(round(len(x_train) * val_split))
    steps = n_train // batch_size + (n_train % batch_size > 0)
    callbacks = [NaNGuard()]
    sched = make_schedule(schedule, trainer.optimizer, epochs, steps, lr)
    if sched is not None:
        callbacks.append(sched)
    callbacks += [ModelCheckpoint(args.out), CSVLogger(os.path.join(args.out, "history.csv")),
                  JSONLogger(os.path.join(args.out, "history.json"))]
    say(f"training {args.model} on {args.dataset} ({len(x_train)} images, {model.num_parameters():,} parameters) "
        f"for {epochs} epochs: {optimizer} lr {lr:g}, batch {batch_size}, schedule {schedule or 'none'}, "
        f"augment {'shift' if augment == 'shift' else 'on' if augment else 'off'}, seed {args.seed}" + (f", {world.size} ranks" if world.size > 1 else "")
        + (", numba kernels" if accel.available() and args.device == "cpu" else ""))
    start = time.perf_counter()
    history = trainer.fit(x_train, t_train, epochs=epochs, batch_size=batch_size,
                          validation_data=None if val_split else (x_test, t_test), validation_split=val_split,
                          callbacks=callbacks, seed=args.seed, transform=transform, resume=args.resume,
                          progress=args.progress if args.progress != "summary" else "auto",
                          verbose=2 if args.progress == "summary" else 1)
    elapsed = time.perf_counter() - start
    if history.stopped_reason and history.stopped_reason.startswith("training stopped"):
        raise RuntimeError(history.stopped_reason)
    last = history.last()
    if not val_split and "val_accuracy" in last:  # the last epoch was already evaluated on the test set
        result = {"accuracy": last["val_accuracy"], "loss": last["val_loss"]}
    else:
        result = trainer.evaluate(x_test, t_test, batch_size=500)
    if world.is_root:
        png = os.path.join(args.out, "curves.png")
        try:
            history.plot(png)
        except ImportError:
            png = None
        say(f"test accuracy {result['accuracy'] * 100:.2f}% (loss {result['loss']:.4f}) after {trainer.epochs_done} "
            f"epochs, {elapsed:.0f} s")
        say(f"checkpoints: {os.path.join(args.out, 'best.npz')} (best val_accuracy), "
            f"{os.path.join(args.out, 'last.npz')}" + (f"; curves: {png}" if png else ""))
    return 0


def _then(first, second):
    def both(x, rng=None):
        return second(first(x, rng), rng)
    return both


# ---------------------------------------------------------------------------- evaluate
def run_evaluate(args) -> int:
    from ..io.checkpoint import load_checkpoint
    from ..data import load_dataset
    from ..train import Trainer, classification_report, confusion_matrix, predict

    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.build_model(None if args.device == "cpu" else args.device)
    dataset = args.dataset or ckpt.state.get("dataset") or "mnist"
    _, (x_test, t_test) = load_dataset(dataset, args.data_dir)
    if args.subset is not None:
        x_test, t_test = x_test[:max(1, args.subset)], t_test[:max(1, args.subset)]
    if ckpt.state.get("normalize") == "cifar10":
        from ..data.datasets import CIFAR10_MEAN, CIFAR10_STD
        from ..data.transforms import Normalize
        x_test = Normalize(CIFAR10_MEAN, CIFAR10_STD)(x_test)
    _check_shape(ckpt, x_test.shape[1:], dataset)
    result = Trainer(model, "sgd", "cross_entropy", ["accuracy", "top5_accuracy"]).evaluate(
        x_test, t_test, batch_size=args.batch_size)
    print(f"{args.checkpoint} (epoch {ckpt.epoch}) on {dataset} test ({len(x_test)} images): "
          f"accuracy {result['accuracy'] * 100:.2f}%  top-5 {result['top5_accuracy'] * 100:.2f}%  "
          f"loss {result['loss']:.4f}")
    if args.report:
        logits = predict(model, x_test, batch_size=args.batch_size)
        print(classification_report(logits, t_test, ckpt.state.get("class_names")))
        print("confusion matrix (rows: true class, columns: predicted):")
        print(confusion_matrix(logits, t_test))
    return 0


def _check_shape(ckpt, shape, dataset):
    if ckpt.input_shape is not None and tuple(ckpt.input_shape) != tuple(shape):
        raise ValueError(f"{ckpt.path} expects inputs {tuple(ckpt.input_shape)} but {dataset} images are {tuple(shape)}")


# ---------------------------------------------------------------------------- predict
def _expand_images(paths):
    out = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(os.path.join(path, f) for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in folder {path}")
            out += found
        elif not os.path.exists(path):
            raise FileNotFoundError(f"image not found: {path}")
        else:
            out.append(path)
    return out


def load_image(path, input_shape=(1, 28, 28), invert="auto"):
    """An image file as a (C, H, W) float32 array in [0, 1] shaped like the training data: grey (C=1) or RGB,
    resized to H x W; with ``invert="auto"`` dark-on-light pictures (bright border) are inverted to MNIST's
    light-on-dark look."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading images needs Pillow: pip install convnp[images]") from None
    c, h, w = input_shape
    try:
        with Image.open(path) as img:
            img = img.convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)
            arr = np.asarray(img, np.float32) / 255.0
    except Exception as e:
        raise ValueError(f"cannot read image {path}: {e}") from None
    arr = arr[None] if c == 1 else arr.transpose(2, 0, 1)
    if c == 1 and invert != "no":
        border = np.concatenate([arr[0, 0], arr[0, -1], arr[0, :, 0], arr[0, :, -1]]).mean()
        if invert == "yes" or border > 0.5:
            arr = 1.0 - arr
    return arr


def run_predict(args) -> int:
    from ..io.checkpoint import load_checkpoint
    from ..train import predict, softmax

    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.build_model()
    input_shape = ckpt.input_shape or (1, 28, 28)
    paths = _expand_images(args.images)

    def predict_files(files):  # this rank's share of the files -> (len(files), classes) probabilities
        x = np.stack([load_image(p, input_shape, args.invert) for p in files])
        if ckpt.state.get("normalize") == "cifar10":
            from ..data.datasets import CIFAR10_MEAN, CIFAR10_STD
            from ..data.transforms import Normalize
            x = Normalize(CIFAR10_MEAN, CIFAR10_STD)(x)
        return softmax(predict(model, x))

    # under mpiexec the files are split across ranks and gathered in order on rank 0; one process: all here
    from ..distributed import sharded_map
    gathered = sharded_map(predict_files, paths, root=0, batched=True)
    if gathered is None:  # not rank 0: rank 0 prints
        return 0
    probs = np.stack(gathered)
    names = ckpt.state.get("class_names") or [str(i) for i in range(probs.shape[1])]
    k = max(1, min(args.top, probs.shape[1]))
    for path, p in zip(paths, probs):
        order = np.argsort(-p)[:k]
        ranked = ", ".join(f"{names[i]} ({p[i]:.3f})" for i in order)
        print(f"{path}: {ranked}")
    return 0


# ---------------------------------------------------------------------------- summary
def run_summary(args) -> int:
    from .. import models
    if args.list or args.model is None:
        print("\n".join(models.list_models()))
        return 0
    if os.path.exists(args.model) or args.model.endswith(".npz"):
        from ..io.checkpoint import load_checkpoint
        ckpt = load_checkpoint(args.model)
        model = ckpt.build_model()
        shape = ckpt.input_shape
    else:
        shape = models.registry.default_input_shape(args.model)
        model = None
    if args.input_shape:
        try:
            shape = tuple(int(s) for s in args.input_shape.split(","))
        except ValueError:
            raise ValueError(f"--input-shape must look like C,H,W (e.g. 3,32,32), got {args.input_shape!r}") from None
        if len(shape) != 3:
            raise ValueError(f"--input-shape must have 3 numbers C,H,W, got {args.input_shape!r}")
    if model is None:
        if args.model not in models.MODELS:
            raise ValueError(f"unknown model {args.model!r}; available: {', '.join(models.list_models())}")
        model = _build_model(args.model, shape)
    model.summary(shape)
    return 0
