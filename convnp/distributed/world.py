"""``get_world()``: the process-wide communicator, chosen once from how the program was launched.

Under ``mpiexec -n 4 python -m convnp train ...`` (or ``python -m mpi4py -m convnp ...``, or Slurm
``srun`` with an MPI plugin) the launcher sets an environment variable with the world size
(``PMI_SIZE``, ``OMPI_COMM_WORLD_SIZE``, ...). When it says more than one rank, convnp imports mpi4py
and returns an :class:`~convnp.distributed.comm.MPIComm`; otherwise it returns the single-process
stand-in without importing mpi4py at all. ``CONVNP_DISTRIBUTED=0`` forces the stand-in,
``CONVNP_DISTRIBUTED=1`` forces MPI (e.g. a launcher that sets none of the variables).
"""
from __future__ import annotations

import os
import sys
import traceback

from .comm import SIZE_ENV_VARS, MPIComm, SingleProcessComm

_WORLD = None
_HOOK_INSTALLED = False


def launched_world_size(environ=None) -> int:
    """The world size the launcher announced in the environment (1 when there is none)."""
    env = os.environ if environ is None else environ
    for name in SIZE_ENV_VARS:
        value = env.get(name)
        if value:
            try:
                return int(value)
            except ValueError:
                raise RuntimeError(f"convnp.distributed: environment variable {name}={value!r} is not an "
                                   f"integer world size") from None
    return 1


def _wants_mpi() -> bool:
    forced = os.environ.get("CONVNP_DISTRIBUTED", "").strip().lower()
    if forced in ("0", "false", "no", "off"):
        return False
    if forced in ("1", "true", "yes", "on"):
        return True
    if forced:
        raise RuntimeError(f"convnp.distributed: CONVNP_DISTRIBUTED={forced!r}; use 0 or 1")
    if launched_world_size() > 1:
        return True
    mpi = sys.modules.get("mpi4py.MPI")  # `python -m mpi4py` has already initialized MPI
    return mpi is not None and mpi.Is_initialized() and mpi.COMM_WORLD.Get_size() > 1


def get_world():
    """The communicator of this process: MPI with more than one rank, else a single-process stand-in.

    Both have ``rank``, ``size``, ``is_root``, ``broadcast_parameters(model)``,
    ``allreduce_gradients(params)``, ``allreduce_sum/mean(x)``, ``shard(indices)``, ``barrier()``,
    ``bcast(obj)``, ``gather(obj)``. Under MPI an excepthook is installed so that an unhandled
    exception on one rank aborts the whole job instead of leaving the others waiting forever.

    Example::

        world = get_world()
        world.broadcast_parameters(model)
        ...; model.backward(dloss); world.allreduce_gradients(model.parameters()); opt.step()
    """
    global _WORLD
    if _WORLD is None:
        if _wants_mpi():
            try:
                import mpi4py  # noqa: F401
            except ImportError:
                raise RuntimeError(
                    f"convnp.distributed: launched as one of {launched_world_size()} MPI ranks, but mpi4py is "
                    f"not installed; `pip install \"convnp[dist]\"` (mpi4py and the mpich wheel)") from None
            _WORLD = MPIComm()
            if _WORLD.size > 1:
                install_excepthook(_WORLD)
        else:
            _WORLD = SingleProcessComm()
    return _WORLD


def set_world(world):
    """Replace the process-wide communicator (tests, or a sub-communicator); returns the old one."""
    global _WORLD
    old, _WORLD = _WORLD, world
    return old


def abort_if_failed(code):
    """Return ``code``; but under MPI with more than one rank, a non-zero ``code`` aborts every rank.

    For programs that catch their own errors and exit with a status (the ``convnp`` CLI prints one
    line and returns 1): a plain ``sys.exit(1)`` on one rank leaves the others waiting forever in
    their next collective. Call it as ``sys.exit(abort_if_failed(main()))``. Does nothing (and
    creates no communicator) when ``get_world()`` was never called or the world has one rank.
    """
    code = 0 if code is None else code
    if code and _WORLD is not None and _WORLD.size > 1:
        sys.stderr.write(f"[rank {_WORLD.rank}/{_WORLD.size}] exiting with status {code}, aborting all ranks\n")
        sys.stderr.flush()
        _WORLD.abort(code if isinstance(code, int) else 1)
    return code


def install_excepthook(world=None) -> None:
    """On an unhandled exception: print the traceback tagged with the rank, then abort every rank.

    Without this, one rank dying while the others wait in an all-reduce hangs the job until the
    scheduler's time limit. ``python -m mpi4py`` does the same; this covers ``mpiexec python -m convnp``.
    """
    global _HOOK_INSTALLED
    if _HOOK_INSTALLED:
        return
    world = world if world is not None else get_world()
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, (KeyboardInterrupt, SystemExit)) and world.size == 1:
            return previous(exc_type, exc, tb)
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        sys.stderr.write(f"[rank {world.rank}/{world.size}] unhandled exception, aborting all ranks:\n{text}")
        sys.stderr.flush()
        world.abort(1)

    sys.excepthook = hook
    _HOOK_INSTALLED = True
