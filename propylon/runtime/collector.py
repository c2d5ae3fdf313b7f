"""The garbage-collection policy of the long-running loops (`run`, operator, agent).

At thousands of routes CPython's automatic collections cost pauses of tens to hundreds
of milliseconds on the path to Envoy. While serving they are off; what a reconcile
leaves is frozen (never scanned by young collections again), young objects are
collected on a timer, and a full collection runs only when the process is idle and the
frozen heap grew.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable

# After this long without changes, a full garbage collection runs (see `_collect`).
GC_IDLE_S = 5.0
# ... if the frozen heap grew by this fraction since the last one; or, under steady
# churn, shortly after a reconcile once this long has passed.
GC_FULL_GROWTH = 0.1
GC_MAX_INTERVAL_S = 600.0
# While serving, CPython's automatic collections are off: in a burst (a thousand files
# read, then reconciled) they kept scanning the burst's new objects, ~20 % of its time.
# Everything a reconcile leaves is frozen instead (`after_reconcile`), and what other
# work leaves (API requests, streams) is collected every `GC_YOUNG_S` once this many
# tracked objects accumulated since the last freeze or collection.
GC_YOUNG_S = 2.0
GC_YOUNG_OBJECTS = 20_000


class QuietCollector:
    def __init__(self, busy: Callable[[], bool] = lambda: False) -> None:
        """`busy`: whether a reconcile (or the load before the first) is under way.
        Its objects are frozen when it ends; a young collection meanwhile would scan
        them all (at start-up, hundreds of thousands: ~0.15 s on the loop, every
        `GC_YOUNG_S`) to find almost nothing."""
        self._busy = busy
        self._gc_handle: asyncio.TimerHandle | None = None
        self._gc_young_handle: asyncio.TimerHandle | None = None
        self._gc_was_enabled = True
        self._collected_at = 0.0
        # How many objects are frozen, estimated without `gc.get_freeze_count()`
        # (a walk of the whole frozen heap: 0.05 s per 3 million objects in a quiet
        # process, and 150 000 objects' start-up holds millions): the young
        # generation's count (what freezing moves) summed at each freeze.
        self._frozen = 0
        # `_frozen` after the last full collect; None until the first reconcile,
        # whose heap is the baseline (see `after_reconcile`).
        self._frozen_after_collect: int | None = None

    def start(self) -> None:
        """Automatic collections off (call from the running loop)."""
        loop = asyncio.get_running_loop()
        self._gc_was_enabled = gc.isenabled()
        gc.disable()
        # The interval counts from now (the loop's clock starts at boot: counted from
        # 0, the first reconcile looked overdue and paid for a full collection at once).
        self._collected_at = loop.time()
        self._gc_young_handle = loop.call_later(GC_YOUNG_S, self._collect_young)

    def stop(self) -> None:
        if self._gc_handle is not None:
            self._gc_handle.cancel()
        if self._gc_young_handle is not None:
            self._gc_young_handle.cancel()
            self._gc_young_handle = None
            if self._gc_was_enabled:
                gc.enable()

    def after_reconcile(self) -> None:
        """Keep the cyclic garbage collector off the reconcile path: what survived a
        reconcile is frozen (not scanned again by automatic collections, which at
        thousands of routes cost hundreds of milliseconds). Cyclic garbage frozen with
        them stays until a full collection: measured, a reconcile makes almost none (a
        few hundred objects in 100 changes), while a full collection (unfreeze) costs
        over a second of CPU at 5000 routes and found nothing. So one runs only once
        changes have stopped for `GC_IDLE_S` and the frozen heap grew by
        `GC_FULL_GROWTH` since the last one, or under steady churn every
        `GC_MAX_INTERVAL_S` (it was every 30 s: ~0.05 core at 5000 routes)."""
        self._frozen += gc.get_count()[0]
        gc.freeze()
        if self._frozen_after_collect is None:
            # The start-up's heap is the baseline, not growth: a full collection of it
            # (0.6 s of CPU at 10 000 routes, seconds on a busy machine, on the loop)
            # finds ~2000 objects of cyclic garbage (measured), not worth that block.
            self._frozen_after_collect = self._frozen
        if self._gc_handle is not None:
            self._gc_handle.cancel()
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_running_loop()
            overdue = loop.time() - self._collected_at > GC_MAX_INTERVAL_S
            self._gc_handle = loop.call_later(0.2 if overdue else GC_IDLE_S, self._collect)

    def _collect_young(self) -> None:
        if gc.get_count()[0] > GC_YOUNG_OBJECTS and not self._busy():
            gc.collect(1)
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_running_loop()
            self._gc_young_handle = loop.call_later(GC_YOUNG_S, self._collect_young)

    def _collect(self) -> None:
        self._gc_handle = None
        with contextlib.suppress(RuntimeError):
            now = asyncio.get_running_loop().time()
            baseline = self._frozen_after_collect or 0
            grown = self._frozen > baseline * (1 + GC_FULL_GROWTH)
            if not grown and now - self._collected_at <= GC_MAX_INTERVAL_S:
                return
            self._collected_at = now
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self._frozen = self._frozen_after_collect = gc.get_freeze_count()
