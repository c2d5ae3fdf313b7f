"""Long work off the event loop: one daemon thread that runs submitted calls in order.

Reading thousands of manifests or building and translating thousands of routes takes
seconds; on the loop it would stall the xDS stream, the local API and signal handling.
Here the loop only waits on a future (the GIL passes between the threads every few ms,
`sys.getswitchinterval`). The thread is a daemon so that a stop never waits for a long
computation: `run` gives up with `Stopping` when the stop event is set first, and the
process exits with the work abandoned (its half-done state is never used again).
One thread, so calls never overlap: the store, Builder and Translator are only ever
touched by one call at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Stopping(Exception):
    """The stop event was set while a call was still running."""


class Worker:
    def __init__(self, name: str = "propylon-worker") -> None:
        self._name = name
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Callable[..., None]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._pending = 0  # calls queued or running (counted on the loop)

    @property
    def busy(self) -> bool:
        return self._pending > 0

    async def run(self, fn: Callable[[], T], stop: asyncio.Event | None = None) -> T:
        """`fn()` on the worker thread; raises `Stopping` if `stop` is set first."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def settle(ok: bool, value: Any) -> None:
            if future.done():
                return
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

        def done(ok: bool, value: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(settle, ok, value)

        if self._thread is None:
            self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
            self._thread.start()
        self._pending += 1
        future.add_done_callback(self._finished)
        self._calls.put((fn, done))
        if stop is None:
            return await future
        stopped: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        waiting: set[asyncio.Future[Any]] = {future, stopped}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not future.done():
            raise Stopping
        return future.result()

    def _finished(self, _: asyncio.Future[Any]) -> None:
        self._pending -= 1

    def close(self) -> None:
        """Let the thread end once it is idle (it is a daemon: exit does not wait)."""
        if self._thread is not None:
            self._calls.put(None)
            self._thread = None

    def _main(self) -> None:
        while (item := self._calls.get()) is not None:
            fn, done = item
            try:
                value = fn()
            except BaseException as exc:  # handed to the awaiting task
                done(False, exc)
            else:
                done(True, value)
