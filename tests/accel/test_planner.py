"""convnp.accel.planner: the measured choice (with injected timings), the modes, the plan file, and the
promise that every conv provider computes what the reference computes, NaN and inf included."""
import json

import numpy as np
import pytest

from convnp import accel
from convnp.accel import planner
from convnp.functional import conv as C


@pytest.fixture
def fresh_planner(monkeypatch, tmp_path):
    """An empty planner writing its plan file under tmp_path, in measure mode."""
    monkeypatch.setenv("CONVNP_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CONVNP_PLAN", "measure")
    monkeypatch.setitem(planner._state, "plans", {})
    monkeypatch.setitem(planner._state, "loaded", False)
    monkeypatch.setitem(planner._state, "fingerprint", "testprint")
    monkeypatch.setattr(planner, "SETTLE_S", 0.0)
    monkeypatch.setattr(planner, "WARMUP_S", 0.0)
    return tmp_path


def _fake_timing(monkeypatch, seconds):
    """Candidates whose runs 'take' the given seconds: Timer.once returns them instead of measuring."""
    calls = {name: 0 for name in seconds}

    def once(self):
        self.run()
        return seconds[self.run.name]

    def make(name):
        def run():
            calls[name] += 1
        run.name = name
        return run
    monkeypatch.setattr(planner.Timer, "once", once)
    return {name: make(name) for name in seconds}, calls


def test_the_fastest_candidate_wins_and_is_remembered(fresh_planner, monkeypatch):
    candidates, calls = _fake_timing(monkeypatch, {"reference": 0.010, "gemm": 0.004, "direct": 0.002})
    assert planner.choose("conv2d", ("case", 1), candidates, rule="gemm") == "direct"
    assert all(count >= 2 for count in calls.values())  # warm-up + at least one timed call each
    before = dict(calls)
    assert planner.choose("conv2d", ("case", 1), candidates, rule="gemm") == "direct"  # from memory: not timed again
    assert calls == before
    stored = json.loads((fresh_planner / "plans" / "testprint.json").read_text())
    (key, entry), = stored.items()
    assert entry["provider"] == "direct" and entry["ms"] == {"direct": 2.0, "gemm": 4.0, "reference": 10.0}


def test_never_slower_than_the_reference(fresh_planner, monkeypatch):
    # within MARGIN of the reference: timing noise, the reference is kept
    candidates, _ = _fake_timing(monkeypatch, {"reference": 0.0100, "direct": 0.0099})
    assert planner.choose("conv2d", ("close",), candidates, rule="direct") == "reference"
    candidates, _ = _fake_timing(monkeypatch, {"reference": 0.010, "direct": 0.200})  # a "fast" path 20x slower
    assert planner.choose("conv2d", ("slow kernel",), candidates, rule="direct") == "reference"


def test_slow_candidates_are_dropped_early(fresh_planner, monkeypatch):
    # 10x slower than the best so far: dropped after its warm-up call; 2x slower: after one timed call
    candidates, calls = _fake_timing(monkeypatch, {"reference": 0.001, "direct": 0.010, "gemm": 0.002})  # in order
    assert planner.choose("conv2d", ("drop",), candidates, rule="direct") == "reference"
    assert calls == {"reference": 1 + planner.REPEATS, "direct": 1, "gemm": 2}


def test_plans_are_read_back_from_disk(fresh_planner, monkeypatch):
    candidates, _ = _fake_timing(monkeypatch, {"reference": 0.003, "gemm": 0.001})
    planner.choose("conv2d", ("disk",), candidates, rule="reference")
    monkeypatch.setitem(planner._state, "plans", {})  # a new process: nothing in memory
    monkeypatch.setitem(planner._state, "loaded", False)
    candidates, calls = _fake_timing(monkeypatch, {"reference": 0.001, "gemm": 0.003})
    assert planner.choose("conv2d", ("disk",), candidates, rule="reference") == "gemm"  # the stored plan
    assert calls == {"reference": 0, "gemm": 0}
    assert planner.plans()["conv2d|disk"]["source"] == "disk"


def test_a_corrupt_plan_file_is_measured_again(fresh_planner, monkeypatch):
    path = fresh_planner / "plans" / "testprint.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    candidates, _ = _fake_timing(monkeypatch, {"reference": 0.002, "gemm": 0.001})
    assert planner.choose("conv2d", ("c",), candidates, rule="reference") == "gemm"
    assert json.loads(path.read_text())["conv2d|c"]["provider"] == "gemm"


