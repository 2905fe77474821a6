"""Shared fixtures: ``xp`` runs a test on NumPy always and on CuPy when a GPU is present."""
import os

import numpy as np
import pytest

from convnp.backend import cupy_available

_BACKENDS = ["numpy"] + (["cupy"] if cupy_available() else [])


@pytest.fixture(params=_BACKENDS)
def xp(request):
    if request.param == "cupy":
        import cupy
        return cupy
    return np


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# The planner's deterministic rules (CONVNP_PLAN=fixed) for the suite: which provider runs each convolution must
# not depend on timings taken on a busy test machine. tests/test_planner.py runs the measuring mode itself.
os.environ.setdefault("CONVNP_PLAN", "fixed")
