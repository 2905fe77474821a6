"""convnp.distributed: data-parallel training and sharded inference on MPI (mpi4py).

``get_world()`` returns an MPI communicator when the program runs under ``mpiexec`` with more than
one rank, and a single-process stand-in with the same methods otherwise, so the same training code
runs on one process or on many::

    mpiexec -n 2 python -m mpi4py -m convnp train ...

See docs/distributed.md.
"""
from .comm import MPIComm, SingleProcessComm
from .world import abort_if_failed, get_world, install_excepthook, launched_world_size, set_world
from .sampler import DistributedSampler
from .sharded import is_root, print0, root_only, shard_bounds, sharded_map
from .syncbn import SyncBatchNorm1D, SyncBatchNorm2D, convert_sync_batchnorm

__all__ = ["get_world", "abort_if_failed", "set_world", "install_excepthook", "launched_world_size", "MPIComm", "SingleProcessComm",
           "DistributedSampler", "sharded_map", "shard_bounds", "is_root", "print0", "root_only",
           "SyncBatchNorm2D", "SyncBatchNorm1D", "convert_sync_batchnorm"]
