"""Tests for convnp.distributed: the single-process stand-in, world detection, the sampler, sharded_map,
SyncBatchNorm and the abort hook in-process; the MPI collectives, data-parallel equivalence and abort
behaviour under ``mpiexec -n 2`` (scripts in tests/mpi/, run as subprocesses under a timeout)."""
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convnp import nn
from convnp.distributed import (DistributedSampler, SingleProcessComm, SyncBatchNorm1D, SyncBatchNorm2D,
                                abort_if_failed, convert_sync_batchnorm, get_world, launched_world_size,
                                print0, root_only, set_world, shard_bounds, sharded_map)
from convnp.distributed import world as world_mod
from convnp.gradcheck import check_module_gradients

MPI_DIR = Path(__file__).resolve().parents[1] / "mpi"
ROOT = Path(__file__).resolve().parents[2]
LAUNCH_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE", "CONVNP_DISTRIBUTED")


class FakeWorld(SingleProcessComm):
    """A rank of a pretend world: enough for the sampler and sharding (no communication)."""

    def __init__(self, rank, size):
        self.rank, self.size = rank, size
        self.aborted = None

    def abort(self, code=1):
        self.aborted = code


@pytest.fixture
def fresh_world(monkeypatch):
    """No launcher variables and no cached communicator; restores the cached one afterwards."""
    for name in LAUNCH_VARS:
        monkeypatch.delenv(name, raising=False)
    old = set_world(None)
    yield
    set_world(old)


# ---------------------------------------------------------------- world detection and the stand-in
def test_get_world_is_single_process_without_launcher(fresh_world):
    w = get_world()
    assert isinstance(w, SingleProcessComm)
    assert (w.rank, w.size, w.is_root, w.is_distributed) == (0, 1, True, False)
    assert get_world() is w  # cached


def test_launched_world_size_reads_launcher_variables():
    assert launched_world_size({}) == 1
    assert launched_world_size({"PMI_SIZE": "4"}) == 4
    assert launched_world_size({"OMPI_COMM_WORLD_SIZE": "3"}) == 3
    with pytest.raises(RuntimeError, match=r"PMI_SIZE='x' is not an integer world size"):
        launched_world_size({"PMI_SIZE": "x"})


def test_one_rank_launch_and_forced_off_use_the_stand_in(fresh_world, monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "1")
    assert isinstance(get_world(), SingleProcessComm)
    set_world(None)
    monkeypatch.setenv("PMI_SIZE", "4")
    monkeypatch.setenv("CONVNP_DISTRIBUTED", "0")
    assert isinstance(get_world(), SingleProcessComm)


def test_bad_convnp_distributed_value(fresh_world, monkeypatch):
    monkeypatch.setenv("CONVNP_DISTRIBUTED", "maybe")
    with pytest.raises(RuntimeError, match=r"CONVNP_DISTRIBUTED='maybe'; use 0 or 1"):
        get_world()


