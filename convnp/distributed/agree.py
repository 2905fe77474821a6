"""Ranks agree on their setup before they train: one small collective over a fingerprint.

Ranks that disagree on the data length, steps per epoch or configuration would otherwise enter different
numbers of all-reduces and wait for each other forever (MPI implementations busy-spin while waiting).
:func:`check_agreement` gathers a 16-byte digest of each rank's ``fields`` with a non-blocking all-gather,
polled until ``timeout`` seconds; when the digests differ it gathers the fields themselves (all ranks are at
the same point then) and raises, on every rank, an error naming each field that differs with its value on
each rank. The convnp CLI turns that error into exit status 1 and aborts the job (``abort_if_failed``).

Example: ``check_agreement(world, {"n_train": 2000, "steps_per_epoch": 20, "batch_size": 100})``.
"""
from __future__ import annotations

import hashlib
import json
import time

import numpy as np

#: seconds to wait for every rank to reach a check before giving up (the job is then aborted)
DEFAULT_TIMEOUT = 60.0


def _digest(fields: dict) -> np.ndarray:
    text = json.dumps(fields, sort_keys=True, default=str).encode()
    return np.frombuffer(hashlib.sha256(text).digest()[:16], np.uint8).copy()


def _gather_digests(world, mine: np.ndarray, timeout: float, what: str) -> np.ndarray:
    """(size, 16) digests of every rank; MPI: a non-blocking Iallgather polled until ``timeout``."""
    comm = getattr(world, "comm", None)
    if comm is None or not hasattr(comm, "Iallgather"):  # a stand-in communicator: plain allgather
        return np.stack([np.asarray(d, np.uint8) for d in world.allgather(mine)])
    out = np.zeros((world.size, mine.size), np.uint8)
    request = comm.Iallgather(mine, out)
    deadline = time.monotonic() + timeout
    while not request.Test():
        if time.monotonic() > deadline:
            raise RuntimeError(f"rank {world.rank}: not every rank reached the {what} check within {timeout:.0f} s "
                               "(a rank is stuck or has a different number of steps); aborting the job")
        time.sleep(0.002)
    return out


def describe_disagreement(all_fields) -> str:
    """``"n_train: rank 0 = 2000, rank 1 = 1000; steps_per_epoch: ..."`` for the fields that differ."""
    keys = sorted(set().union(*[f.keys() for f in all_fields]))
    parts = []
    for key in keys:
        values = [f.get(key, "<missing>") for f in all_fields]
        if any(v != values[0] for v in values[1:]):
            parts.append(f"{key}: " + ", ".join(f"rank {r} = {v}" for r, v in enumerate(values)))
    return "; ".join(parts)


def check_agreement(world, fields: dict, what: str = "training setup", timeout: float = DEFAULT_TIMEOUT) -> None:
    """Raise RuntimeError on every rank unless all ranks pass equal ``fields`` (JSON-able values).

    One 16-byte all-gather when they agree; a second, small one (the fields) when they do not, so the
    message can name each differing field and its value on every rank. A no-op with one rank.
    """
    if world.size <= 1:
        return
    digests = _gather_digests(world, _digest(fields), timeout, what)
    if all((d == digests[0]).all() for d in digests[1:]):
        return
    everyone = world.allgather(json.loads(json.dumps(fields, sort_keys=True, default=str)))
    raise RuntimeError(f"MPI ranks disagree on the {what}: {describe_disagreement(everyone)}; every rank must "
                       "run the same command on the same data")
