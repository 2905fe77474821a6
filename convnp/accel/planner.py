"""The planner: which provider runs an operation, chosen by measurement on this machine (like cudnn.benchmark,
or FFTW's wisdom), remembered in memory and on disk.

An operation (``"conv2d"``) offers the planner the providers that can compute one case (a geometry, dtype,
thread count, training or not), each as a callable that runs the case once; the planner times them the first
time it meets that case and keeps the fastest. Every provider computes the same numbers within float32 rounding
(the reference is always among them), so a plan changes speed, never results beyond rounding.

Modes (``CONVNP_PLAN`` or :func:`use_mode`):

* ``measure`` (default): time each candidate in a block of its own (warm-up calls for :data:`WARMUP_S`, then up
  to :data:`REPEATS` calls in a row, fewer once :data:`BUDGET_S` is spent or once it is :data:`DROP_FACTOR` x
  slower than the best so far) and keep the fastest. A candidate is chosen over the reference only when it is faster by
  :data:`MARGIN`: measured plans never pick a provider slower than the reference beyond timing noise.
* ``reference``: always the reference provider (readable NumPy, see ``convnp.functional.conv_reference``).
* ``fixed``: the operation's deterministic rule (geometry only, no timing), for tests and reproducible runs.

Measured plans are stored in ``<cache dir>/plans/<key>.json``, where the key hashes the CPU model and
features, the kernel variant and sources, the convnp and NumPy versions: another CPU, build or version starts
afresh. ``convnp info`` prints the plans; :func:`plans` returns them.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
import time

__all__ = ["MODES", "mode", "use_mode", "choose", "plans", "forget", "fingerprint", "plan_file", "Timer",
           "measuring", "measured_seconds"]

MODES = ("measure", "reference", "fixed")
#: bumped when the way plans are measured changes: plans measured the old way are not reused
PLANNER_VERSION = 5
#: timed calls per candidate at most (after one warm-up call)
REPEATS = 3
#: seconds of timed calls per candidate after which no more are made
BUDGET_S = 0.05
#: a candidate this much slower than the best after its first timed call is not timed again
DROP_FACTOR = 1.5
#: a non-reference provider must be this much faster than the reference to be chosen (timing noise)
MARGIN = 0.03
#: idle seconds before each candidate's block: OpenBLAS's worker threads spin ~0.1 s after a matrix product and
#: slowed the C kernels timed right after a GEMM candidate by 1.3-2x (a strided 64->64 layer: 33 vs 16 ms)
SETTLE_S = 0.1
#: untimed calls of a candidate for at least this long first: after an idle pause, calls of the C kernels (whose
#: worker threads sleep when idle) ran up to 2x slower for ~40 ms (a 32->64 layer: 10 ms planned, 5.4 ms steady)
WARMUP_S = 0.05

_lock = threading.RLock()
_state = {"mode": None, "plans": {}, "loaded": False, "fingerprint": None, "measuring": 0, "measured_s": 0.0}


def mode() -> str:
    """The planning mode: :func:`use_mode`'s, else ``$CONVNP_PLAN``, else ``measure``."""
    if _state["mode"] is not None:
        return _state["mode"]
    value = os.environ.get("CONVNP_PLAN", "measure").strip().lower() or "measure"
    if value not in MODES:
        raise ValueError(f"CONVNP_PLAN={value!r}: expected one of {', '.join(MODES)}")
    return value


@contextlib.contextmanager
def use_mode(name: str):
    """Plan in mode ``name`` inside a block (``measure``, ``reference`` or ``fixed``)."""
    if name not in MODES:
        raise ValueError(f"planner mode {name!r}: expected one of {', '.join(MODES)}")
    previous, _state["mode"] = _state["mode"], name
    try:
        yield
    finally:
        _state["mode"] = previous


def fingerprint() -> str:
    """A short hash of what makes timings comparable: CPU model and features, kernel variant and sources,
    convnp and NumPy versions."""
    if _state["fingerprint"] is None:
        import numpy as np
        from .._version import __version__
        from ..utils import build
        from . import direct
        cpu = build.cpu_features()
        parts = [cpu["model"], cpu["machine"], " ".join(sorted(cpu["flags"])), str(direct.variant()),
                 direct.status(), __version__, np.__version__, f"planner {PLANNER_VERSION}"]  # (status: the
        # library's file name, a hash of its sources, flags and compiler)
        digest = hashlib.sha256("\n".join(parts).encode())
        for path in direct.SOURCES:
            try:
                digest.update(path.read_bytes())
            except OSError:
                pass
        _state["fingerprint"] = digest.hexdigest()[:16]
    return _state["fingerprint"]


