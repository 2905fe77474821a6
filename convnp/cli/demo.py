"""``convnp demo``: build a small CNN, print its summary and run one forward/backward on real MNIST digits."""
from __future__ import annotations


def register(sub):
    p = sub.add_parser("demo", help="one forward/backward pass of a small CNN on real MNIST digits")
    p.add_argument("--batch-size", type=int, default=8)
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np
    from .. import nn
    from ..data import load_mnist

    (x, t), _ = load_mnist()
    x, t = x[: args.batch_size], t[: args.batch_size]
    model = nn.Sequential([nn.Flatten(), nn.Dense(100, activation="relu", seed=0), nn.Dense(10, seed=1)])
    model.summary((1, 28, 28))
    logits = model(x)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_p[np.arange(len(t)), t].mean()
    dlogits = np.exp(log_p)
    dlogits[np.arange(len(t)), t] -= 1
    model.backward(dlogits / len(t))
    norms = {name: float(np.linalg.norm(p.grad)) for name, p in model.named_parameters()}
    print(f"labels {t.tolist()}  loss {loss:.4f}")
    for name, norm in norms.items():
        print(f"  |grad {name}| = {norm:.4f}")
    return 0
