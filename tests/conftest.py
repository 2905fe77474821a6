"""Shared fixtures: ``xp`` runs a test on NumPy always and on CuPy when a GPU is present."""
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
