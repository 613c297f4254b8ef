"""``runtime.heap_held``: the process's objects left out of the collector's passes
while a large report is built, and always given back: nothing it holds is kept."""

from __future__ import annotations

import gc
import threading
import weakref

from dockd.runtime import heap_held


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


def test_the_heap_is_held_while_inside_and_given_back_after() -> None:
    before = _Node()
    gone = weakref.ref(before)
    with heap_held():
        assert gc.get_freeze_count() > 0  # what existed is held
        del before
        gc.collect()
        assert gone() is not None  # held: not collected while inside
        made = _Node()  # made inside: collected as usual
        made_ref = weakref.ref(made)
        del made
        gc.collect()
        assert made_ref() is None
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert gone() is None  # given back: the cycle held before is freed


def test_threads_nest_and_the_last_one_out_gives_the_heap_back() -> None:
    inside = threading.Barrier(2)
    first_out = threading.Event()
    counts: list[int] = []

    def report(wait_for_other: bool) -> None:
        with heap_held():
            inside.wait()
            if wait_for_other:
                first_out.wait()
                counts.append(gc.get_freeze_count())
        if not wait_for_other:
            first_out.set()

    slow = threading.Thread(target=report, args=(True,))
    fast = threading.Thread(target=report, args=(False,))
    slow.start()
    fast.start()
    fast.join()
    slow.join()
    assert counts and counts[0] > 0  # still held for the one still inside
    assert gc.get_freeze_count() == 0
