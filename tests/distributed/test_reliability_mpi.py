"""MPI ranks that disagree on their setup stop with a message naming ranks and values (no hang).

``mpiexec -n 1 A --subset 200 : -n 1 A --subset 100`` used to busy-spin until killed: the ranks had different
numbers of steps, so one waited for an all-reduce the other never entered."""
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from convnp.distributed.agree import check_agreement, describe_disagreement
from test_distributed import run_mpiexec

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


def test_mismatched_ranks_exit_non_zero_within_60_s(tmp_path):
    common = ["train", "--epochs", "1", "--batch-size", "50", "--test-subset", "50", "--progress", "plain",
              "--out", str(tmp_path / "run")]
    start = time.monotonic()
    code, out = run_mpiexec(["-n", "1", sys.executable, CLI, *common, "--subset", "200", ":",
                             "-n", "1", sys.executable, CLI, *common, "--subset", "100"], 90, "mismatched ranks")
    elapsed = time.monotonic() - start
    print(f"mismatched ranks: exit {code} after {elapsed:.1f} s")
    assert code != 0, out[-3000:]
    assert elapsed < 60, out[-3000:]
    assert "MPI ranks disagree on the training setup" in out and "n_train: rank 0 = 200, rank 1 = 100" in out, \
        out[-3000:]
