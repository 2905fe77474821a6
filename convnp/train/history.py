"""History: per-epoch logs returned by ``fit`` (Keras-style), saved in checkpoints, plotted as a PNG."""
from __future__ import annotations

import json


class History:
    """``history.history["loss"]`` is the list of per-epoch training losses, and likewise for every
    logged value (``accuracy``, ``val_loss``, ``val_accuracy``, ``lr``, ``time``); ``history.epoch`` the
    matching 1-based epoch numbers.

    Example: ``h = model.fit(x, y, epochs=3); h.history["val_accuracy"][-1]``.
    """

    def __init__(self):
        self.history: dict = {}
        self.epoch: list = []
        self.stopped_reason: str | None = None

    def append(self, epoch: int, logs: dict) -> None:
        """Record the logs of (1-based) ``epoch``; a value missing in earlier epochs is padded with None."""
        self.epoch.append(int(epoch))
        for key, value in logs.items():
            column = self.history.setdefault(key, [None] * (len(self.epoch) - 1))
            column.append(float(value) if value is not None else None)
        for column in self.history.values():
            if len(column) < len(self.epoch):
                column.append(None)

    def __len__(self) -> int:
        return len(self.epoch)

    def last(self) -> dict:
        """The logs of the last epoch ({} before the first)."""
        return {k: v[-1] for k, v in self.history.items()} if self.epoch else {}

    def to_dict(self) -> dict:
        return {"epoch": list(self.epoch), "history": {k: list(v) for k, v in self.history.items()},
                "stopped_reason": self.stopped_reason}

    @classmethod
    def from_dict(cls, data: dict) -> "History":
        h = cls()
        h.epoch = [int(e) for e in data.get("epoch", [])]
        h.history = {k: list(v) for k, v in data.get("history", {}).items()}
        h.stopped_reason = data.get("stopped_reason")
        return h

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def __repr__(self) -> str:
        return f"History(epochs={len(self)}, keys={sorted(self.history)})"

    def plot(self, path=None):
        """Loss and accuracy curves (train and validation) side by side; saved to ``path`` when given.
        Needs matplotlib (``pip install "convnp[plots]"``). Returns the Figure."""
        try:
            import matplotlib
            if path is not None:
                matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
            from matplotlib.ticker import MaxNLocator
        except ImportError:
            raise ImportError("History.plot needs matplotlib: pip install \"convnp[plots]\"") from None
        metrics = [k for k in self.history if not k.startswith("val_") and k not in ("lr", "time")]
        fig, axes = plt.subplots(1, max(len(metrics), 1), figsize=(5 * max(len(metrics), 1), 3.6), squeeze=False)
        for ax, key in zip(axes[0], metrics):
            for name, style in ((key, "-o"), (f"val_{key}", "--s")):
                values = self.history.get(name)
                if values:
                    points = [(e, v) for e, v in zip(self.epoch, values) if v is not None]
                    ax.plot([p[0] for p in points], [p[1] for p in points], style, label=name, markersize=3)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs 1, 2, 3: no 1.5
            ax.set_title(key)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=100)
            plt.close(fig)
        return fig
