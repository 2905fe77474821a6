"""PyTorch's own module-test configurations, run through convnp: every config of the layers convnp has.

``torch.testing._internal.common_nn`` lists the configurations PyTorch tests its modules with (constructor
arguments, input sizes, descriptions). For each config of Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d,
AdaptiveAvgPool2d, BatchNorm2d and LocalResponseNorm, the test builds torch's module, maps it to the convnp layer
with the same options and weights (:func:`to_convnp`), and compares the output, the input gradient and every
parameter gradient, in float64 and float32. A config that convnp cannot express is collected by
:func:`test_every_config_is_mapped_or_named`, which fails when one is dropped without a stated reason.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
common_nn = pytest.importorskip("torch.testing._internal.common_nn")

import convnp.nn as nn  # noqa: E402
from torch_oracle import assert_matches_torch  # noqa: E402

MODULES = ("Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm2d",
           "LocalResponseNorm")


def _configs():
    """(id, config) of every torch config for the modules above: ``common_nn``'s dicts, and the samples of
    ``common_modules.module_db`` (made into the same dict form, in training and in eval mode)."""
    found = []
    lists = [common_nn.module_tests]
    if hasattr(common_nn, "get_new_module_tests"):
        lists.append(common_nn.get_new_module_tests())
    for configs in lists:
        for cfg in configs:
            name = cfg.get("module_name")
            if name not in MODULES:
                continue
            ident = f"{name}_{cfg.get('desc', '')}" if cfg.get("desc") else name
            found.append((f"{ident}[{len(found)}]", cfg))
    try:
        from torch.testing._internal import common_modules
    except ImportError:
        return found
    for info in common_modules.module_db:
        name = info.module_cls.__name__
        if name not in MODULES:
            continue
        for training in (True, False):
            samples = info.module_inputs_func(info, device="cpu", dtype=torch.float64, requires_grad=True,
                                              training=training)
            for k, sample in enumerate(samples):
                x = sample.forward_input.args[0] if sample.forward_input.args else None
                if not isinstance(x, torch.Tensor):
                    continue
                cfg = dict(module_name=name, constructor_args=tuple(sample.constructor_input.args),
                           constructor_kwargs=dict(sample.constructor_input.kwargs), eval=not training,
                           input_fn=lambda x=x: x.detach().clone())
                found.append((f"{name}_db{k}_{'train' if training else 'eval'}[{len(found)}]", cfg))
    return found


CONFIGS = _configs()


def _torch_module(cfg):
    ctor = cfg.get("constructor") or getattr(torch.nn, cfg["module_name"])
    return ctor(*cfg.get("constructor_args", ()), **cfg.get("constructor_kwargs", {}))


def _input(cfg, dtype):
    if "input_size" in cfg:
        shape = cfg["input_size"]
    else:
        shape = tuple(cfg["input_fn"]().shape)
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


def _padding(m):
    p = m.padding
    return p if isinstance(p, str) else tuple(p) if isinstance(p, (tuple, list)) else p


def to_convnp(m):
    """The convnp layer with the options of torch module ``m`` (weights copied), or the reason there is none."""
    kind = type(m).__name__
    if kind == "Conv2d":
        layer = nn.Conv2D(m.out_channels, m.kernel_size, strides=m.stride, padding=_padding(m),
                          dilation_rate=m.dilation, groups=m.groups, use_bias=m.bias is not None,
                          padding_mode=m.padding_mode, in_channels=m.in_channels)
    elif kind == "ConvTranspose2d":
        if m.padding_mode != "zeros":
            return f"ConvTranspose2d padding_mode={m.padding_mode!r} (torch itself allows only zeros)"
        layer = nn.Conv2DTranspose(m.out_channels, m.kernel_size, strides=m.stride, padding=tuple(m.padding),
                                   output_padding=tuple(m.output_padding), dilation_rate=m.dilation,
                                   groups=m.groups, use_bias=m.bias is not None, in_channels=m.in_channels)
    elif kind == "MaxPool2d":
        if m.return_indices:
            layer = nn.MaxPool2D(m.kernel_size, m.stride, m.padding, dilation=m.dilation, ceil_mode=m.ceil_mode,
                                 return_indices=True)
        else:
            layer = nn.MaxPool2D(m.kernel_size, m.stride, m.padding, dilation=m.dilation, ceil_mode=m.ceil_mode)
    elif kind == "AvgPool2d":
        layer = nn.AvgPool2D(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode,
                             count_include_pad=m.count_include_pad, divisor_override=m.divisor_override)
    elif kind == "AdaptiveAvgPool2d":
        size = m.output_size
        if isinstance(size, (tuple, list)) and None in size:
            return f"AdaptiveAvgPool2d output_size={size!r} (None keeps an input size: not in convnp)"
        layer = nn.AdaptiveAvgPool2D(size)
    elif kind == "BatchNorm2d":
        if m.momentum is None:
            return "BatchNorm2d momentum=None (a cumulative average: not in convnp)"
        layer = nn.BatchNorm2D(m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine,
                               track_running_stats=m.track_running_stats, bias=not m.affine or m.bias is not None)
    elif kind == "LocalResponseNorm":
        layer = nn.LocalResponseNorm(m.size, m.alpha, m.beta, m.k)
    else:
        return f"no convnp layer for {kind}"
    state = {k: v.detach().numpy() for k, v in m.state_dict().items() if k != "num_batches_tracked"}
    if state:
        layer.load_state_dict(state, strict=False)
    return layer


def _cast(layer, dtype):
    for p in layer.parameters():
        p.data = p.data.astype(dtype)
    for name, buf in list(layer.named_buffers()):
        if buf is not None and buf.dtype.kind == "f":
            setattr(layer, name.split(".")[-1], buf.astype(dtype))
    return layer


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("ident,cfg", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_torch_config_matches(ident, cfg, dtype):
    torch.manual_seed(0)
    theirs = _torch_module(cfg)
    theirs = theirs.double() if dtype == np.float64 else theirs.float()
    ours = to_convnp(theirs)
    if isinstance(ours, str):
        pytest.skip(ours)  # named and counted by test_every_config_is_mapped_or_named
    x = _input(cfg, dtype)
    if x.ndim == 3:  # torch's unbatched (C, H, W) form: the same module on a batch of one
        x = x[None]
    if x.ndim != 4:
        pytest.skip(f"input of {x.ndim} dimensions (convnp's 2-D layers take NCHW)")
    ours = _cast(ours, dtype)
    train = not cfg.get("eval", False)
    theirs.train(train)
    ours.train(train)
    if getattr(theirs, "return_indices", False):  # compare the values; the indices are checked against torch below
        y, idx = ours(x)[:2] if isinstance(ours(x), tuple) else (ours(x), None)
        ty, tidx = theirs(torch.tensor(x))
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-6, atol=1e-6)
        if idx is not None:
            np.testing.assert_array_equal(idx, tidx.numpy())
        return
    tol = 1e-9 if dtype == np.float64 else 2e-4
    assert_matches_torch(ours, theirs, x, rtol=tol, atol=tol, param_atol=tol * 50)


def test_every_config_is_mapped_or_named():
    """At least 60 configs are found (13 in common_nn, 31 samples x train/eval in common_modules), and each one
    maps to a layer or names why not."""
    assert len(CONFIGS) >= 60, f"only {len(CONFIGS)} torch configs found for {MODULES}"
    reasons = {}
    for ident, cfg in CONFIGS:
        torch.manual_seed(0)
        mapped = to_convnp(_torch_module(cfg).double())
        if isinstance(mapped, str):
            reasons[ident] = mapped
    assert len(reasons) <= len(CONFIGS) // 5, reasons  # a few named gaps, not a silent majority
