"""The start-up heap freeze (full collections skip start-up state, later garbage still goes)
and the event loop long-running processes use."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from dukenet.runtime import freeze_startup_heap, run_async, thaw_heap


class Node:
    """A weak-referenceable object that can sit in a reference cycle."""

    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def frozen() -> Iterator[None]:
    freeze_startup_heap()
    try:
        yield
    finally:
        thaw_heap()


def test_start_up_objects_leave_the_collectors_reach(frozen: None) -> None:
    assert gc.get_freeze_count() > 0
    # Full collections now walk only what was allocated after start-up.
    assert len(gc.get_objects(generation=2)) < gc.get_freeze_count()


def test_garbage_made_after_start_up_is_still_collected(frozen: None) -> None:
    first, second = Node(), Node()
    first.other, second.other = second, first  # a cycle only the collector can free
    gone = weakref.ref(first)
    del first, second
    gc.collect()
    assert gone() is None


def test_thawing_at_shutdown_lets_start_up_cycles_go() -> None:
    first, second = Node(), Node()
    first.other, second.other = second, first
    gone = weakref.ref(first)
    freeze_startup_heap()  # the cycle is start-up state now
    del first, second
    gc.collect()
    assert gone() is not None  # frozen: never collected while the app runs
    thaw_heap()
    gc.collect()
    assert gone() is None


def test_run_async_runs_on_uvloop_and_returns_the_result() -> None:
    """Workers run on uvloop (installed with DukeNET on Linux and macOS)."""

    async def loop_module() -> str:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop()).__module__

    assert run_async(loop_module()).startswith("uvloop")
