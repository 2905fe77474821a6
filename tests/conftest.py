"""Shared fixtures: ``xp`` runs a test on NumPy always and on CuPy when a GPU is present.

tests/ mirrors the package (tests/accel, tests/nn, ...); the shared helpers (float_sums, torch_oracle,
serve_helpers, zoo_torch_refs, digit_pages) sit here, in tests/, which is put on sys.path for every test.
"""
import os
import sys

import numpy as np
import pytest

from convnp.backend import cupy_available

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

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
# not depend on timings taken on a busy test machine. tests/accel/test_planner.py runs the measuring mode itself.
os.environ.setdefault("CONVNP_PLAN", "fixed")
