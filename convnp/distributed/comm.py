"""Communicators: MPI (mpi4py) when launched under ``mpiexec`` with more than one rank, a
single-process stand-in with the same methods otherwise.

Both classes implement the interface the training loop uses:

* ``rank``, ``size``, ``is_root``;
* ``broadcast_parameters(model, root=0)``: every rank starts from rank ``root``'s weights and buffers;
* ``allreduce_gradients(params)``: averages ``p.grad`` in place across ranks, through a few flat
  buffers (one per dtype, split into buckets of at most ``bucket_mb`` megabytes);
* ``allreduce_sum(x)`` / ``allreduce_mean(x)`` for a Python number or an array (metrics);
* ``shard(indices)``: this rank's equal, contiguous slice of a global index array;
* ``barrier()``, ``bcast(obj)``, ``gather(obj)``, ``allgather(obj)`` for small Python objects.

Data parallelism in one picture (2 ranks, global batch 2B)::

    rank 0: batch[0:B]  -> forward/backward -> grad0 \\
                                                      allreduce (sum) / 2 -> same mean grad on both
    rank 1: batch[B:2B] -> forward/backward -> grad1 /                       -> same SGD step on both

Because the loss is a mean over the batch, the mean of the two half-batch gradients equals the
gradient of the full batch, so 2 ranks x B take exactly the steps 1 rank x 2B would.

GPUs: gradients that are CuPy arrays are packed into a CuPy buffer; with a CUDA-aware MPI
(``CONVNP_CUDA_AWARE_MPI=1``) mpi4py passes the device pointer to MPI directly, otherwise the
buffer is staged through host memory (one device->host and one host->device copy per bucket).
"""
from __future__ import annotations

import os
import sys

import numpy as np

from ..backend import get_array_module, is_cupy_array

#: environment variables that launchers set to the world size (MPICH/Hydra, Open MPI, MVAPICH)
SIZE_ENV_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE")

DEFAULT_BUCKET_MB = 16.0


def _as_param_list(params):
    """Accept a Module (uses ``.parameters()``) or an iterable of Parameters; keep trainable ones."""
    if hasattr(params, "parameters") and callable(params.parameters):
        params = params.parameters()
    return [p for p in params if getattr(p, "requires_grad", True)]


def _shard_slice(n: int, rank: int, size: int) -> slice:
    if n % size != 0:
        raise ValueError(f"shard: the global index array has {n} entries, which is not divisible by the "
                         f"world size {size}; pad or drop indices first (DistributedSampler does this)")
    per = n // size
    return slice(rank * per, (rank + 1) * per)


