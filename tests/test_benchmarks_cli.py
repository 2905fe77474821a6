"""benchmarks.run's argument errors (the timings themselves are not tests: see benchmarks/)."""
import pytest

from benchmarks import run
from convnp import accel


def test_accel_on_without_numba_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setattr(accel, "available", lambda: False)
    with pytest.raises(SystemExit) as err:
        run.main(["--accel", "on", "--only", "memory"])
    assert err.value.code == 2
    assert "--accel on needs numba (pip install 'convnp[fast]') and CONVNP_ACCEL unset or 1" in capsys.readouterr().err
