"""Sharded work and rank-0 output: ``sharded_map`` for inference over many files, and helpers so
that only rank 0 prints, writes checkpoints, logs and plots."""
from __future__ import annotations

import functools

from .world import get_world


def shard_bounds(n: int, rank: int, size: int) -> tuple[int, int]:
    """[start, stop) of rank ``rank``'s contiguous share of ``n`` items; shares differ by at most one.

    Example: n=5, size=2 -> rank 0: (0, 3), rank 1: (3, 5).
    """
    per, extra = divmod(int(n), int(size))
    start = rank * per + min(rank, extra)
    return start, start + per + (1 if rank < extra else 0)


def sharded_map(fn, items, world=None, root: int | None = None, batched: bool = False):
    """``[fn(item) for item in items]`` with the items split across ranks.

    Each rank calls ``fn`` on its contiguous share (ranks get ``len(items) // size`` or one more),
    then the results are gathered in the original order: on every rank (``root=None``, the
    default) or only on rank ``root`` (the others get ``None``). Results travel pickled, so keep
    them small (labels, scores, a NumPy array per item).

    Args:
        fn: a function of one item (e.g. a file path -> predicted class).
        items: a sequence of work items; must be the same on every rank (e.g. a sorted file list).
        world: the communicator; default ``get_world()``.
        root: the rank that receives the results, or None for all ranks.
        batched: call ``fn`` once with this rank's whole share (a list) instead of once per item; it
            must return one result per item, in order (batch inference: load the files, one forward).

    Example (``convnp predict DIR`` under ``mpiexec -n 4``)::

        files = sorted(glob.glob("images/*.png"))
        labels = sharded_map(lambda f: predict_file(model, f), files)
        probs = sharded_map(lambda fs: softmax(predict(model, np.stack([load(f) for f in fs]))), files,
                            batched=True, root=0)   # rank 0 prints, the others get None
    """
    world = world if world is not None else get_world()
    items = list(items)
    start, stop = shard_bounds(len(items), world.rank, world.size)
    share = items[start:stop]
    if batched:
        mine = list(fn(share)) if share else []
        if len(mine) != len(share):
            raise ValueError(f"sharded_map: with batched=True fn must return one result per item; got "
                             f"{len(mine)} results for {len(share)} items on rank {world.rank}")
    else:
        mine = [fn(item) for item in share]
    if world.size == 1:
        return mine if root in (None, 0) else None
    parts = world.allgather(mine) if root is None else world.gather(mine, root=root)
    if parts is None:
        return None
    return [result for part in parts for result in part]  # rank order = original order


def is_root(world=None) -> bool:
    """True on rank 0 of ``world`` (default ``get_world()``): the rank that writes files and logs."""
    return (world if world is not None else get_world()).rank == 0


def print0(*args, **kwargs) -> None:
    """``print`` on rank 0 only (other ranks stay silent)."""
    if is_root():
        print(*args, **kwargs)


def root_only(fn):
    """Decorator: run ``fn`` on rank 0 only; other ranks return None without calling it.

    Use it for checkpoints, logs and plots, e.g. ``@root_only def save(model, path): ...``.
    It does not synchronize: when other ranks must read what rank 0 wrote, call
    ``get_world().barrier()`` afterwards.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if is_root():
            return fn(*args, **kwargs)
        return None
    return wrapper
