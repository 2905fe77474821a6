"""What a user sees while training: one in-place line per epoch on a terminal without tqdm, plain lines in a
log, the tqdm bar kept after each epoch."""
import io

import numpy as np
import pytest

from convnp import nn
from convnp.train import ProgressBar
from convnp.train.progress import EpochProgress


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self):
        return True


def screen(text):
    """The lines a terminal shows after ``text``: a carriage return moves to the start of the line, later
    characters overwrite earlier ones."""
    lines, cur, col = [], [], 0
    for ch in text:
        if ch == "\n":
            lines.append("".join(cur).rstrip())
            cur, col = [], 0
        elif ch == "\r":
            col = 0
        else:
            if col < len(cur):
                cur[col] = ch
            else:
                cur.append(ch)
            col += 1
    if "".join(cur).strip():
        lines.append("".join(cur).rstrip())
    return lines


def _fit(stream, mode, epochs=3):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 1, 8, 8)).astype(np.float32)
    t = rng.integers(0, 3, 60)
    model = nn.Sequential([nn.Conv2D(2, 3, in_channels=1, seed=0), nn.Flatten(), nn.Dense(3, seed=1)])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"], lr=0.01)
    model.fit(x, t, epochs=epochs, batch_size=5, seed=0, verbose=1, callbacks=[ProgressBar(mode, stream=stream)])


def test_plain_progress_on_a_terminal_is_one_line_per_epoch():
    term = Terminal()
    _fit(term, "plain")
    text = term.getvalue()
    assert "\r" in text and "ETA" in text          # the line was drawn (and redrawn) in place
    shown = screen(text)
    assert len(shown) == 3, shown                   # what remains: the three epoch summaries
    assert [line.split()[1] for line in shown] == ["1/3", "2/3", "3/3"]
    assert all("ETA" not in line and "samples/s" in line for line in shown)


def test_plain_progress_in_a_log_writes_separate_lines_without_carriage_returns():
    log = io.StringIO()
    _fit(log, "plain", epochs=1)
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    progress = [line for line in lines if "ETA" in line]
    assert 2 <= len(progress) <= 12 and progress[-1].startswith("epoch 1/1  12/12")


def test_in_place_line_is_throttled_and_erased_on_close():
    term = Terminal()
    bar = EpochProgress(1000, "epoch 1/1", mode="plain", stream=term)
    for _ in range(1000):
        bar.update(1, 10, {"loss": 0.5})
    assert term.getvalue().count("\r") < 50         # at most ~10 redraws a second, plus the last step
    assert "1000/1000" in term.getvalue()
    bar.close()
    assert screen(term.getvalue()) == []            # erased: the epoch's summary line goes there


def test_tqdm_bar_stays_after_each_epoch():
    pytest.importorskip("tqdm")
    term = Terminal()
    _fit(term, "tqdm", epochs=2)
    shown = screen(term.getvalue())
    bars = [line for line in shown if "12/12" in line]
    assert len(bars) == 2, shown                    # one finished bar per epoch is still on screen
    assert sum(line.startswith("epoch") and "samples/s)" in line for line in shown) == 2