def test_mpi_launch_without_mpi4py_says_how_to_install(fresh_world, monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py -> ImportError
    with pytest.raises(RuntimeError, match=r"one of 2 MPI ranks, but mpi4py is not installed.*convnp\[dist\]"):
        get_world()


def test_stand_in_collectives_are_identities():
    w = SingleProcessComm()
    a = np.arange(3.0)
    s = w.allreduce_sum(a)
    np.testing.assert_array_equal(s, a)
    assert s is not a  # a new array, like the MPI version
    assert w.allreduce_sum(5) == 5 and w.allreduce_mean(3) == 3.0 and isinstance(w.allreduce_mean(3), float)
    np.testing.assert_array_equal(w.allreduce_mean(a), a)
    assert w.bcast({"a": 1}) == {"a": 1} and w.gather(7) == [7] and w.allgather(7) == [7]
    w.barrier()
    p = nn.Parameter(np.ones(2))
    p.grad = np.full(2, 3.0)
    w.allreduce_gradients([p])
    np.testing.assert_array_equal(p.grad, [3.0, 3.0])  # the mean over one rank
    model = nn.Dense(2)
    model(np.ones((1, 3), np.float32))
    before = model.weight.data.copy()
    w.broadcast_parameters(model)
    np.testing.assert_array_equal(model.weight.data, before)
    with pytest.raises(ValueError, match=r"root must be a rank in \[0, 1\), got 1"):
        w.bcast(1, root=1)
    with pytest.raises(ValueError, match=r"root must be a rank in \[0, 1\), got -1"):
        w.gather(1, root=-1)


def test_shard_slices_and_error():
    idx = np.arange(12)
    parts = [FakeWorld(r, 3).shard(idx) for r in range(3)]
    np.testing.assert_array_equal(np.concatenate(parts), idx)
    np.testing.assert_array_equal(parts[1], [4, 5, 6, 7])
    with pytest.raises(ValueError, match=r"10 entries, which is not divisible by the world size 4"):
        FakeWorld(0, 4).shard(np.arange(10))


# ---------------------------------------------------------------- sampler
@pytest.mark.parametrize("n,size,drop,bs", [(10, 3, False, None), (10, 3, True, None), (2, 4, False, None),
                                            (23, 2, False, 4), (23, 2, True, 4), (12, 4, False, None)])
def test_sampler_shards_are_disjoint_equal_and_cover(n, size, drop, bs):
    shards = [DistributedSampler(n, world=FakeWorld(r, size), seed=5, drop_last=drop, batch_size=bs).indices()
              for r in range(size)]
    lengths = {len(s) for s in shards}
    assert len(lengths) == 1  # every rank runs the same number of steps
    per = lengths.pop()
    m = size * (bs or 1)
    flat = np.concatenate(shards)
    if drop:
        assert per * size == (n // m) * m
        assert len(np.unique(flat)) == len(flat)  # disjoint
    else:
        assert per * size == -(-n // m) * m
        assert set(flat.tolist()) == set(range(n))  # covers the data set
        uniq, counts = np.unique(flat, return_counts=True)
        assert counts.sum() - len(uniq) == per * size - n  # only the padding repeats
    if bs:
        assert per % bs == 0


def test_sampler_is_seeded_per_epoch_and_identical_across_ranks():
    a = DistributedSampler(50, world=FakeWorld(0, 2), seed=1)
    b = DistributedSampler(50, world=FakeWorld(1, 2), seed=1)
    np.testing.assert_array_equal(a.global_indices(), b.global_indices())  # same permutation everywhere
    e0 = a.indices()
    a.set_epoch(1)
    assert not np.array_equal(a.indices(), e0)  # reshuffled each epoch
    a.set_epoch(0)
    np.testing.assert_array_equal(a.indices(), e0)  # reproducible
    assert not np.array_equal(DistributedSampler(50, world=FakeWorld(0, 2), seed=2).indices(), e0)
    assert list(a) == e0.tolist() and len(a) == 25 and a.indices().dtype == np.int64
    ordered = DistributedSampler(6, world=FakeWorld(1, 2), shuffle=False)
    np.testing.assert_array_equal(ordered.indices(), [3, 4, 5])
    assert "rank=1, size=2" in repr(ordered) and "per_rank=3" in repr(ordered)


def test_sampler_batch_mode_matches_single_process_global_batches():
    """Step k of rank r = rows [r*b, (r+1)*b) of global batch k of the 1-process sampler with batch size*b."""
    size, b = 3, 2
    one = DistributedSampler(20, world=SingleProcessComm(), seed=4, batch_size=size * b).indices()
    ranks = [DistributedSampler(20, world=FakeWorld(r, size), seed=4, batch_size=b) for r in range(size)]
    assert {s.num_batches() for s in ranks} == {len(one) // (size * b)}
    for k in range(len(one) // (size * b)):
        glob = np.concatenate([s.indices()[k * b:(k + 1) * b] for s in ranks])
        np.testing.assert_array_equal(glob, one[k * size * b:(k + 1) * size * b])


def test_sampler_errors():
    w = FakeWorld(0, 4)
    with pytest.raises(ValueError, match=r"the data set is empty \(n=0\)"):
        DistributedSampler(0, world=w)
    with pytest.raises(ValueError, match=r"n must be >= 0, got -1"):
        DistributedSampler(-1, world=w)
    with pytest.raises(ValueError, match=r"drop_last with 3 samples and 4 ranks leaves no samples; need at least 4"):
        DistributedSampler(3, world=w, drop_last=True)
    with pytest.raises(ValueError, match=r"drop_last with 7 samples and 4 ranks x batch 2 leaves no samples; need at least 8"):
        DistributedSampler(7, world=w, drop_last=True, batch_size=2)
    with pytest.raises(ValueError, match=r"batch_size must be >= 1, got 0"):
        DistributedSampler(8, world=w, batch_size=0)
    with pytest.raises(ValueError, match=r"construct the sampler with batch_size="):
        DistributedSampler(8, world=w).num_batches()
    assert len(DistributedSampler(list(range(9)), world=w)) == 3  # a sized data set works as n


# ---------------------------------------------------------------- sharded_map and rank-0 helpers
def test_shard_bounds_balance_and_cover():
    for n in range(0, 12):
        for size in (1, 2, 3, 5):
            bounds = [shard_bounds(n, r, size) for r in range(size)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(bounds[i][1] == bounds[i + 1][0] for i in range(size - 1))
            lens = [b - a for a, b in bounds]
            assert max(lens) - min(lens) <= 1
    assert shard_bounds(5, 0, 2) == (0, 3) and shard_bounds(5, 1, 2) == (3, 5)


def test_sharded_map_single_process_and_share_of_a_rank():
    assert sharded_map(lambda v: v * v, range(5), world=SingleProcessComm()) == [0, 1, 4, 9, 16]
    assert sharded_map(str, [], world=SingleProcessComm()) == []
    calls = []

    class Gathering(FakeWorld):
        def allgather(self, obj):
            return [["x"] * 2, obj]  # rank 0's share (2 items) then ours

    out = sharded_map(lambda v: calls.append(v) or v * 10, [1, 2, 3, 4], world=Gathering(1, 2))
    assert calls == [3, 4] and out == ["x", "x", 30, 40]


def test_root_only_and_print0(fresh_world, capsys):
    calls = []
    save = root_only(lambda path: calls.append(path) or "saved")
    assert save("a.npz") == "saved" and calls == ["a.npz"]
    print0("hello")
    assert capsys.readouterr().out == "hello\n"
    set_world(FakeWorld(1, 2))
    assert save("b.npz") is None and calls == ["a.npz"]
    print0("hidden")
    get_world().print("hidden too")
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------- abort on error
def test_abort_if_failed(fresh_world):
    assert abort_if_failed(0) == 0 and abort_if_failed(None) == 0
    assert abort_if_failed(2) == 2  # one process: just the status
    w = FakeWorld(1, 2)
    set_world(w)
    assert abort_if_failed(0) == 0 and w.aborted is None
    abort_if_failed(3)
    assert w.aborted == 3


def test_excepthook_prints_rank_and_aborts(monkeypatch, capsys):
    w = FakeWorld(1, 2)
    monkeypatch.setattr(world_mod, "_HOOK_INSTALLED", False)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    world_mod.install_excepthook(w)
    try:
        raise ValueError("boom")
    except ValueError as e:
        sys.excepthook(type(e), e, e.__traceback__)
    err = capsys.readouterr().err
    assert "[rank 1/2] unhandled exception, aborting all ranks" in err and "ValueError: boom" in err
    assert w.aborted == 1


# ---------------------------------------------------------------- SyncBatchNorm (one process)
def test_sync_batchnorm_equals_batchnorm_on_one_process(fresh_world, rng):
    x = rng.standard_normal((4, 3, 5, 5))
    ref, syn = nn.BatchNorm2D(momentum=None), SyncBatchNorm2D(momentum=None)
    for layer in (ref, syn):
        layer(x)  # float64 throughout (in float32 BatchNorm2D takes the C kernels: another rounding than SyncBN's)
        layer.astype(np.float64)
        layer.weight.data[...] = [0.5, 1.5, -1.0]
        layer.bias.data[...] = [0.1, 0.0, 0.2]
    for _ in range(2):
        y0, y1 = ref(x), syn(x)
        np.testing.assert_allclose(y1, y0, rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(x.shape)
    np.testing.assert_allclose(syn.backward(dy), ref.backward(dy), rtol=1e-10, atol=1e-12)
    for k, v in ref.state_dict().items():
        np.testing.assert_allclose(syn.state_dict()[k], v, rtol=1e-12, err_msg=k)
    np.testing.assert_allclose(syn.weight.grad, ref.weight.grad, rtol=1e-10)
    syn.eval(), ref.eval()
    np.testing.assert_allclose(syn(x), ref(x), rtol=1e-12)
    np.testing.assert_allclose(syn.backward(dy), ref.backward(dy), rtol=1e-12)  # eval backward path


@pytest.mark.parametrize("cls,shape", [(SyncBatchNorm2D, (4, 3, 5, 6)), (SyncBatchNorm1D, (6, 3))])
def test_sync_batchnorm_gradients(fresh_world, cls, shape, rng):
    layer = cls()
    x = rng.standard_normal(shape)
    layer(x.astype(np.float32))
    layer.astype(np.float64)
    layer.weight.data[...] = rng.standard_normal(layer.weight.shape)
    errors = check_module_gradients(layer, x, seed=3, tol=1e-5)
    assert set(errors) == {"input", "weight", "bias"}


def test_convert_sync_batchnorm_keeps_state(fresh_world, rng):
    model = nn.Sequential([nn.Conv2D(2, 3), nn.BatchNorm2D(), nn.Flatten(), nn.Dense(3), nn.BatchNorm1D()])
    x = rng.standard_normal((4, 1, 5, 5)).astype(np.float32)
    model(x)
    keys, before = list(model.state_dict()), model(x)
    assert convert_sync_batchnorm(model) is model
    assert type(model[1]) is SyncBatchNorm2D and type(model[4]) is SyncBatchNorm1D
    assert list(model.state_dict()) == keys
    model.eval()
    assert model(x).shape == before.shape
    assert "SyncBatchNorm2D" in repr(model)


def test_sync_batchnorm_errors(fresh_world):
    layer = SyncBatchNorm2D()
    with pytest.raises(ValueError, match=r"SyncBatchNorm2D: expected more than 1 value per channel over all ranks"):
        layer(np.ones((1, 2, 1, 1), np.float32))
    with pytest.raises(ValueError, match=r"SyncBatchNorm2D: expected 2 input channels, got 3"):
        layer(np.ones((2, 3, 2, 2), np.float32))
    with pytest.raises(ValueError, match=r"SyncBatchNorm2D: expected a 4-D input"):
        layer(np.ones((2, 2), np.float32))


# ---------------------------------------------------------------- under mpiexec -n 2
def _mpiexec():
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install convnp[dist])")
    exe = shutil.which("mpiexec") or shutil.which("mpiexec", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("mpiexec is not on PATH (pip install mpich, or a system MPI)")
    return exe


def run_mpiexec(args, timeout, what):
    """Run ``mpiexec args`` (launcher variables of an outer MPI run removed, convnp on PYTHONPATH); returns
    (returncode, output). The whole process group is killed after ``timeout`` seconds, so a hang fails (naming
    ``what``) instead of blocking CI."""
    env = {k: v for k, v in os.environ.items()
           if k not in LAUNCH_VARS and not k.startswith(("PMI_", "OMPI_", "MPI_LOCALNRANKS"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([_mpiexec(), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=str(ROOT), start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{what} did not finish in {timeout} s (hang?):\n{out[-3000:]}")
    return proc.returncode, out


def run_mpi(script, *args, n=2, timeout=180):
    """Run ``python tests/mpi/<script> args`` on ``n`` ranks (:func:`run_mpiexec`); returns (returncode, output)."""
    return run_mpiexec(["-n", str(n), sys.executable, str(MPI_DIR / script), *args], timeout,
                       f"{script} {' '.join(args)}")


def test_mpi_collectives_sampler_syncbn_and_data_parallel_equivalence():
    """Mean gradient (size-1)/2, broadcast, reductions, sampler shards, sharded_map order, and k SGD steps
    on 2 ranks x B == 1 rank x 2B in float64 (with and without SyncBatchNorm): see tests/mpi/check_collectives.py."""
    code, out = run_mpi("check_collectives.py")
    assert code == 0, out[-4000:]
    assert "OK 0" in out and "OK 1" in out, out[-4000:]


@pytest.mark.parametrize("mode", ["raise", "exit"])
def test_mpi_failure_on_one_rank_aborts_the_job(mode):
    code, out = run_mpi("check_abort.py", mode, timeout=90)
    assert code != 0, out
    assert "aborting all ranks" in out, out
    assert "did not abort" not in out, out


def test_cli_error_on_one_rank_aborts_the_others(fresh_world, monkeypatch, capsys):
    """The CLI prints one line and returns 1 on an error; under MPI that status must abort every rank."""
    import argparse

    import convnp.cli as cli

    def failing(args):
        raise RuntimeError("disk full")

    parser = argparse.ArgumentParser()
    parser.add_argument("--debug", action="store_true")
    parser.set_defaults(func=failing)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    assert cli.main([]) == 1  # one process: just the status
    w = FakeWorld(1, 2)
    set_world(w)
    assert cli.main([]) == 1 and w.aborted == 1
    assert "convnp: error: disk full" in capsys.readouterr().err
    parser.set_defaults(func=lambda args: 0)
    w.aborted = None
    assert cli.main([]) == 0 and w.aborted is None


def test_launch_builds_the_mpiexec_line(monkeypatch, capsys):
    from convnp.distributed import launch

    assert launch.mpiexec_command(2, ["train", "--epochs", "1"], mpiexec="mpiexec", python="py") == \
        ["mpiexec", "-n", "2", "py", "-m", "mpi4py", "-m", "convnp", "train", "--epochs", "1"]
    with pytest.raises(ValueError, match=r"number of ranks must be a positive integer, got 0"):
        launch.mpiexec_command(0, [], mpiexec="mpiexec")
    monkeypatch.setattr(launch.shutil, "which", lambda *a, **k: None)
    with pytest.raises(RuntimeError, match=r"no mpiexec found on PATH.*convnp\[dist\]"):
        launch.find_mpiexec()
    assert launch.main(["-n", "2", "train"]) == 1
    assert "no mpiexec found" in capsys.readouterr().err
    ran = []
    monkeypatch.setattr(launch.subprocess, "call", lambda cmd: ran.append(cmd) or 0)
    assert launch.main(["-n", "3", "--mpiexec", "/x/mpiexec", "demo"]) == 0
    assert ran[0][:3] == ["/x/mpiexec", "-n", "3"] and ran[0][-3:] == ["-m", "convnp", "demo"]


def _result(out):
    import json
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, out[-4000:]  # printed by rank 0 only
    return json.loads(lines[0][len("RESULT "):])


def test_mpi_mnist_fit_two_ranks_matches_one_rank():
    """Trainer.fit data parallel: float64 weights equal a one-process Trainer's (checked inside the script),
    and a 2-rank float32 run on 2000 MNIST digits reaches the 1-process test accuracy within noise."""
    code, out = run_mpi("check_fit_mnist.py", "2000", timeout=300)
    assert code == 0, out[-4000:]
    two = _result(out)
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    single = subprocess.run([sys.executable, str(MPI_DIR / "check_fit_mnist.py"), "2000"], capture_output=True,
                            text=True, timeout=300, cwd=str(ROOT), env=env)
    assert single.returncode == 0, single.stderr[-4000:]
    one = _result(single.stdout)
    assert (one["size"], two["size"]) == (1, 2)
    assert one["test_accuracy"] > 0.75 and two["test_accuracy"] > 0.75, (one, two)
    assert abs(one["test_accuracy"] - two["test_accuracy"]) <= 0.03, (one, two)


def test_sharded_map_batched():
    calls = []
    w = SingleProcessComm()
    out = sharded_map(lambda share: calls.append(list(share)) or np.asarray(share) * 2, [1, 2, 3], world=w,
                      batched=True)
    assert calls == [[1, 2, 3]] and [int(v) for v in out] == [2, 4, 6]  # one call with the whole share
    assert sharded_map(lambda share: share, [], world=w, batched=True) == []
    with pytest.raises(ValueError, match=r"fn must return one result per item; got 1 results for 3 items on rank 0"):
        sharded_map(lambda share: [0], [1, 2, 3], world=w, batched=True)
