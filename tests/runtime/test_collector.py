"""The garbage-collection policy of the long-running loops around a start-up."""

from __future__ import annotations

import gc

import pytest

from propylon.runtime import collector as collector_module
from propylon.runtime.collector import QuietCollector


@pytest.fixture
def collections(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The generations `gc.collect` was asked for (the collections themselves skipped)."""
    calls: list[int] = []
    monkeypatch.setattr(
        collector_module.gc, "collect", lambda generation=2: calls.append(generation)
    )
    return calls


async def test_start_up_heap_is_the_baseline_not_growth(collections: list[int]) -> None:
    """The first reconcile's heap (everything the start-up read and built) does not
    trigger a full collection on the loop: it would find almost nothing."""
    quiet = QuietCollector()
    quiet.start()
    try:
        garbage = [[] for _ in range(10_000)]  # noqa: F841  # a heap to freeze
        quiet.after_reconcile()
        assert quiet._frozen >= 9_000  # counted (roughly) without walking the frozen heap
        quiet._collect()  # what the idle timer runs
        assert collections == []
        quiet._frozen_after_collect = quiet._frozen // 2  # as if it had grown since
        quiet._collect()
        assert collections == [2]
    finally:
        quiet.stop()
        gc.unfreeze()


async def test_no_young_collection_while_work_runs(collections: list[int]) -> None:
    busy = True
    quiet = QuietCollector(busy=lambda: busy)
    quiet.start()
    try:
        young = [[] for _ in range(collector_module.GC_YOUNG_OBJECTS + 1000)]  # noqa: F841
        quiet._collect_young()
        assert collections == []
        busy = False
        quiet._collect_young()
        assert collections == [1]
    finally:
        quiet.stop()
