"""Small things a Python user meets: integer epoch ticks on history plots, data cache under XDG_CACHE_HOME."""
import os

import pytest

from convnp.data import data_home


def test_data_cache_honours_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.delenv("CONVNP_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_home("cifar10") == os.path.join(str(tmp_path / "xdg"), "convnp", "cifar10")
    monkeypatch.setenv("CONVNP_DATA", str(tmp_path / "mine"))  # the explicit variable still wins
    assert data_home("cifar10") == os.path.join(str(tmp_path / "mine"), "cifar10")
    monkeypatch.delenv("CONVNP_DATA")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_home("cifar10") == os.path.join(str(tmp_path / "home"), ".cache", "convnp", "cifar10")


def _ticks(fig):
    return [t for ax in fig.axes for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]


@pytest.mark.parametrize("epochs", [2, 3, 7])
def test_history_plots_have_integer_epoch_ticks(epochs):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    from convnp import viz
    from convnp.train.history import History
    h = History()
    for e in range(1, epochs + 1):
        h.append(e, {"loss": 1.0 / e, "accuracy": 0.5 + e / 100, "val_loss": 1.1 / e})
    for fig in (viz.plot_history(h), h.plot()):
        fig.canvas.draw()
        ticks = _ticks(fig)
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
