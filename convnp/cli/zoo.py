"""``convnp classify`` (top-k ImageNet classes of a photo), ``convnp convert`` (weight file formats) and
``convnp export`` (ONNX)."""
from __future__ import annotations


def register(sub):
    p = sub.add_parser("classify", help="classify photos with a pretrained model from the zoo (ImageNet or digits)")
    p.add_argument("images", nargs="+", help="image files (any Pillow format; grey/RGBA/16-bit are converted)")
    p.add_argument("--model", default="vgg16", help="zoo model name (default vgg16)")
    p.add_argument("--weights", default=None,
                   help="weights file: .pth (needs torch), .safetensors, .npz, Keras .h5 (without it the model has "
                        "random weights and says so)")
    p.add_argument("--top", type=int, default=5, help="how many classes to print per image")
    p.add_argument("--mode", choices=["auto", "torch", "caffe"], default="auto",
                   help="input normalization; auto = caffe for Keras .h5 weights, torch otherwise")
    p.set_defaults(func=run_classify)

    c = sub.add_parser("convert", help="convert a weights file, e.g. in.pth out.safetensors")
    c.add_argument("src", help=".pth/.pt (needs torch), .safetensors, .npz or Keras VGG16 .h5")
    c.add_argument("dst", help=".safetensors, .npz or .pth")
    c.set_defaults(func=run_convert)

    e = sub.add_parser("export", help="export a zoo model (with optional weights) to ONNX")
    e.add_argument("output", help="the .onnx file to write")
    e.add_argument("--model", default="resnet18",
                   help="zoo model name (default resnet18), or a training checkpoint / saved model (.npz)")
    e.add_argument("--weights", default=None, help="optional weights file to load first")
    e.add_argument("--input-shape", default=None,
                   help="C,H,W of one input (default 3,224,224; 1,32,32 for lenet5; 3,227,227 for alexnet_paper)")
    e.add_argument("--num-classes", type=int, default=None, help="outputs, when not the model's default")
    e.set_defaults(func=run_export)


def _check_files(images, weights):
    """Name a missing image or weights file before a (possibly 138M-parameter) model is built."""
    import os
    for path in list(images) + ([weights] if weights else []):
        if not os.path.exists(str(path)):
            what = "weights file" if path is weights else "image"
            raise FileNotFoundError(f"{what} not found: {path}")


def random_weights_warning(model_name, flag="--weights"):
    """The line printed (stderr) when a zoo model runs without trained weights."""
    return (f"warning: {model_name} has random weights (no {flag} given): its answers are meaningless; "
            f"docs/models.md says where to get trained weights")


def classify(images, model_name="vgg16", weights=None, top=5, mode="auto"):
    """Top-``top`` (wnid, name, probability) for each image path, with ``model_name`` and ``weights``.

    Digit models (1x28x28 inputs, e.g. ``simple_convnet``) read each picture through the digit pipeline of
    :mod:`convnp.data.images` and answer ``(str(digit), str(digit), probability)`` rows.
    """
    import numpy as np

    from .. import models
    from ..backend import no_grad
    from ..data.images import is_digit_input, load_digit
    from ..models.imagenet import decode_predictions, preprocess_imagenet

    _check_files(images, weights)
    digits = is_digit_input(models.registry.default_input_shape(model_name))
    if mode == "auto":
        mode = "caffe" if str(weights).lower().endswith((".h5", ".hdf5")) else "torch"
    model = _zoo_model(model_name, weights).eval()
    if digits:
        batch = np.stack([load_digit(path) for path in images])
    else:
        batch = np.concatenate([preprocess_imagenet(path, mode=mode) for path in images])
    with no_grad():
        logits = np.asarray(model(batch), dtype=np.float64)
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = z / z.sum(axis=1, keepdims=True)
    if digits:
        order = np.argsort(-probs, axis=1)[:, :top]
        return [[(str(i), str(i), float(p[i])) for i in row] for p, row in zip(probs, order)]
    if logits.shape[1] != 1000:
        raise ValueError(f"classify: {model_name} has {logits.shape[1]} outputs; ImageNet class names need 1000")
    return decode_predictions(probs, top=top)


def _zoo_model(name, weights):
    """``models.get_model(name)`` with ``weights`` loaded (passed to factories that take ``weights=``)."""
    import inspect
    from .. import models
    if name not in models.MODELS or weights is None:
        return models.get_model(name)
    if "weights" in inspect.signature(models.MODELS[name]).parameters:
        return models.get_model(name, weights=weights)
    model = models.get_model(name)
    model.load_weights(weights)
    return model


def run_classify(args) -> int:
    import sys
    if args.weights is None:
        print(random_weights_warning(args.model), file=sys.stderr)
    results = classify(args.images, args.model, args.weights, args.top, args.mode)
    for path, rows in zip(args.images, results):
        print(path)
        for rank, (wnid, name, p) in enumerate(rows, 1):
            print(f"  {rank}. {p:7.2%}  {name}" + ("" if wnid == name else f"  ({wnid})"))
    return 0


def run_convert(args) -> int:
    from ..io.weights import convert_weights

    n = convert_weights(args.src, args.dst)
    print(f"wrote {n} arrays to {args.dst}")
    return 0


_DEFAULT_SHAPES = {"lenet5": (1, 32, 32), "lenet5_modern": (1, 28, 28), "alexnet_paper": (3, 227, 227),
                   "resnet18_cifar": (3, 32, 32), "resnet20_cifar": (3, 32, 32)}


def run_export(args) -> int:
    from .. import models
    from ..io.onnx_export import export_onnx

    import os
    import sys
    if args.weights and not os.path.exists(args.weights):
        raise FileNotFoundError(f"weights file not found: {args.weights}")
    kwargs = {} if args.num_classes is None else {"num_classes": args.num_classes}
    checkpoint_shape = None
    if str(args.model).endswith(".npz"):  # a training checkpoint or saved model: architecture and weights
        from ..io.checkpoint import load_checkpoint
        ckpt = load_checkpoint(args.model)
        model, checkpoint_shape = ckpt.build_model(), ckpt.input_shape
    else:
        if not args.weights:
            print(random_weights_warning(args.model), file=sys.stderr)
        model = models.get_model(args.model, **kwargs)
    if args.weights:
        model.load_weights(args.weights)
    if args.input_shape:
        try:
            shape = tuple(int(v) for v in args.input_shape.split(","))
        except ValueError:
            shape = ()
        if len(shape) != 3:
            raise ValueError(f"--input-shape must be C,H,W (three integers), got {args.input_shape!r}")
    elif checkpoint_shape is not None:
        shape = checkpoint_shape
    else:
        shape = _DEFAULT_SHAPES.get(args.model) or models.registry.default_input_shape(args.model)
    export_onnx(model, args.output, shape)
    print(f"wrote {args.output} ({args.model}, input (N, {', '.join(map(str, shape))}))")
    return 0