def test_modes(fresh_planner, monkeypatch):
    candidates, calls = _fake_timing(monkeypatch, {"reference": 0.003, "gemm": 0.001})
    with planner.use_mode("reference"):
        assert planner.choose("conv2d", ("m",), candidates, rule="gemm") == "reference"
    with planner.use_mode("fixed"):
        assert planner.choose("conv2d", ("m",), candidates, rule="gemm") == "gemm"
    assert calls == {"reference": 0, "gemm": 0}  # neither mode times anything
    monkeypatch.setenv("CONVNP_PLAN", "fastest")
    with pytest.raises(ValueError, match="CONVNP_PLAN='fastest'"):
        planner.mode()
    with pytest.raises(ValueError, match="planner mode 'x'"):
        with planner.use_mode("x"):
            pass


def test_a_candidate_that_runs_out_of_memory_is_skipped(fresh_planner, monkeypatch):
    def big():
        raise MemoryError
    big.name = "direct"
    candidates, _ = _fake_timing(monkeypatch, {"reference": 0.002})
    candidates["direct"] = big
    assert planner.choose("conv2d", ("oom",), candidates, rule="direct") == "reference"


def test_conv_in_measure_mode_plans_each_case_once_and_matches_the_reference(fresh_planner):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8, 10, 10)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    y, cache = C.conv2d_forward(x, w, padding=1)
    keys = [k for k in planner.plans() if k.startswith("conv2d|")]
    assert len(keys) == 1 and planner.plans()[keys[0]]["provider"] == cache["provider"]
    C.conv2d_forward(x, w, padding=1)
    assert len([k for k in planner.plans() if k.startswith("conv2d|")]) == 1  # the same case: planned once
    ref, _ = C.conv2d_forward(x, w, padding=1, provider="reference")
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- same numbers on every provider
def _providers_for(x, w, stride):
    g = C.Geom(3, 3, stride, stride, 1, 1, 1, 1)
    return [name for name, (can_run, _, _) in C.PROVIDERS.items() if can_run(x, w, None, g, 1, "zeros")]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # (NaN and inf in matmul: what the test is about)
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("stride,channels", [(1, 8), (2, 8), (1, 32)])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_propagate_through_every_provider(stride, channels, bad, relu):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, channels, 9, 9)).astype(np.float32)
    w = rng.standard_normal((32, channels, 3, 3)).astype(np.float32)
    x[1, 0, 4, 4] = bad  # one bad input pixel in sample 1
    names = _providers_for(x, w, stride)
    if accel.direct_enabled_for(x):
        assert ("direct" if stride == 1 else "strided") in names  # the C kernels are among them
    outputs = {}
    for name in names:
        y, cache = C.conv2d_forward(x, w, None, stride, 1, relu=relu, save_cache=True, provider=name)
        dy = np.ones_like(y)
        dy[0, 0, 0, 0] = np.nan  # a NaN gradient reaches dW and dx
        dx, dw, _ = C.conv2d_backward(dy, cache)
        outputs[name] = (y, dx, dw)
    y_ref, dx_ref, dw_ref = outputs.pop("reference")
    assert not np.isfinite(y_ref[1]).all() and np.isfinite(y_ref[0]).all()
    for name, (y, dx, dw) in outputs.items():
        np.testing.assert_array_equal(np.isnan(y), np.isnan(y_ref), err_msg=f"{name}: NaN pattern of y")
        np.testing.assert_array_equal(np.isposinf(y), np.isposinf(y_ref), err_msg=f"{name}: +inf pattern of y")
        np.testing.assert_array_equal(np.isneginf(y), np.isneginf(y_ref), err_msg=f"{name}: -inf pattern of y")
        for got, ref in ((y, y_ref), (dx, dx_ref), (dw, dw_ref)):
            # every non-finite value where the reference has one, NaN where it has NaN; the wide-row layouts of
            # dW (gemm, direct) multiply an inf input by the zero columns they drop, so an inf may read NaN there
            np.testing.assert_array_equal(np.isfinite(got), np.isfinite(ref), err_msg=f"{name}: non-finite pattern")
            assert np.isnan(got[np.isnan(ref)]).all(), f"{name}: a NaN of the reference is not NaN"
            finite = np.isfinite(ref)
            np.testing.assert_allclose(got[finite], ref[finite], rtol=1e-4, atol=1e-3, err_msg=name)


def test_warm_up_calls_fill_warmup_s_before_timing(fresh_planner, monkeypatch):
    monkeypatch.setattr(planner, "WARMUP_S", 0.05)
    candidates, calls = _fake_timing(monkeypatch, {"reference": 0.01})
    candidates["gemm"] = candidates["reference"]  # two names so that timing happens
    calls_before = dict(calls)
    planner.choose("conv2d", ("warm",), candidates, rule="gemm")
    # per candidate: 5 warm-up calls of 0.01 s (0.05 s), then REPEATS timed ones
    assert calls["reference"] - calls_before["reference"] == 2 * (5 + planner.REPEATS)
