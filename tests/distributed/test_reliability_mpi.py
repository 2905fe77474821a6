"""MPI ranks that disagree on their setup stop with a message naming ranks and values (no hang).

``mpiexec -n 1 A --subset 200 : -n 1 A --subset 100`` used to busy-spin until killed: the ranks had different
numbers of steps, so one waited for an all-reduce the other never entered."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from convnp.distributed.agree import check_agreement, describe_disagreement

ROOT = Path(__file__).resolve().parents[2]
CLI = str(ROOT / "tests" / "mpi" / "cli_main.py")


class FakeWorld:
    """Two ranks' all-gather, seen from rank 0: the other rank's fields are given."""

    def __init__(self, other_fields):
        self.rank, self.size, self.other = 0, 2, other_fields
        self.calls = 0

    def allgather(self, obj):
        self.calls += 1
        if isinstance(obj, np.ndarray):  # the digest round
            from convnp.distributed.agree import _digest
            return [obj, _digest(self.other)]
        return [obj, self.other]


def test_agreeing_ranks_pass_with_one_collective():
    world = FakeWorld({"n_train": 200, "steps": 2})
    check_agreement(world, {"steps": 2, "n_train": 200})
    assert world.calls == 1


def test_disagreement_names_fields_ranks_and_values():
    world = FakeWorld({"n_train": 100, "steps": 1, "batch_size": 100})
    with pytest.raises(RuntimeError, match=r"MPI ranks disagree on the training setup: n_train: rank 0 = 200, "
                                           r"rank 1 = 100; steps: rank 0 = 2, rank 1 = 1"):
        check_agreement(world, {"n_train": 200, "steps": 2, "batch_size": 100})
    assert describe_disagreement([{"a": 1}, {}]) == "a: rank 0 = 1, rank 1 = <missing>"


def _mpiexec():
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install convnp[dist])")
    exe = shutil.which("mpiexec") or shutil.which("mpiexec", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("mpiexec is not on PATH (pip install mpich, or a system MPI)")
    return exe


def test_mismatched_ranks_exit_non_zero_within_60_s(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "MPI_LOCALNRANKS"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    common = ["train", "--epochs", "1", "--batch-size", "50", "--test-subset", "50", "--progress", "plain",
              "--out", str(tmp_path / "run")]
    cmd = [_mpiexec(), "-n", "1", sys.executable, CLI, *common, "--subset", "200", ":",
           "-n", "1", sys.executable, CLI, *common, "--subset", "100"]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=str(ROOT), start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"mismatched ranks still running after 90 s:\n{out[-3000:]}")
    elapsed = time.monotonic() - start
    print(f"mismatched ranks: exit {proc.returncode} after {elapsed:.1f} s")
    assert proc.returncode != 0, out[-3000:]
    assert elapsed < 60, out[-3000:]
    assert "MPI ranks disagree on the training setup" in out and "n_train: rank 0 = 200, rank 1 = 100" in out, \
        out[-3000:]
