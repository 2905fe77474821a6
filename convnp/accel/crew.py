"""The threads that run pieces of a kernel call beside the calling thread (``convnp.accel.direct.run_split``).

Why not a ``concurrent.futures.ThreadPoolExecutor``: on the 2-core benchmark VM its ``submit`` delayed the
caller's own first piece by 35-50 us and the helper's by 60-130 us, and ``result`` woke the caller 30-50 us
after the last piece (a future, a queue and a condition variable each way). Two plain locks per helper, as here,
start the pieces 20-50 us sooner: a (100, 32, 7, 7) -> 64 forward takes 0.62-0.64 ms instead of 0.68-0.76,
and a DeepConvNet training step 0.4-0.5 ms less (SimpleConvNet's 0.2-0.3), in A/B runs that alternate steps.

How: each helper thread sleeps on its own ``go`` lock; :meth:`Crew.try_run` sets the function, releases ``go`` on
as many helpers as it needs, runs the function itself too, then takes each helper's ``done`` lock. One call
uses the crew at a time: a second thread that calls meanwhile (or a call made from inside a piece) gets
``False`` and runs its pieces alone. A forked child gets a crew of its own (``fork`` copies no threads), and so
does the next call after a wait was interrupted (Ctrl-C while a helper still ran: that crew is not reused).
"""
from __future__ import annotations

import _thread
import os
import threading

__all__ = ["Crew", "crew"]


class _Helper:
    """One daemon thread that runs ``fn()`` each time ``go`` is released, then releases ``done``."""

    def __init__(self, name):
        self.go, self.done = _thread.allocate_lock(), _thread.allocate_lock()
        self.go.acquire()
        self.done.acquire()
        self.fn, self.error = None, None
        threading.Thread(target=self._loop, name=name, daemon=True).start()

    def _loop(self):
        while True:
            self.go.acquire()
            try:
                self.fn()
            except BaseException as e:  # handed to the caller, raised there
                self.error = e
            finally:
                self.fn = None
                self.done.release()

    def start(self, fn):
        self.fn = fn
        self.go.release()

    def wait(self):
        """Wait for the function to end; its exception (if any) is returned, not raised."""
        self.done.acquire()
        error, self.error = self.error, None
        return error


class Crew:
    """``size`` helper threads for :meth:`try_run`."""

    def __init__(self, size: int):
        self.size = size
        self.broken = False  # a wait was interrupted: a helper may still be running, never hand it more work
        self._busy = threading.Lock()
        self._helpers = [_Helper(f"convnp-{k}") for k in range(size)]

    def try_run(self, fn, helpers: int) -> bool:
        """Run ``fn()`` on the calling thread and on ``helpers`` (<= size) helper threads at once, and wait for all
        of them; the first exception raised anywhere is raised here. Returns False (and runs nothing) when
        another call holds the crew."""
        if self.broken or not self._busy.acquire(blocking=False):
            return False
        try:
            team = self._helpers[:helpers]
            for helper in team:
                helper.start(fn)
            try:
                fn()
            finally:  # every helper has ended before the caller's error (if any) goes on
                try:
                    errors = [helper.wait() for helper in team]
                except BaseException:
                    self.broken = True
                    raise
            for error in errors:
                if error is not None:
                    raise error
            return True
        finally:
            self._busy.release()


_state = {"crew": None, "pid": None}
_lock = threading.Lock()


def crew(helpers: int) -> Crew:
    """This process's crew, with at least ``helpers`` helper threads (made or grown on first need)."""
    current = _state["crew"]
    if current is None or current.size < helpers or current.broken or _state["pid"] != os.getpid():
        with _lock:
            current = _state["crew"]
            if current is None or current.size < helpers or current.broken or _state["pid"] != os.getpid():
                size = max(helpers, (os.cpu_count() or 1) - 1)
                current = _state["crew"] = Crew(size)
                _state["pid"] = os.getpid()
    return current
