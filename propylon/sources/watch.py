"""Watching the file source: one `ChangeSet` per batch of file events.

`watch()` yields the complete desired set first, then a new one after each batch of
create/modify/delete/rename events that changed anything (objects, where they came from,
or diagnostics). Only the files named by the events are read again, without listing or
stat-ing the others (`FileSource.update`); the periodic rescan reads every file whose
stat changed.

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
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

from watchfiles import awatch

from propylon.resources.meta import ObjectKey
from propylon.sources.files import FileSource, ParseFn, WatchPlan
from propylon.store import ChangeSet, StoredObject


def same_changeset(a: ChangeSet, b: ChangeSet) -> bool:
    if a is b:
        return True
    if a.diagnostics != b.diagnostics or a.objects.keys() != b.objects.keys():
        return False
    if b.base is a.token:  # b is a patched a: only its touched keys can differ
        keys: Iterable[ObjectKey] = b.touched
    else:
        keys = a.objects
    return all(_same_object(a.objects[key], b.objects[key]) for key in keys)


def _same_object(x: StoredObject, y: StoredObject) -> bool:
    return x is y or (
        x.origin == y.origin and (x.resource is y.resource or x.resource == y.resource)
    )


async def _events(
    plan: WatchPlan, stop_event: asyncio.Event, options: dict[str, Any]
) -> AsyncGenerator[set[str], None]:
    """Batches of changed paths from one or two watchers (recursive and flat), merged;
    an empty batch on each rescan tick."""
    queue: asyncio.Queue[set[str] | None] = asyncio.Queue()  # None: a watcher ended
    # awatch sets the stop event it is given when it is cancelled: give it one of ours,
    # so that replacing the watchers does not stop the caller's watch.
    inner = asyncio.Event()

    async def pump(roots: tuple[Path, ...], recursive: bool, ticks: bool) -> None:
        try:
            async for changes in awatch(
                *roots,
                stop_event=inner,
                recursive=recursive,
                yield_on_timeout=ticks,
                **options,
            ):
                await queue.put({path for _, path in changes})
        finally:
            await queue.put(None)

    async def relay() -> None:
        await stop_event.wait()
        inner.set()

    groups = [(roots, rec) for roots, rec in ((plan.recursive, True), (plan.flat, False)) if roots]
    tasks = [
        asyncio.create_task(pump(roots, rec, ticks=i == 0)) for i, (roots, rec) in enumerate(groups)
    ]
    relay_task = asyncio.create_task(relay())
    running = len(tasks)
    try:
        while running:
            item = await queue.get()
            if item is None:
                running -= 1
                continue
            batch = set(item)
            while not queue.empty():  # merge what the other watcher has ready
                extra = queue.get_nowait()
                if extra is None:
                    running -= 1
                else:
                    batch |= extra
            yield batch
    finally:
        inner.set()
        relay_task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
        for task in tasks:
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
) -> AsyncIterator[ChangeSet]:
    """Yield ChangeSets for `paths` until `stop_event` is set (or the consumer stops).

    `source`: an existing `FileSource` to continue from (its cache and history are
    kept); otherwise one is made from `paths` and `parse`."""
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
    last = files.load()
    if initial:
        yield last
    while not stop.is_set():
        plan = files.watch_plan()
        replan = False
        async with contextlib.aclosing(_events(plan, stop, options)) as events:
            async for changed in events:
                # An empty batch is the rescan tick.
                current = files.update(changed) if changed else files.load()
                replan = files.watch_plan() != plan
                if not same_changeset(current, last):
                    last = current
                    yield current
                if replan:
                    break
        if not replan:
            return
