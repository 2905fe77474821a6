"""Synchronized batch normalization: batch statistics over the *global* batch of all ranks.

With plain BatchNorm each rank normalizes with the mean and variance of its own B samples; with
SyncBatchNorm every rank uses the statistics of all size x B samples, exactly as one process with
the whole global batch would. Per training step this costs three small all-reduces per layer (the
channel sums of x, of (x - mean)^2 in forward, and of dy, dy * x_hat in backward).

Gradients: every rank computes, for its own rows,
    dx = gamma * inv_std * (dy - mean_all(dy) - x_hat * mean_all(dy * x_hat))
with the means over the global batch, and the local dweight = sum(dy * x_hat), dbias = sum(dy).
After ``allreduce_gradients`` (which averages over ranks) this is exactly the gradient of the mean
of the ranks' losses, i.e. of the single-process loss over the global batch.
"""
from __future__ import annotations

from ..backend import get_array_module
from ..functional import normalization as N
from ..nn.layers.normalization import BatchNorm1D, BatchNorm2D
from ..nn.module import Module
from .world import get_world


class _SyncMixin:
    """Forward/backward of batch norm with statistics all-reduced over ``self.world`` (get_world())."""

    @property
    def world(self):
        return self.__dict__.get("_world") or get_world()

    def set_world(self, world) -> None:
        """Use ``world`` instead of ``get_world()`` (e.g. a sub-communicator)."""
        self._world = world

    def forward(self, x):
        if not self.training:
            return super().forward(x)  # eval: running statistics, nothing to synchronize
        self._check(x.shape)
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: expected {self.num_features} input channels, got "
                             f"{x.shape[1]} (input shape {tuple(x.shape)})")
        world = self.world
        _, shape = N._axes_and_shape(x)
        m = world.allreduce_sum(x.size // x.shape[1])  # values per channel over all ranks
        if m < 2:
            raise ValueError(f"{type(self).__name__}: expected more than 1 value per channel over all ranks "
                             f"when training, got input shape {tuple(x.shape)} on {world.size} rank(s)")
        mean = world.allreduce_sum(N._channel_sum(x)) / x.dtype.type(m)  # (C,)
        xc = x - mean.reshape(shape)
        var = world.allreduce_sum(N._channel_dot(xc, xc)) / x.dtype.type(m)  # biased (C,)
        w = self.weight.data if self.weight is not None else None
        b = self.bias.data if self.bias is not None else None
        # the eval-mode map normalizes with the statistics it is given: here the global batch ones
        y, (xc, inv_std, _, _), _ = N.batch_norm_forward(x, w, b, mean, var, training=False, eps=self.eps)
        xp = get_array_module(self.running_mean)
        tracked = self.num_batches_tracked + 1
        self.num_batches_tracked = xp.asarray(tracked, dtype=xp.int64)
        momentum = self.momentum if self.momentum is not None else 1.0 / int(tracked)
        rm, rv = N.update_running_stats(self.running_mean, self.running_var, mean, var * (m / (m - 1)), momentum)
        self.running_mean = rm
        self.running_var = rv
        self._save_cache(("sync", xc, inv_std, w, m))
        return y

    def backward(self, dy):
        cache = self._get_cache()
        if not (isinstance(cache, tuple) and cache and isinstance(cache[0], str) and cache[0] == "sync"):
            return super().backward(dy)  # the forward ran in eval mode
        _, xc, inv_std, w, m = cache
        _, shape = N._axes_and_shape(dy)
        xp = get_array_module(dy)
        c = dy.shape[1]
        local = xp.concatenate([N._channel_sum(dy), N._channel_dot(dy, xc) * inv_std])  # (2C,) one all-reduce
        total = self.world.allreduce_sum(local)
        g_scale = inv_std if w is None else inv_std * w  # (C,)
        dx = dy - (total[:c] / m).reshape(shape)
        dx -= xc * (inv_std * total[c:] / m).reshape(shape)  # x_hat = xc * inv_std
        dx *= g_scale.reshape(shape)
        if self.weight is not None:
            self.weight.accumulate_grad(local[c:].copy())  # local sums: allreduce_gradients averages them
            self.bias.accumulate_grad(local[:c].copy())
        return dx


class SyncBatchNorm2D(_SyncMixin, BatchNorm2D):
    """BatchNorm2D whose training statistics cover the global batch of every rank (get_world()).

    Args, state and shape as :class:`convnp.nn.BatchNorm2D` (same state_dict keys); eval mode is
    unchanged. With one process it computes exactly what BatchNorm2D computes.
    Example: ``convert_sync_batchnorm(model)`` or ``SyncBatchNorm2D()`` in place of ``BatchNorm2D()``.
    """


class SyncBatchNorm1D(_SyncMixin, BatchNorm1D):
    """BatchNorm1D with statistics over the global batch of every rank; see :class:`SyncBatchNorm2D`."""


def convert_sync_batchnorm(model: Module) -> Module:
    """Turn every BatchNorm2D/BatchNorm1D in ``model`` into its Sync version, in place; returns ``model``.

    Parameters, buffers and state_dict keys stay as they are (only the class changes), so it can be
    applied before or after loading weights.
    """
    for module in model.modules():
        if type(module) is BatchNorm2D:
            module.__class__ = SyncBatchNorm2D
        elif type(module) is BatchNorm1D:
            module.__class__ = SyncBatchNorm1D
    return model
