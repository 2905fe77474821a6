"""Keras-style model summary: Layer (type) | Output Shape | Param #."""
from __future__ import annotations

import numpy as np

from ..backend import array_module_for, no_grad
from . import module as module_lib


def _count(module) -> int:
    return sum(p.size for p in module._parameters.values())


def summarize(model, input_shape=None, batch_size: int = 1) -> str:
    """Trace one forward pass (eval mode, no caching) and tabulate the leaf layers in call order."""
    names = {id(m): (name or type(m).__name__) for name, m in model.named_modules()}
    rows = []
    if input_shape is not None:
        shape = (batch_size,) + tuple(int(s) for s in input_shape)
        xp = array_module_for(model.device)
        dtype = next((p.dtype for p in model.parameters()), np.float32)
        recorder = []
        was_training = model.training
        model.eval()
        module_lib._set_summary_recorder(recorder)
        try:
            with no_grad():
                model(xp.zeros(shape, dtype=dtype))
        finally:
            module_lib._set_summary_recorder(None)
            model.train(was_training)
        seen = set()
        for m, out in recorder:
            out_shape = tuple(getattr(out, "shape", ()))
            if m._modules or m is model or id(m) not in names:
                continue  # containers: their leaves are listed
            key = (id(m), out_shape)
            if key in seen:
                continue
            seen.add(key)
            rows.append((names.get(id(m), type(m).__name__), type(m).__name__,
                         "(None, " + ", ".join(str(s) for s in out_shape[1:]) + ")" if out_shape else "?",
                         _count(m)))
    else:
        for name, m in model.named_modules():
            if not m._modules and m is not model:
                rows.append((name, type(m).__name__, "?", _count(m)))
        if not rows:
            rows.append((type(model).__name__, type(model).__name__, "?", _count(model)))
    total = model.num_parameters()
    trainable = model.num_parameters(trainable_only=True)
    header = ("Layer (type)", "Output Shape", "Param #")
    body = [(f"{n} ({t})", s, f"{c:,}") for n, t, s, c in rows]
    w0 = max([len(header[0])] + [len(r[0]) for r in body]) + 2
    w1 = max([len(header[1])] + [len(r[1]) for r in body]) + 2
    w2 = max([len(header[2])] + [len(r[2]) for r in body])
    width = w0 + w1 + w2
    lines = [f'Model: "{type(model).__name__}"', "=" * width,
             f"{header[0]:<{w0}}{header[1]:<{w1}}{header[2]:>{w2}}", "=" * width]
    for r in body:
        lines.append(f"{r[0]:<{w0}}{r[1]:<{w1}}{r[2]:>{w2}}")
    lines += ["=" * width, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {total - trainable:,}", "=" * width]
    return "\n".join(lines)


def capture_activations(model, x, leaves_only: bool = True):
    """Run ``model(x)`` and return ``[(name, layer, output), ...]`` for every layer in call order.

    Names are the dotted attribute paths of ``named_modules()``. With ``leaves_only`` containers are
    left out (their last leaf's output is theirs). The model's mode is not changed; wrap the call in
    ``convnp.no_grad()`` when no backward follows.
    """
    names = {id(m): name for name, m in model.named_modules()}
    recorder = []
    module_lib._set_summary_recorder(recorder)
    try:
        y = model(x)
    finally:
        module_lib._set_summary_recorder(None)
    out = [(names[id(m)], m, a) for m, a in recorder
           if id(m) in names and m is not model and not (leaves_only and m._modules)]
    return out, y