class _CommBase:
    """Methods shared by both communicators (everything that is pure bookkeeping)."""

    rank: int = 0
    size: int = 1

    @property
    def is_root(self) -> bool:
        """True on rank 0 (the rank that writes checkpoints, logs and plots)."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.size > 1

    def shard(self, indices):
        """This rank's contiguous slice of ``indices`` (length must be divisible by ``size``).

        Example: ``shard(np.arange(8))`` on rank 1 of 2 -> ``array([4, 5, 6, 7])``.
        """
        return indices[_shard_slice(len(indices), self.rank, self.size)]

    def allreduce_mean(self, x):
        """Mean of ``x`` (a number or an array) over ranks; a float for numbers."""
        s = self.allreduce_sum(x)
        if isinstance(s, (int, float, np.integer, np.floating)):
            return float(s) / self.size
        return s / self.size

    def print(self, *args, **kwargs):
        """``print`` on rank 0 only."""
        if self.is_root:
            print(*args, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"


class SingleProcessComm(_CommBase):
    """The stand-in used without MPI: one rank, every collective is the identity.

    Example::

        world = SingleProcessComm()
        world.allreduce_mean(3.0)       # 3.0
        world.shard(np.arange(4))       # array([0, 1, 2, 3])
    """

    rank = 0
    size = 1

    def broadcast_parameters(self, model, root: int = 0) -> None:
        _check_root(root, 1)

    def allreduce_gradients(self, params) -> None:
        _as_param_list(params)  # same argument checking as the MPI version; nothing to average

    def allreduce_sum(self, x):
        if isinstance(x, (int, float, np.integer, np.floating)):
            return x
        return x.copy()

    def barrier(self) -> None:
        pass

    def bcast(self, obj, root: int = 0):
        _check_root(root, 1)
        return obj

    def gather(self, obj, root: int = 0):
        _check_root(root, 1)
        return [obj]

    def allgather(self, obj):
        return [obj]

    def abort(self, code: int = 1):
        sys.exit(code)


def _check_root(root: int, size: int) -> None:
    if not 0 <= int(root) < size:
        raise ValueError(f"root must be a rank in [0, {size}), got {root}")


class MPIComm(_CommBase):
    """Data-parallel collectives over an ``mpi4py`` communicator (``MPI.COMM_WORLD`` by default).

    Args:
        comm: an mpi4py ``Comm``; default ``MPI.COMM_WORLD``.
        bucket_mb: the largest flat gradient buffer sent in one ``Allreduce``, in megabytes.
        cuda_aware: pass CuPy buffers to MPI directly (needs a CUDA-aware MPI build); default from
            the ``CONVNP_CUDA_AWARE_MPI`` environment variable, else stage through host memory.
    """

    def __init__(self, comm=None, bucket_mb: float = DEFAULT_BUCKET_MB, cuda_aware: bool | None = None):
        from mpi4py import MPI
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        if bucket_mb <= 0:
            raise ValueError(f"MPIComm: bucket_mb must be > 0, got {bucket_mb}")
        self.bucket_bytes = int(bucket_mb * 2 ** 20)
        if cuda_aware is None:
            cuda_aware = os.environ.get("CONVNP_CUDA_AWARE_MPI", "0").lower() in ("1", "true", "yes")
        self.cuda_aware = bool(cuda_aware)

    # ---------------------------------------------------------------- array collectives
    def _allreduce_inplace(self, buf):
        """Sum a contiguous NumPy/CuPy buffer over ranks, in place; returns it."""
        MPI = self.MPI
        if is_cupy_array(buf):
            import cupy  # only reached with CuPy arrays, so CuPy is installed
            cupy.cuda.get_current_stream().synchronize()  # MPI must see finished kernels
            if self.cuda_aware:
                self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
                return buf
            host = cupy.asnumpy(buf)  # staging through host memory
            self.comm.Allreduce(MPI.IN_PLACE, host, op=MPI.SUM)
            buf.set(host)
            return buf
        self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        return buf

    def _bcast_inplace(self, buf, root):
        if is_cupy_array(buf):
            import cupy
            cupy.cuda.get_current_stream().synchronize()
            if self.cuda_aware:
                self.comm.Bcast(buf, root=root)
                return
            host = cupy.asnumpy(buf)
            self.comm.Bcast(host, root=root)
            buf.set(host)
            return
        self.comm.Bcast(buf, root=root)

    def allreduce_sum(self, x):
        """Sum over ranks of a number (returns a Python number) or an array (returns a new array)."""
        if isinstance(x, (bool, np.bool_)):
            raise TypeError("allreduce_sum: got a bool; convert it to int or float first")
        if isinstance(x, (int, float, np.integer, np.floating)):
            return self.comm.allreduce(x.item() if hasattr(x, "item") else x, op=self.MPI.SUM)
        xp = get_array_module(x)
        buf = xp.ascontiguousarray(x).copy()
        return self._allreduce_inplace(buf)

    def allreduce_gradients(self, params) -> None:
        """Average every trainable parameter's ``grad`` over ranks, in place.

        Gradients are packed into flat buffers (one per dtype and device, split into buckets of at
        most ``bucket_mb``), each summed with one ``Allreduce`` and divided by ``size``. A ``None``
        grad counts as zeros; a parameter whose grad is ``None`` on *every* rank stays ``None``
        (one presence flag per parameter travels in the same buffer).
        """
        params = _as_param_list(params)
        groups: dict = {}
        for p in params:
            xp = get_array_module(p.data)
            groups.setdefault((xp.__name__, np.dtype(p.data.dtype).str), []).append(p)
        for (_, _), group in groups.items():
            itemsize = np.dtype(group[0].data.dtype).itemsize
            bucket, nbytes = [], 0
            for p in group:
                if bucket and nbytes + p.size * itemsize > self.bucket_bytes:
                    self._reduce_bucket(bucket)
                    bucket, nbytes = [], 0
                bucket.append(p)
                nbytes += p.size * itemsize
            if bucket:
                self._reduce_bucket(bucket)

    def _reduce_bucket(self, bucket) -> None:
        xp = get_array_module(bucket[0].data)
        total = sum(p.size for p in bucket)
        flat = xp.zeros(total + len(bucket), dtype=bucket[0].data.dtype)  # grads, then presence flags
        offset = 0
        for i, p in enumerate(bucket):
            if p.grad is not None:
                flat[offset:offset + p.size] = p.grad.reshape(-1)
                flat[total + i] = 1
            offset += p.size
        self._allreduce_inplace(flat)
        flat[:total] /= self.size
        present = get_array_module(flat).asnumpy(flat[total:]) if is_cupy_array(flat) else flat[total:]
        offset = 0
        for i, p in enumerate(bucket):
            if present[i] > 0:
                g = flat[offset:offset + p.size].reshape(p.shape)
                if p.grad is not None and p.grad.flags.c_contiguous:
                    p.grad[...] = g  # keep the caller's array object
                else:
                    p.grad = g.copy()
            offset += p.size

    def broadcast_parameters(self, model, root: int = 0) -> None:
        """Copy rank ``root``'s parameters and buffers (e.g. BatchNorm running stats) to every rank.

        The model must be built (call it once on a batch) so every rank has the same arrays; the
        names, shapes and dtypes are checked against rank ``root``'s first.
        """
        _check_root(root, self.size)
        arrays = [(n, p.data, p) for n, p in model.named_parameters()]
        arrays += [(n, b, None) for n, b in model.named_buffers()]
        signature = [(n, tuple(a.shape), str(a.dtype)) for n, a, _ in arrays]
        theirs = self.comm.bcast(signature, root=root)
        if theirs != signature:
            mine, other = set(signature), set(theirs)
            diff = sorted(mine ^ other)[:3]
            raise ValueError(f"broadcast_parameters: rank {self.rank}'s model differs from rank {root}'s "
                             f"({len(signature)} vs {len(theirs)} arrays; first differences {diff}); build "
                             f"the model (call it on a batch) on every rank before broadcasting")
        for name, a, param in arrays:
            xp = get_array_module(a)
            if getattr(a, "ndim", 1) == 0 or not a.flags.c_contiguous:
                buf = xp.ascontiguousarray(a).copy()
                self._bcast_inplace(buf, root)
                a[...] = buf
            else:
                self._bcast_inplace(a, root)

    # ---------------------------------------------------------------- object collectives
    def barrier(self) -> None:
        self.comm.Barrier()

    def bcast(self, obj, root: int = 0):
        _check_root(root, self.size)
        return self.comm.bcast(obj, root=root)

    def gather(self, obj, root: int = 0):
        """A list of every rank's ``obj`` on ``root`` (in rank order), ``None`` elsewhere."""
        _check_root(root, self.size)
        return self.comm.gather(obj, root=root)

    def allgather(self, obj):
        return self.comm.allgather(obj)

    def abort(self, code: int = 1):
        """Kill every rank of the job (use when one rank cannot go on)."""
        self.comm.Abort(code)
