"""plot_history: loss and accuracy curves (train and validation) from a History, a dict or a run's log file."""
from __future__ import annotations

import csv
import json
import math
import os

from ._mpl import finish, new_figure

#: log files looked for, in this order, inside a run directory
RUN_LOG_NAMES = ("history.json", "log.json", "metrics.json", "history.jsonl", "log.jsonl", "metrics.jsonl",
                 "history.csv", "log.csv", "metrics.csv", "training.csv", "training.log")
#: checkpoints (ModelCheckpoint's files) whose stored History is used when a run has no log file
RUN_CHECKPOINT_NAMES = ("last.npz", "best.npz")
#: columns that are bookkeeping, not curves (unless asked for with metrics=)
NOT_CURVES = ("epoch", "epochs", "step", "time", "lr", "learning_rate", "duration", "seconds", "stopped_reason")


def _number(value):
    if value is None or value == "":
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _columns_from_rows(rows):
    """[{"epoch": 1, "loss": .5}, ...] -> {"epoch": [1], "loss": [.5]} (missing values -> NaN)."""
    keys = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    return {k: [_number(row.get(k)) for row in rows] for k in keys}


def _read_log(path):
    name = os.path.basename(path).lower()
    with open(path, newline="", encoding="utf-8") as f:
        if name.endswith(".jsonl"):
            return [json.loads(line) for line in f if line.strip()]
        if name.endswith(".json"):
            return json.load(f)
        return list(csv.DictReader(f))


def load_history(source) -> tuple[list, dict]:
    """``(epochs, {name: [values]})`` from any history form.

    Accepts a History object (``.history`` and ``.epoch``), its ``to_dict()`` form
    ``{"epoch": [...], "history": {...}}``, a plain ``{name: [values]}`` dict (Keras' ``history.history``),
    a list of per-epoch dicts, a JSON/JSONL/CSV log file (JSONLogger, CSVLogger), a checkpoint ``.npz``
    (its stored History), or a run directory holding one of these (``history.json``, ``log.csv``, ...,
    then ``last.npz``, ``best.npz``).
    """
    where = "plot_history"
    epochs = None
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if os.path.isdir(path):
            names = RUN_LOG_NAMES + RUN_CHECKPOINT_NAMES
            found = [os.path.join(path, n) for n in names if os.path.isfile(os.path.join(path, n))]
            if not found:
                raise FileNotFoundError(f"{where}: no training log in {path!r}; looked for {', '.join(names)}")
            path = found[0]
        elif not os.path.isfile(path):
            raise FileNotFoundError(f"{where}: {path!r} does not exist")
        if path.endswith(".npz"):  # a checkpoint keeps the History in its training state
            from ..io.checkpoint import load_checkpoint
            source = load_checkpoint(path).state.get("history")
            if not source:
                raise ValueError(f"{where}: the checkpoint {path!r} holds no training history")
        else:
            try:
                source = _read_log(path)
            except (ValueError, UnicodeDecodeError) as e:
                raise ValueError(f"{where}: cannot read the log {path!r} ({e})") from None
    if hasattr(source, "history") and not isinstance(source, dict):  # a History object
        epochs, source = list(getattr(source, "epoch", []) or []), source.history
    if isinstance(source, dict) and isinstance(source.get("history"), (dict, list)):  # History.to_dict()
        epochs = list(source.get("epoch") or []) or None
        source = source["history"]
    if isinstance(source, list):
        source = _columns_from_rows(source)
    if not isinstance(source, dict):
        raise TypeError(f"{where}: expected a History, a dict of lists, a list of per-epoch dicts or a log path, "
                        f"got {type(source).__name__}")
    columns = {}
    for key, values in source.items():
        if isinstance(values, (list, tuple)):
            columns[str(key)] = [_number(v) for v in values]
    if epochs is None:
        epochs = columns.get("epoch") or columns.get("epochs")
    n = max((len(v) for v in columns.values()), default=0)
    if not epochs or len(epochs) != n:
        epochs = list(range(1, n + 1))
    return [int(e) if not math.isnan(e) and float(e).is_integer() else e for e in map(float, epochs)], columns


def _panel_order(columns, metrics):
    bases = []
    for key in columns:
        base = key[4:] if key.startswith("val_") else key
        if base not in bases:
            bases.append(base)
    if metrics is not None:
        wanted = [metrics] if isinstance(metrics, str) else list(metrics)
        missing = [m for m in wanted if m not in bases]
        if missing:
            raise ValueError(f"plot_history: no values logged for {', '.join(map(repr, missing))}; logged: "
                             f"{', '.join(bases)}")
        return wanted
    bases = [b for b in bases if b not in NOT_CURVES]

    def rank(b):
        if b == "loss":
            return 0
        if b in ("accuracy", "acc"):
            return 1
        return 2
    return sorted(bases, key=rank)


def plot_history(history, metrics=None, title=None, path=None, dpi: int = 100):
    """Training curves: one panel per metric (loss first, then accuracy, then the rest), train as a
    solid line and validation (``val_*``) dashed.

    Args:
        history: a History, ``History.to_dict()``, a ``{name: [per-epoch values]}`` dict, a list of
            per-epoch dicts, a JSON/JSONL/CSV log, or a run directory holding one.
        metrics: names to draw (default: every logged value except epoch, time and lr).
        path: save a PNG there when given.

    Returns the matplotlib Figure. Missing values (None, NaN) are skipped, not drawn as zero.
    Example: ``viz.plot_history(model.fit(...), path="curves.png")``.
    """
    epochs, columns = load_history(history)
    panels = _panel_order(columns, metrics)
    if not panels:
        raise ValueError(f"plot_history: nothing to plot; logged values: {', '.join(columns) or 'none'}")
    fig = new_figure(4.5 * len(panels), 3.4, dpi=dpi)
    from matplotlib.ticker import MaxNLocator  # matplotlib is there: new_figure checked
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, base in zip(axes, panels):
        for key, style, label in ((base, "-o", "train"), (f"val_{base}", "--s", "validation")):
            values = columns.get(key)
            if not values:
                continue
            points = [(e, v) for e, v in zip(epochs, values) if not math.isnan(v)]
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], style, label=label, markersize=3)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs 1, 2, 3: no 1.5
        ax.set_title(base)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return finish(fig, path)


__all__ = ["plot_history", "load_history"]
