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
from .validate import check_writable_dir, fraction, non_negative_int, positive_float, positive_int

from ..data.images import IMAGE_EXTENSIONS


def register(sub):
    p = sub.add_parser("train", help="train a CNN (default: SimpleConvNet on the shipped MNIST)",
                       description="Train a model from the zoo on MNIST, Fashion-MNIST or CIFAR-10. Flags left "
                                   "out take the model's recipe defaults (simple_convnet: 5 epochs, batch 100, "
                                   "Adam lr 1e-3 with cosine decay, random shifts).")
    p.add_argument("--model", default="simple_convnet", help="model name (see `convnp summary --list`)")
    p.add_argument("--dataset", default="mnist", help="mnist (shipped), fashion_mnist or cifar10")
    p.add_argument("--data-dir", default=None, help="folder with the data set files (default: the cache dir)")
    p.add_argument("--download", action="store_true", help="download missing data set files")
    p.add_argument("--epochs", type=positive_int, default=None)
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument("--optimizer", default=None, help="adam, sgd, momentum, rmsprop, adamw, ...")
    p.add_argument("--lr", type=positive_float, default=None, help="learning rate (peak rate with --schedule onecycle)")
    p.add_argument("--schedule", default=None, choices=["none", "cosine", "onecycle", "step"],
                   help="learning-rate schedule")
    aug = p.add_mutually_exclusive_group()
    aug.add_argument("--augment", dest="augment", action="store_true", default=None,
                     help="random rotations/zooms/shifts (digits) or crops/flips (CIFAR-10)")
    aug.add_argument("--no-augment", dest="augment", action="store_false")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of weights, shuffling and augmentation")
    p.add_argument("--out", default=os.path.join("runs", "latest"), help="output folder (default runs/latest)")
    p.add_argument("--resume", default=None, metavar="CKPT", help="continue from a checkpoint (e.g. OUT/last.npz)")
    p.add_argument("--subset", type=positive_int, default=None, metavar="N", help="train on the first N images only")
    p.add_argument("--test-subset", type=positive_int, default=None, metavar="N",
                   help="validate and test on the first N test images only (quick trials)")
    p.add_argument("--val-split", type=fraction, default=0.0,
                   help="hold out this fraction of the training set for validation (default: validate on "
                        "the test set each epoch)")
    p.add_argument("--progress", default="auto", choices=["auto", "tqdm", "plain", "summary"])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.set_defaults(func=run_train)

    p = sub.add_parser("evaluate", help="accuracy of a checkpoint on a test set")
    p.add_argument("checkpoint")
    p.add_argument("--dataset", default=None, help="default: the data set the checkpoint was trained on")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--batch-size", type=positive_int, default=500)
    p.add_argument("--subset", type=positive_int, default=None, metavar="N", help="the first N test images only")
    p.add_argument("--report", action="store_true", help="per-class precision/recall and confusion matrix")
    p.add_argument("--images", default=None, metavar="FOLDER",
                   help="your own labelled images instead of a test set: FOLDER/<class>/<image files>, one "
                        "subfolder per class, named by class index or class name (prepared like `convnp predict`)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run_evaluate)

    p = sub.add_parser("predict", help="classify image files (PNG/JPEG) with a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="+", help="image files or folders of images")
    p.add_argument("--top", type=positive_int, default=1, help="show the K most likely classes")
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
    if world.is_root:  # an unwritable --out fails now, not after the first epoch
        check_writable_dir(args.out)

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
    callbacks = [NaNGuard(verbose=False)]  # its message is this command's error line (printed once)
    sched = make_schedule(schedule, trainer.optimizer, epochs, steps, lr)
    if sched is not None:
        callbacks.append(sched)
    callbacks += [ModelCheckpoint(args.out), CSVLogger(os.path.join(args.out, "history.csv")),
                  JSONLogger(os.path.join(args.out, "history.json"))]
    from ..train.callbacks import RankAgreement  # last, so the callback-state keys of old checkpoints hold
    callbacks.append(RankAgreement({"model_name": args.model, "dataset": args.dataset, "n_train": len(x_train),
                                    "n_test": len(x_test), "batch_size": batch_size, "epochs": epochs,
                                    "lr": lr, "seed": args.seed, "val_split": val_split}))
    say(f"training {args.model} on {args.dataset} ({len(x_train)} images, {model.num_parameters():,} parameters) "
        f"for {_plural(epochs, 'epoch')}: {optimizer} lr {lr:g}, batch {batch_size}, schedule {schedule or 'none'}, "
        f"augment {'shift' if augment == 'shift' else 'on' if augment else 'off'}, seed {args.seed}" + (f", {world.size} ranks" if world.size > 1 else "")
        + (f", C kernels ({accel.direct.variant()})" if accel.available() and args.device == "cpu" else ""))
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
            say('curves.png needs matplotlib: pip install "convnp[plots]"')
        say(f"test accuracy {result['accuracy'] * 100:.2f}% (loss {result['loss']:.4f}) after "
            f"{_plural(trainer.epochs_done, 'epoch')}, {elapsed:.0f} s")
        for path, what in _outputs(args.out, png):
            say(f"wrote {path}  ({what})")
    return 0


def _outputs(out, png):
    """(path, description) of every file ``convnp train`` leaves in ``out`` (those that exist)."""
    rows = [("best.npz", "checkpoint with the best val_accuracy"), ("last.npz", "checkpoint of the last epoch"),
            ("history.csv", "metrics per epoch"), ("history.json", "metrics per epoch")]
    found = [(os.path.join(out, name), what) for name, what in rows if os.path.exists(os.path.join(out, name))]
    if png and os.path.exists(png):
        found.append((png, "loss and accuracy curves"))
    return found


def _then(first, second):
    def both(x, rng=None):
        return second(first(x, rng), rng)
    return both


# ---------------------------------------------------------------------------- evaluate
def run_evaluate(args) -> int:
    from ..io.checkpoint import load_checkpoint
    from ..data import load_dataset
    from ..train import Trainer, classification_report, confusion_matrix, predict

    if args.images is not None and not os.path.isdir(args.images):
        raise FileNotFoundError(f"--images: no such folder: {args.images}")
    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.build_model(None if args.device == "cpu" else args.device)
    dataset = args.dataset or ckpt.state.get("dataset") or "mnist"
    if args.images is not None:
        x_test, t_test = _labelled_folder(args.images, ckpt)
        dataset = None
    else:
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
    where = f"the images in {args.images}" if dataset is None else f"{dataset} test"
    print(f"{args.checkpoint} (epoch {ckpt.epoch}) on {where} ({_plural(len(x_test), 'image')}): "
          f"accuracy {result['accuracy'] * 100:.2f}%  top-5 {result['top5_accuracy'] * 100:.2f}%  "
          f"loss {result['loss']:.4f}")
    if args.report:
        logits = predict(model, x_test, batch_size=args.batch_size)
        print(classification_report(logits, t_test, ckpt.state.get("class_names")))
        print("confusion matrix (rows: true class, columns: predicted):")
        print(confusion_matrix(logits, t_test))
    return 0


def _labelled_folder(folder, ckpt):
    """(x, t) from FOLDER/<class>/<images>: subfolders named by class index ("3") or class name ("cat")."""
    names = list(ckpt.state.get("class_names") or [])
    input_shape = ckpt.input_shape or (1, 28, 28)
    xs, ts = [], []
    for sub in sorted(os.listdir(folder)):
        path = os.path.join(folder, sub)
        if not os.path.isdir(path):
            continue
        if sub in names:
            label = names.index(sub)
        elif sub.isdigit() and (not names or int(sub) < len(names)):
            label = int(sub)
        else:
            raise ValueError(f"--images: subfolder {path!r} is not a class index or one of the class names "
                             f"{names or '0, 1, ...'}")
        for f in sorted(os.listdir(path)):
            if f.lower().endswith(IMAGE_EXTENSIONS):
                xs.append(load_image(os.path.join(path, f), input_shape))
                ts.append(label)
    if not xs:
        raise FileNotFoundError(f"--images: no image files in class subfolders of {folder} "
                                f"(expected FOLDER/<class>/*.png)")
    return np.stack(xs), np.asarray(ts, np.int64)


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
    """An image file as a (C, H, W) float32 input for a model taking ``input_shape`` inputs.

    Digit models (1x28x28) get the one digit pipeline of :mod:`convnp.data.images` (also used by ``viz``,
    ``classify`` and the playground): alpha flattened, polarity detected, cropped to the ink, 20 px box,
    centre of mass at the middle; a blank picture raises ``NoInkError``. Other shapes: the whole picture
    resized, grey or RGB.
    """
    from ..data.images import load_model_image
    return load_model_image(path, tuple(input_shape), invert)


def run_predict(args) -> int:
    from ..io.checkpoint import load_checkpoint
    from ..train import predict, softmax

    if not os.path.exists(args.checkpoint):  # missing files are named before the model is built
        raise FileNotFoundError(f"checkpoint not found: {args.checkpoint}")
    paths = _expand_images(args.images)
    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.build_model()
    input_shape = ckpt.input_shape or (1, 28, 28)

    def predict_files(files):  # this rank's share of the files -> (len(files), classes) probabilities
        x, ok = _load_images(files, input_shape, args.invert)
        probs = softmax(predict(model, _normalize_like(ckpt, x)))
        probs[~ok] = np.nan  # unreadable or blank: reported by rank 0 below
        return probs

    # under mpiexec the files are split across ranks and gathered in order on rank 0; one process: all here
    from ..distributed import sharded_map
    gathered = sharded_map(predict_files, paths, root=0, batched=True)
    if gathered is None:  # not rank 0: rank 0 prints
        return 0
    probs = np.stack(gathered)
    names = ckpt.state.get("class_names") or [str(i) for i in range(probs.shape[1])]
    k = max(1, min(args.top, probs.shape[1]))
    failed = 0
    for path, p in zip(paths, probs):
        if np.isnan(p).any():
            failed += 1
            print(f"error: {_why_unreadable(path, input_shape, args.invert)}", file=sys.stderr)
            continue
        order = np.argsort(-p)[:k]
        ranked = ", ".join(f"{names[i]} ({p[i]:.3f})" for i in order)
        print(f"{path}: {ranked}")
    if failed:
        if failed == len(paths):
            raise ValueError("the image could not be classified (see above)" if len(paths) == 1 else
                             f"none of the {len(paths):,} images could be classified (see above)")
        print(f"convnp: {_plural(failed, 'image')} of {len(paths)} could not be classified (see above)",
              file=sys.stderr)
        return 1
    return 0


def _plural(n, word):
    """``_plural(1, "epoch") -> "1 epoch"``, ``_plural(5, "epoch") -> "5 epochs"``."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _normalize_like(ckpt, x):
    if ckpt.state.get("normalize") == "cifar10":
        from ..data.datasets import CIFAR10_MEAN, CIFAR10_STD
        from ..data.transforms import Normalize
        return Normalize(CIFAR10_MEAN, CIFAR10_STD)(x)
    return x


def _load_images(files, input_shape, invert):
    """(len(files), C, H, W) inputs and a mask of the files that could be read (blank/unreadable: zeros)."""
    x = np.zeros((len(files),) + tuple(input_shape), np.float32)
    ok = np.zeros(len(files), bool)
    for i, path in enumerate(files):
        try:
            x[i] = load_image(path, input_shape, invert)
            ok[i] = True
        except (ValueError, OSError):
            pass
    return x, ok


def _why_unreadable(path, input_shape, invert):
    try:
        load_image(path, input_shape, invert)
    except (ValueError, OSError) as e:
        return str(e)
    return f"{path} could not be classified"


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
    from ..accel import planner
    from ..nn import init
    if model is None:
        if args.model not in models.MODELS:
            raise ValueError(f"unknown model {args.model!r}; available: {', '.join(models.list_models())}")
        with init.skipped():  # shapes and counts only: no random draws for 138M weights
            model = _build_model(args.model, shape)
    with planner.use_mode("fixed"):  # one forward to trace shapes: nothing worth timing
        model.summary(shape)
    return 0