def plan_file():
    from ..utils.build import cache_dir
    return cache_dir() / "plans" / f"{fingerprint()}.json"


def _load():
    if _state["loaded"]:
        return
    _state["loaded"] = True
    try:
        with open(plan_file()) as f:
            stored = json.load(f)
        if isinstance(stored, dict):
            for key, entry in stored.items():
                if isinstance(entry, dict) and isinstance(entry.get("provider"), str):
                    _state["plans"].setdefault(key, dict(entry, source="disk"))
    except (OSError, ValueError):
        pass  # no file yet, or an unreadable one: measure again


def _save():
    path = plan_file()
    measured = {k: {f: v for f, v in e.items() if f != "source"} for k, e in _state["plans"].items()
                if e.get("source") in ("measured", "disk")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(measured, f, indent=0, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache: the plans stay in memory for this process


class Timer:
    """Best-of timing of one candidate: ``Timer(run).measure()`` -> seconds (inf when it raised)."""

    def __init__(self, run):
        self.run = run

    def once(self) -> float:
        start = time.perf_counter()
        self.run()
        return time.perf_counter() - start


def _measure(candidates, reference):
    """{name: best seconds} of the candidates (see the module docstring).

    Each candidate is timed in a block of its own: untimed calls for WARMUP_S (a candidate whose first call
    alone takes longer gets no more), then up to REPEATS timed calls in a row. Interleaving single calls of different providers
    made the one after a GEMM pay for its spinning threads; so does a block that starts while they spin, hence
    the pause of SETTLE_S before each block.
    """
    best = {}
    for name, run in candidates.items():
        time.sleep(SETTLE_S)
        timer = Timer(run)
        try:
            warm = spent = timer.once()
            while spent < WARMUP_S and warm < WARMUP_S:  # (see WARMUP_S)
                spent += timer.once()
        except MemoryError:
            continue
        fastest = min(best.values(), default=float("inf"))
        if warm > DROP_FACTOR * 2 * fastest:  # clearly slower even allowing for a cold first call
            best[name] = warm
            continue
        spent, times = 0.0, []
        while len(times) < REPEATS and (spent < BUDGET_S or not times):
            times.append(timer.once())
            spent += times[-1]
            if times[-1] > DROP_FACTOR * fastest:
                break
        best[name] = min(times)
    return best


def choose(op: str, case: tuple, candidates: dict, rule: str, reference: str = "reference") -> str:
    """The provider for one ``case`` of operation ``op``.

    Args:
        op: the operation's name (``"conv2d"``).
        case: a hashable description of the case (shapes, geometry, dtype, threads, training...).
        candidates: ``{name: run}`` where ``run()`` computes the case once with that provider (used only when
            measuring); every name must be able to compute the case. Must hold ``reference``.
        rule: the provider the ``fixed`` mode picks.
        reference: the reference provider's name.
    Returns: a name from ``candidates``.
    """
    current = mode()
    if current == "reference":
        return reference
    if current == "fixed" or len(candidates) == 1:
        return rule
    key = f"{op}|{'|'.join(map(str, case))}"
    with _lock:
        _load()
        entry = _state["plans"].get(key)
        if entry is not None and entry["provider"] in candidates:
            return entry["provider"]
        _state["measuring"] += 1
        start = time.perf_counter()
        try:
            times = _measure(candidates, reference)
        finally:
            _state["measuring"] -= 1
            _state["measured_s"] += time.perf_counter() - start
        if not times:
            return reference
        name = min(times, key=times.get)
        if name != reference and reference in times and times[name] > (1 - MARGIN) * times[reference]:
            name = reference
        _state["plans"][key] = {"provider": name, "source": "measured",
                                "ms": {k: round(v * 1e3, 3) for k, v in sorted(times.items())}}
        _save()
        return name


def measuring() -> bool:
    """True while the planner times candidates (their runs must not plan anything themselves)."""
    return _state["measuring"] > 0


def plans() -> dict:
    """{key: {"provider", "source" (measured / disk), "ms": {provider: best ms}}} of the plans known so far."""
    with _lock:
        _load()
        return {k: dict(v) for k, v in _state["plans"].items()}


def forget(disk: bool = False) -> None:
    """Drop the plans in memory (and the plan file with ``disk``): the next cases are measured again."""
    with _lock:
        _state["plans"].clear()
        _state["loaded"] = not disk and _state["loaded"]
        if disk:
            with contextlib.suppress(OSError):
                plan_file().unlink()
            _state["loaded"] = True


def measured_seconds() -> float:
    """Seconds this process has spent timing candidates so far (accel.threads leaves them out of step timings)."""
    return _state["measured_s"]
