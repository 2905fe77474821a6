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


def test_forced_avx2_on_an_avx512_cpu_holds_the_peers_to_avx2(monkeypatch):
    from convnp.utils import build
    calls = []
    monkeypatch.setattr(run.os, "execve", lambda exe, argv, env: calls.append((argv, env)))
    monkeypatch.setattr(build, "cpu_features", lambda: {"model": "x", "flags": {"avx2", "avx512f"}})
    for key in run.AVX2_PEERS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("CONVNP_ISA", raising=False)
    run._emulate_avx2_machine(["--only", "resnet"], peers_native=False)
    assert calls == []  # no variant forced: nothing to emulate
    monkeypatch.setenv("CONVNP_ISA", "avx2")
    run._emulate_avx2_machine(["--only", "resnet"], peers_native=True)
    assert calls == []  # asked to leave the peers alone
    run._emulate_avx2_machine(["--only", "resnet"], peers_native=False)
    (argv, env), = calls
    assert argv[-3:] == ["benchmarks.run", "--only", "resnet"] and env["CONVNP_ISA"] == "avx2"
    assert all(env[k] == v for k, v in run.AVX2_PEERS.items())
    for key, value in run.AVX2_PEERS.items():  # the re-started run: already held to AVX2, no second restart
        monkeypatch.setenv(key, value)
    run._emulate_avx2_machine(["--only", "resnet"], peers_native=False)
    monkeypatch.setattr(build, "cpu_features", lambda: {"model": "x", "flags": {"avx2"}})
    for key in run.AVX2_PEERS:
        monkeypatch.delenv(key)
    run._emulate_avx2_machine(["--only", "resnet"], peers_native=False)  # an AVX2 CPU: the peers are AVX2 anyway
    assert len(calls) == 1
