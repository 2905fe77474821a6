"""benchmarks.run's argument errors (the timings themselves are not tests: see benchmarks/)."""
import pytest

from benchmarks import run
from convnp import accel


def test_accel_on_without_the_kernels_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setattr(accel, "available", lambda: False)
    with pytest.raises(SystemExit) as err:
        run.main(["--accel", "on", "--only", "memory"])
    assert err.value.code == 2
    assert "--accel on needs the C kernels (a C compiler) and CONVNP_ACCEL unset or 1" in capsys.readouterr().err


def test_alternate_takes_turns_after_a_pause_with_untimed_warmup(monkeypatch):
    log = []
    monkeypatch.setattr(run.time, "sleep", lambda s: log.append(("pause", s)))
    medians = run.alternate({"a": lambda: log.append("a"), "b": lambda: log.append("b")}, repeats=2, calls=3,
                            warmup_s=1e-9)
    turn_a, turn_b = [("pause", run.SETTLE_S)] + ["a"] * 4, [("pause", run.SETTLE_S)] + ["b"] * 4
    assert log == (turn_a + turn_b) * 2  # (at least) one warm-up call and 3 timed ones per turn, A B A B
    assert set(medians) == {"a", "b"} and all(m >= 0 for m in medians.values())
    log.clear()
    run.alternate({"a": lambda: log.append("a")}, repeats=1, calls=2)  # no warm-up
    assert log == [("pause", run.SETTLE_S), "a", "a"]
