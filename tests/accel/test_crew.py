"""The helper threads of run_split (convnp.accel.crew): every piece runs once, errors reach the caller, and
concurrent or nested calls neither deadlock nor lose pieces."""
import threading

import numpy as np
import pytest

from convnp.accel import crew, direct


@pytest.fixture
def three_threads():
    previous = direct.num_threads()
    direct.set_num_threads(3)
    try:
        yield
    finally:
        direct.set_num_threads(previous)


def _counting_call(seen, on_thread=None):
    def call(s, e, k):
        seen[s:e] += 1
        if on_thread is not None:
            on_thread.add(threading.get_ident())
    return call


def test_pieces_run_on_the_caller_and_the_helpers(three_threads):
    seen, threads = np.zeros(240, int), set()

    def slow(s, e, k):  # long enough that every thread takes a piece
        _counting_call(seen, threads)(s, e, k)
        threading.Event().wait(0.01)
    direct.run_split(240, slow)
    assert (seen == 1).all()
    assert threading.get_ident() in threads and len(threads) == 3


def test_an_error_in_a_helpers_piece_is_raised_by_the_caller_and_the_crew_goes_on(three_threads):
    caller = threading.get_ident()

    def fails_off_the_caller(s, e, k):
        if threading.get_ident() != caller:
            raise ValueError(f"piece {k} failed")
        threading.Event().wait(0.005)  # the caller stays busy: a helper takes a piece
    with pytest.raises(ValueError, match="piece .* failed"):
        direct.run_split(60, fails_off_the_caller)
    seen = np.zeros(60, int)
    direct.run_split(60, _counting_call(seen))  # the same crew, no stale error or lock left behind
    assert (seen == 1).all()


def test_concurrent_and_nested_calls_lose_no_piece(three_threads):
    results = {}

    def outer(name):
        seen = np.zeros(500, int)
        inner_seen = np.zeros(40, int)

        def call(s, e, k):
            seen[s:e] += 1
            if k == 0:  # a split inside a piece: the crew is busy, this one runs alone
                direct.run_split(40, _counting_call(inner_seen))
        direct.run_split(500, call)
        results[name] = (seen, inner_seen)
    workers = [threading.Thread(target=outer, args=(i,)) for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert len(results) == 4
    for seen, inner_seen in results.values():
        assert (seen == 1).all() and (inner_seen == 1).all()


def test_a_broken_crew_is_replaced():
    first = crew.crew(1)
    first.broken = True  # as after an interrupted wait
    assert not first.try_run(lambda: None, 1)
    second = crew.crew(1)
    assert second is not first and not second.broken
    ran = []
    assert second.try_run(lambda: ran.append(1), 1) and len(ran) == 2  # the caller and one helper
