"""Progress display for one epoch: a tqdm bar when tqdm is installed, plain text otherwise.

All show the running loss and accuracy, samples per second and the estimated time left (ETA):

* tqdm: one bar per epoch, kept on screen when the epoch ends (``leave=True``);
* plain, on a terminal: one line rewritten in place (``\r``, at most 10 times a second), erased when the
  epoch ends so that the epoch's summary line takes its place: one line per epoch;
* plain, not a terminal (a log file, a pipe, CI): about 10 separate lines per epoch, nothing rewritten.
"""
from __future__ import annotations

import sys
import time


def format_seconds(seconds: float) -> str:
    """``75.3 -> "1:15"``, ``3725 -> "1:02:05"``."""
    seconds = int(round(max(seconds, 0)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_logs(logs: dict, keys=None) -> str:
    """``{"loss": 0.1234, "accuracy": 0.98} -> "loss 0.1234  accuracy 0.9800"``."""
    parts = []
    for key in keys if keys is not None else logs:
        value = logs.get(key)
        if value is None:
            continue
        parts.append(f"{key} {value:.3g}" if key == "lr" else f"{key} {value:.4f}")
    return "  ".join(parts)


def _tqdm():
    try:
        from tqdm.auto import tqdm
        return tqdm
    except ImportError:
        return None


class EpochProgress:
    """Progress of one epoch of ``total`` steps.

    Args:
        total: number of steps (batches) in the epoch.
        desc: label, e.g. "epoch 2/5".
        mode: "auto" (tqdm when installed), "tqdm", "plain" (one line rewritten in place on a terminal, about
            10 text lines per epoch otherwise) or "none".
        stream: where to write (default sys.stderr for the bar, sys.stdout for plain lines).

    Example::

        bar = EpochProgress(600, "epoch 1/5")
        bar.update(1, 100, {"loss": 0.3, "accuracy": 0.91})
        bar.close()
    """

    def __init__(self, total: int, desc: str = "", mode: str = "auto", stream=None):
        if mode not in ("auto", "tqdm", "plain", "none"):
            raise ValueError(f"EpochProgress: mode must be auto, tqdm, plain or none, got {mode!r}")
        tqdm = _tqdm() if mode in ("auto", "tqdm") else None
        if mode == "tqdm" and tqdm is None:
            raise ImportError("EpochProgress: mode='tqdm' needs tqdm: pip install \"convnp[progress]\"")
        self.mode = mode if mode != "auto" else ("tqdm" if tqdm is not None else "plain")
        self.total = int(total)
        self.desc = desc
        self.step = 0
        self.samples = 0
        self.start = time.perf_counter()
        self.every = max(1, self.total // 10)
        self.stream = stream
        self.bar = tqdm(total=self.total, desc=desc, unit="batch", file=stream, leave=True,
                        dynamic_ncols=True) if self.mode == "tqdm" else None
        self.in_place = self.mode == "plain" and _is_terminal(self.stream or sys.stdout)
        self.last_draw = 0.0
        self.width = 0

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.samples / elapsed if elapsed > 0 else 0.0

    def eta(self) -> float:
        elapsed = time.perf_counter() - self.start
        return elapsed / self.step * (self.total - self.step) if self.step else 0.0

    def update(self, steps: int, samples: int, logs: dict) -> None:
        """Advance by ``steps`` batches holding ``samples`` samples; ``logs`` are the running averages."""
        self.step += steps
        self.samples += samples
        if self.bar is not None:
            self.bar.update(steps)
            post = {k: f"{v:.4f}" for k, v in logs.items() if v is not None}
            post["samples/s"] = f"{self.rate():.0f}"
            self.bar.set_postfix(post, refresh=False)
        elif self.mode == "plain":
            line = (f"{self.desc}  {self.step}/{self.total}  {format_logs(logs)}  {self.rate():.0f} samples/s  "
                    f"ETA {format_seconds(self.eta())}")
            out = self.stream or sys.stdout
            if self.in_place:
                now = time.perf_counter()
                if now - self.last_draw >= 0.1 or self.step == self.total:
                    self.last_draw = now
                    out.write("\r" + line.ljust(self.width))
                    out.flush()
                    self.width = len(line)
            elif self.step % self.every == 0 or self.step == self.total:
                print(line, file=out, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.in_place and self.width:  # erase the line: the epoch's summary line is printed in its place
            out = self.stream or sys.stdout
            out.write("\r" + " " * self.width + "\r")
            out.flush()
            self.width = 0


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False
