"""``convnp classify`` (top-k ImageNet classes of a photo), ``convnp convert`` (weight file formats) and
``convnp export`` (ONNX)."""
from __future__ import annotations


def register(sub):
    p = sub.add_parser("classify", help="classify photos with a pretrained ImageNet model from the zoo")
    p.add_argument("images", nargs="+", help="image files (any Pillow format; grey/RGBA/16-bit are converted)")
    p.add_argument("--model", default="vgg16", help="zoo model name (default vgg16)")
    p.add_argument("--weights", required=True, help="weights file: .pth (needs torch), .safetensors, .npz, Keras .h5")
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
    e.add_argument("--model", default="resnet18", help="zoo model name (default resnet18)")
    e.add_argument("--weights", default=None, help="optional weights file to load first")
    e.add_argument("--input-shape", default=None,
                   help="C,H,W of one input (default 3,224,224; 1,32,32 for lenet5; 3,227,227 for alexnet_paper)")
    e.add_argument("--num-classes", type=int, default=None, help="outputs, when not the model's default")
    e.set_defaults(func=run_export)


def classify(images, model_name="vgg16", weights=None, top=5, mode="auto"):
    """Top-``top`` (wnid, name, probability) for each image path, with ``model_name`` and ``weights``."""
    import numpy as np

    from .. import models
    from ..backend import no_grad
    from ..models.imagenet import decode_predictions, preprocess_imagenet

    if mode == "auto":
        mode = "caffe" if str(weights).lower().endswith((".h5", ".hdf5")) else "torch"
    model = models.get_model(model_name, weights=weights).eval()
    batch = np.concatenate([preprocess_imagenet(path, mode=mode) for path in images])
    with no_grad():
        logits = np.asarray(model(batch), dtype=np.float64)
    if logits.shape[1] != 1000:
        raise ValueError(f"classify: {model_name} has {logits.shape[1]} outputs; ImageNet class names need 1000")
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return decode_predictions(z / z.sum(axis=1, keepdims=True), top=top)


def run_classify(args) -> int:
    results = classify(args.images, args.model, args.weights, args.top, args.mode)
    for path, rows in zip(args.images, results):
        print(path)
        for rank, (wnid, name, p) in enumerate(rows, 1):
            print(f"  {rank}. {p:7.2%}  {name}  ({wnid})")
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

    kwargs = {} if args.num_classes is None else {"num_classes": args.num_classes}
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
    else:
        shape = _DEFAULT_SHAPES.get(args.model, (3, 224, 224))
    export_onnx(model, args.output, shape)
    print(f"wrote {args.output} ({args.model}, input (N, {', '.join(map(str, shape))}))")
    return 0
