"""The fused C Adam step (convnp/accel/adam.c) follows convnp.optim.Adam's NumPy rule."""
import numpy as np
import pytest

from convnp import accel, nn, optim
from convnp.accel import direct


def _run(opt_cls, steps, **kwargs):
    rng = np.random.default_rng(0)
    p = nn.Parameter(rng.standard_normal((300, 7)).astype(np.float32))
    opt = opt_cls([p], **kwargs)
    for _ in range(steps):
        p.grad = rng.standard_normal(p.data.shape).astype(np.float32) * 0.1
        opt.step()
    return p.data.copy(), opt.state_dict() if hasattr(opt, "state_dict") else None


@pytest.mark.parametrize("opt_cls,kwargs", [
    (optim.Adam, {}), (optim.Adam, {"weight_decay": 0.05, "lr": 3e-3}),
    (optim.AdamW, {"weight_decay": 0.1, "betas": (0.8, 0.99), "eps": 1e-6}),
])
def test_c_step_matches_numpy(opt_cls, kwargs):
    calls = []
    original = direct.adam_step
    direct.adam_step = lambda *a, **k: (calls.append(1), original(*a, **k))
    try:
        got, _ = _run(opt_cls, 40, **kwargs)
    finally:
        direct.adam_step = original
    with accel.disabled():
        want, _ = _run(opt_cls, 40, **kwargs)
    assert len(calls) == 40
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


def test_amsgrad_and_float64_stay_on_numpy():
    calls = []
    original = direct.adam_step
    direct.adam_step = lambda *a, **k: (calls.append(1), original(*a, **k))
    try:
        _run(optim.Adam, 3, amsgrad=True)
        q = nn.Parameter(np.ones(5))  # float64
        opt = optim.Adam([q])
        q.grad = np.ones(5)
        opt.step()
    finally:
        direct.adam_step = original
    assert calls == []


def test_subnormal_moments_are_flushed_and_the_fp_mode_restored():
    assert direct.available(), direct.status()
    tiny = np.float32(1e-39)  # subnormal in float32
    p = np.ones(4, np.float32)
    g = np.zeros(4, np.float32)
    m = np.full(4, tiny, np.float32)
    v = np.full(4, tiny, np.float32)
    direct.adam_step(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, 5)
    assert np.all(m == 0) and np.all(v == 0) and np.all(p == 1)  # NumPy would keep 0.9 * 1e-39 in m
    assert np.float32(1e-39) * np.float32(1.0) != 0  # FTZ/DAZ are off again after the call
