"""Watching the file source: one `ChangeSet` per batch of file events.

`watch()` yields the complete desired set first, then a new one after each batch of
create/modify/delete/rename events that changed anything (objects, where they came from,
or diagnostics). When a batch took long to read (a burst of writes), the events that
came meanwhile are read into the same `ChangeSet` (see `COALESCE_S`): one reconcile for
the burst, without a fixed debounce for small changes. Only the files named by the
events are read again, without listing or stat-ing the others (`FileSource.update`);
the periodic rescan (`FileSource.rescan`) reads every file whose stat changed, and
only those.

Directories given as paths are watched recursively; for a file path only its parent
directory is watched, not recursively (so `-f ~/gw.yaml` does not watch all of `~`).
When a path appears, disappears or changes between file and directory, the watches are
set up again. A periodic stat rescan (`rescan_interval`) catches events missed while the
watcher started or on filesystems that do not report them; `force_polling` switches
watchfiles to polling for network or container filesystems.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from watchfiles import awatch

from propylon.resources.meta import ObjectKey
from propylon.sources import inotify
from propylon.sources.files import FileSource, ParseFn, WatchPlan
from propylon.store import ChangeSet, StoredObject

# Events that arrived while a batch was read are read into the same ChangeSet for at
# most this long (a steady stream of writes must not hold the ChangeSet back forever).
COALESCE_S = 2.0
# ... but only after a batch that took this long to read (some tens of files).
BUSY_S = 0.02
# How long to wait for more of a burst when events are reported as they happen
# (inotify): a writer still going writes a file far faster than this.
IMMEDIATE_WAIT_S = 0.005


Offload = Callable[[Callable[[], ChangeSet]], Awaitable[ChangeSet]]


async def _in_place(fn: Callable[[], ChangeSet]) -> ChangeSet:
    return fn()


def same_changeset(a: ChangeSet, b: ChangeSet) -> bool:
    if a is b:
        return True
    if a.diagnostics != b.diagnostics or len(a.objects) != len(b.objects):
        return False
    if b.base is a.token:  # b is a patched a: only its touched keys can differ
        keys: Iterable[ObjectKey] = b.touched
    else:  # as many keys: the same keys if each of a's is in b
        keys = a.objects
    return all(_same_object(a.objects.get(key), b.objects.get(key)) for key in keys)


def _same_object(x: StoredObject | None, y: StoredObject | None) -> bool:
    if x is None or y is None:
        return x is y
    return x is y or (
        x.origin == y.origin and (x.resource is y.resource or x.resource == y.resource)
    )


class _Events:
    """Batches of changed paths from one or two watchers (recursive and flat), merged;
    an empty batch on each rescan tick. `next()` waits for one; `ready()` takes, without
    waiting, what the watchers found meanwhile (e.g. while a batch was being read)."""

    def __init__(self, plan: WatchPlan, stop_event: asyncio.Event, options: dict[str, Any]):
        self._queue: asyncio.Queue[set[str] | None] = asyncio.Queue()  # None: a watcher ended
        # awatch sets the stop event it is given when it is cancelled: give it one of
        # ours, so that replacing the watchers does not stop the caller's watch.
        self._inner = asyncio.Event()
        self._arrived = asyncio.Event()  # set on each put
        self._stop_event = stop_event
        groups = [(r, rec) for r, rec in ((plan.recursive, True), (plan.flat, False)) if r]
        self._last_report = asyncio.get_running_loop().time()
        # inotify reports each event as it happens; watchfiles after a quiet `step`.
        self.immediate = inotify.available() and not options["force_polling"]
        if self.immediate:
            # Armed here, synchronously: nothing written from now on goes unreported.
            self._tasks = [
                asyncio.create_task(
                    self._pump_inotify(
                        inotify.InotifyWatch(roots, recursive=rec, report=self._report),
                        i == 0,
                        options,
                    )
                )
                for i, (roots, rec) in enumerate(groups)
            ]
        else:
            self._tasks = [
                asyncio.create_task(self._pump(roots, rec, i == 0, options))
                for i, (roots, rec) in enumerate(groups)
            ]
        self._relay = asyncio.create_task(self._relay_stop())
        self._running = len(self._tasks)

    async def _pump(
        self, roots: tuple[Path, ...], recursive: bool, ticks: bool, options: dict[str, Any]
    ) -> None:
        try:
            async for changes in awatch(
                *roots,
                stop_event=self._inner,
                recursive=recursive,
                yield_on_timeout=ticks,
                **options,
            ):
                await self._queue.put({path for _, path in changes})
                self._arrived.set()
        finally:
            await self._queue.put(None)
            self._arrived.set()

    def _report(self, paths: set[str]) -> None:
        self._last_report = asyncio.get_running_loop().time()
        self._queue.put_nowait(paths)
        self._arrived.set()

    async def _pump_inotify(
        self, watcher: inotify.InotifyWatch, ticks: bool, options: dict[str, Any]
    ) -> None:
        """`_pump` with inotify read on the loop: no thread hop, no quiet step."""
        loop = asyncio.get_running_loop()
        try:
            watcher.start()
            quiet = options["rust_timeout"] / 1000
            while not self._inner.is_set():
                left = self._last_report + quiet - loop.time()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(left, 0.001)):
                        await self._inner.wait()
                if ticks and not self._inner.is_set() and loop.time() - self._last_report >= quiet:
                    self._report(set())  # the rescan tick, after `quiet` s without events
        finally:
            watcher.close()
            await self._queue.put(None)
            self._arrived.set()

    async def _relay_stop(self) -> None:
        await self._stop_event.wait()
        self._inner.set()

    def _drain(self, batch: set[str]) -> set[str]:
        while not self._queue.empty():
            extra = self._queue.get_nowait()
            if extra is None:
                self._running -= 1
            else:
                batch |= extra
        return batch

    async def next(self) -> set[str] | None:
        """The next batch (what is queued behind it merged in); None once the watchers
        have ended."""
        while self._running:
            item = await self._queue.get()
            if item is None:
                self._running -= 1
                continue
            return self._drain(set(item))
        return None

    async def ready(self, wait: float = 0.0) -> set[str]:
        """The paths the watchers reported since the last batch. Events that came while
        the loop was busy are only handed over once a watcher thread has been called
        again and seen a quiet `step`: `wait` (seconds) gives it that long."""
        if self._queue.empty() and wait > 0:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._arrived.wait()
        return self._drain(set())

    async def aclose(self) -> None:
        self._inner.set()
        self._relay.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 5)
        for task in self._tasks:
            task.cancel()


async def watch(
    paths: Sequence[Path | str],
    *,
    parse: ParseFn | None = None,
    source: FileSource | None = None,
    debounce_ms: int = 50,
    step_ms: int = 10,
    force_polling: bool | None = None,
    poll_delay_ms: int = 100,
    rescan_interval: float = 2.0,
    stop_event: asyncio.Event | None = None,
    initial: bool = True,
    coalesce_s: float = COALESCE_S,
    offload: Offload | None = None,
) -> AsyncIterator[ChangeSet]:
    """Yield ChangeSets for `paths` until `stop_event` is set (or the consumer stops).

    `source`: an existing `FileSource` to continue from (its cache and history are
    kept); otherwise one is made from `paths` and `parse`. `offload`: runs the reading
    of files (a call returning a ChangeSet) elsewhere, e.g. on a worker thread so that a
    big load does not block the event loop; default: in place."""
    call = offload if offload is not None else _in_place
    files = source if source is not None else FileSource(paths, parse=parse)
    stop = stop_event if stop_event is not None else asyncio.Event()
    options: dict[str, Any] = {
        "debounce": debounce_ms,
        "step": step_ms,
        "force_polling": force_polling,
        "poll_delay_ms": poll_delay_ms,
        "rust_timeout": max(1, int(rescan_interval * 1000)),
        "ignore_permission_denied": True,
    }
    # A watcher hands over what accumulated once it saw `step_ms` without events, or,
    # while events keep coming, `debounce_ms` after the first: how long `ready()` waits
    # after a batch that took more than `busy_s` to read (a burst; not for small changes).
    wait_s = (debounce_ms + 2 * step_ms + 5) / 1000
    busy_s = BUSY_S
    plan = files.watch_plan()
    events = _Events(plan, stop, options)  # before the load: no write falls in between
    try:
        last = await call(files.load)
        if initial:
            yield last
        while True:
            replan = False
            while (changed := await events.next()) is not None:
                # An empty batch is the rescan tick.
                began = time.monotonic()
                if changed:
                    current = await call(partial(files.update, changed))
                else:
                    current = await call(files.rescan)
                replan = files.watch_plan() != plan
                # Reading a burst of files takes a while; what was written meanwhile is
                # read too before the consumer reconciles (one reconcile for a burst,
                # not one per batch), for at most `coalesce_s`. Only after a batch that
                # took long to read: a small change goes on at once.
                read_s = time.monotonic() - began
                while not replan and read_s > busy_s and time.monotonic() - began < coalesce_s:
                    t = time.monotonic()
                    more = await events.ready(IMMEDIATE_WAIT_S if events.immediate else wait_s)
                    if not more:
                        break
                    current = await call(partial(files.update, more))
                    read_s = time.monotonic() - t
                    replan = files.watch_plan() != plan
                if not same_changeset(current, last):
                    last = current
                    yield current
                if replan:
                    break
            await events.aclose()
            if not replan or stop.is_set():
                return
            plan = files.watch_plan()
            events = _Events(plan, stop, options)
            current = await call(files.load)  # what changed while the watches were replaced
            if not same_changeset(current, last):
                last = current
                yield current
    finally:
        await events.aclose()
