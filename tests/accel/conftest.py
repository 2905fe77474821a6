"""The tests of the kernels themselves run with the kernels switched on, whatever ``CONVNP_ACCEL`` says for the rest
of the suite (``CONVNP_ACCEL=0 pytest`` checks the NumPy path everywhere else; these still check the kernels
against it). Without a C compiler the kernels are unavailable and the tests that need them say so."""
import pytest

from convnp import accel


@pytest.fixture(autouse=True)
def kernels_on():
    previous = accel.set_enabled(True)
    try:
        yield
    finally:
        accel.set_enabled(previous)
