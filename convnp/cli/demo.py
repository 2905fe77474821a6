"""``convnp demo``: build a small CNN, print its summary, and show one forward/backward pass on real MNIST digits.

The network: conv 8@3x3 (ReLU) - 2x2 max pool - flatten - dense 10 (logits), 13,610 parameters. The demo
prints the shape after each layer of the forward pass, the cross-entropy loss (``convnp.nn.losses``), the
gradient norm of every parameter from the explicit backward pass, and the loss after a few SGD steps on the
same batch (it goes down: the gradients point the right way).
"""
from __future__ import annotations


def register(sub):
    p = sub.add_parser("demo", help="one forward/backward pass of a small CNN on real MNIST digits",
                       description="Build a small CNN (conv 8@3x3 - pool - dense 10), run one forward and backward "
                                   "pass on real MNIST digits and print the shapes, loss and gradient norms.")
    p.add_argument("--batch-size", type=int, default=8, help="how many MNIST training digits (default 8)")
    p.add_argument("--steps", type=int, default=5, help="SGD steps on the batch after the first pass (default 5)")
    p.set_defaults(func=run)


def build_demo_cnn(seed=0):
    """The demo's small CNN: (N, 1, 28, 28) -> conv 8@3x3 -> (N, 8, 26, 26) -> pool -> (N, 8, 13, 13) -> (N, 10)."""
    from .. import nn
    return nn.Sequential([
        nn.Conv2D(8, 3, activation="relu", in_channels=1, seed=seed),
        nn.MaxPool2D(2),
        nn.Flatten(),
        nn.Dense(10, seed=seed + 1),
    ])


def run(args) -> int:
    import numpy as np

    from .. import optim
    from ..data import load_mnist
    from ..nn.losses import CrossEntropyLoss

    if args.batch_size < 1 or args.steps < 0:
        raise ValueError(f"--batch-size ({args.batch_size}) must be positive and --steps ({args.steps}) not negative")
    (x, t), _ = load_mnist()
    x, t = x[: args.batch_size], t[: args.batch_size]
    model = build_demo_cnn()
    model.summary((1, 28, 28))
    loss_fn = CrossEntropyLoss()

    h = x
    print(f"forward: input {tuple(h.shape)}")
    for name, layer in model.named_children():
        h = layer(h)
        print(f"  {name} {type(layer).__name__:<10} -> {tuple(h.shape)}")
    loss = loss_fn(h, t)
    model.zero_grad()
    model.backward(loss_fn.backward())
    print(f"labels {t.tolist()}  cross-entropy {loss:.4f}  (random weights: about ln 10 = 2.30)")
    print("backward: gradient norms")
    for name, p in model.named_parameters():
        print(f"  |d loss / d {name}| = {float(np.linalg.norm(p.grad)):.4f}   shape {tuple(p.data.shape)}")
    if args.steps:
        opt = optim.SGD(model.parameters(), lr=0.1)
        for _ in range(args.steps):
            model.zero_grad()
            loss_fn(model(x), t)
            model.backward(loss_fn.backward())
            opt.step()
        print(f"after {args.steps} SGD step{'s' if args.steps != 1 else ''} (lr 0.1) on this batch: "
              f"cross-entropy {loss_fn(model(x), t):.4f}")
    return 0
