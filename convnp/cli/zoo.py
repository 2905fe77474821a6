"""``convnp classify`` (top-k ImageNet classes of a photo) and ``convnp convert`` (weight file formats)."""
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
