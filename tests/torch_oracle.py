"""``assert_matches_torch``: one forward + backward of a convnp layer against torch, every gradient compared.

torch is the oracle of the tests only (callers ``pytest.importorskip("torch")`` first).
"""
from __future__ import annotations

import numpy as np


def assert_matches_torch(ours, theirs, x, dy=None, rtol=1e-5, atol=1e-5, param_rtol=None, param_atol=None,
                         seed=0):
    """Run ``ours(x)`` and ``theirs(torch.tensor(x))``, then both backwards with the same upstream gradient,
    and assert that the outputs, the input gradients and every parameter gradient agree.

    Args:
        ours: a convnp layer (its weights already equal to torch's, e.g. copied through state dicts).
        theirs: a ``torch.nn.Module`` (parameter gradients compared by name: convnp's keys are torch's),
            or any callable ``tensor -> tensor`` such as ``lambda t: F.max_pool2d(t, 2)``.
        x: the input, a NumPy array (float32 or float64; torch gets the same dtype).
        dy: the upstream gradient (default: standard normal from ``seed``, of the output's shape and dtype).
        rtol, atol: tolerances of outputs and input gradients.
        param_rtol, param_atol: tolerances of parameter gradients (default: rtol, atol); weight gradients
            sum over the batch and the image, so float32 ones may need a larger atol.

    Returns ``(y, dx)``: our output and input gradient, for further checks.
    """
    import torch
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    y = ours(x)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=rtol, atol=atol, err_msg="forward")
    if dy is None:
        dy = np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
    ty.backward(torch.tensor(dy))
    dx = ours.backward(dy)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=rtol, atol=atol, err_msg="input gradient")
    if isinstance(theirs, torch.nn.Module):
        mine = dict(ours.named_parameters())
        other = {k: p for k, p in theirs.named_parameters() if p.requires_grad}
        assert set(mine) == set(other), f"parameters differ: ours {sorted(mine)}, torch {sorted(other)}"
        for key, p in other.items():
            np.testing.assert_allclose(mine[key].grad, p.grad.numpy(),
                                       rtol=rtol if param_rtol is None else param_rtol,
                                       atol=atol if param_atol is None else param_atol, err_msg=f"{key} gradient")
    return y, dx
