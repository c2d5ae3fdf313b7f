from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from propylon.resources.meta import ObjectKey
from propylon.sources.watch import watch
from propylon.store import ChangeSet
from propylon.store.testing import fake_parse

GW = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: {name}\n"


def key(name: str) -> ObjectKey:
    return ObjectKey("Gateway", "default", name)


class Collector:
    def __init__(self) -> None:
        self.sets: list[ChangeSet] = []
        self.event = asyncio.Event()

    async def run(self, it: AsyncIterator[ChangeSet]) -> None:
        async for cs in it:
            self.sets.append(cs)
            self.event.set()

    async def until(self, predicate: Callable[[ChangeSet], bool], timeout: float = 10) -> ChangeSet:
        """Wait until the latest ChangeSet satisfies `predicate` (deadline, no fixed sleeps)."""
        async with asyncio.timeout(timeout):
            while True:
                if self.sets and predicate(self.sets[-1]):
                    return self.sets[-1]
                self.event.clear()
                await self.event.wait()


@contextlib.asynccontextmanager
async def watching(path: Path, **kwargs: object) -> AsyncIterator[Collector]:
    stop = asyncio.Event()
    collector = Collector()
    task = asyncio.create_task(
        collector.run(
            watch(
                [path], stop_event=stop, **{"parse": fake_parse, "rescan_interval": 0.5, **kwargs}
            )  # type: ignore[arg-type]
        )
    )
    try:
        # The first ChangeSet comes before the watcher is armed; events in between are
        # caught by the watcher's periodic stat rescan, so no sleep is needed here.
        await collector.until(lambda cs: True)
        yield collector
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task


@pytest.mark.parametrize("polling", [False, True])
async def test_create_modify_rename_delete(tmp_path: Path, polling: bool) -> None:
    (tmp_path / "a.yaml").write_text(GW.format(name="a"))
    async with watching(tmp_path, force_polling=polling, poll_delay_ms=20) as w:
        assert set(w.sets[0].objects) == {key("a")}

        (tmp_path / "b.yaml").write_text(GW.format(name="b"))
        await w.until(lambda cs: set(cs.objects) == {key("a"), key("b")})

        (tmp_path / "b.yaml").write_text(GW.format(name="b2"))
        await w.until(lambda cs: set(cs.objects) == {key("a"), key("b2")})

        os.rename(tmp_path / "b.yaml", tmp_path / "c.yaml")
        cs = await w.until(
            lambda cs: (
                key("b2") in cs.objects
                and str(cs.objects[key("b2")].origin).startswith(str(tmp_path / "c.yaml"))
            )
        )
        assert set(cs.objects) == {key("a"), key("b2")}

        os.rename(tmp_path / "c.yaml", tmp_path / "c.txt")  # renamed away: no longer read
        await w.until(lambda cs: set(cs.objects) == {key("a")})

        (tmp_path / "a.yaml").unlink()
        await w.until(lambda cs: cs.objects == {})


async def test_atomic_replace_of_watched_file_and_bad_yaml(tmp_path: Path) -> None:
    target = tmp_path / "gw.yaml"
    target.write_text(GW.format(name="a"))
    async with watching(target) as w:
        tmp = tmp_path / ".gw.yaml.tmp"
        tmp.write_text(GW.format(name="b"))
        os.replace(tmp, target)  # how editors save
        await w.until(lambda cs: set(cs.objects) == {key("b")})

        target.write_text("kind: [oops\n")
        cs = await w.until(lambda cs: bool(cs.errors))
        assert set(cs.objects) == {key("b")}  # the last good objects stay


async def test_one_changeset_per_batch(tmp_path: Path) -> None:
    async with watching(tmp_path, debounce_ms=300, step_ms=100) as w:
        before = len(w.sets)
        for i in range(5):
            (tmp_path / f"g{i}.yaml").write_text(GW.format(name=f"g{i}"))
        await w.until(lambda cs: len(cs.objects) == 5)
        assert len(w.sets) - before == 1


def test_watch_plan(tmp_path: Path) -> None:
    from propylon.sources.files import FileSource

    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "f.yaml").write_text("")
    plan = FileSource(
        [
            tmp_path / "d",
            tmp_path / "d" / "sub",
            tmp_path / "f.yaml",
            tmp_path / "d" / "x.yaml",
            tmp_path / "missing" / "deeper" / "g.yaml",
        ]
    ).watch_plan()
    assert plan.recursive == (tmp_path / "d",)
    assert plan.flat == (tmp_path,)  # f.yaml's parent; missing/... -> nearest existing


async def test_missing_directory_appears_later(tmp_path: Path) -> None:
    target = tmp_path / "later"
    async with watching(target) as w:
        assert w.sets[0].errors  # no such file or directory
        (tmp_path / "tmp").mkdir()
        (tmp_path / "tmp" / "a.yaml").write_text(GW.format(name="a"))
        os.rename(tmp_path / "tmp", target)
        await w.until(lambda cs: set(cs.objects) == {key("a")} and not cs.errors)
        # Now watched recursively: a new file deep inside is seen.
        (target / "x" / "y").mkdir(parents=True)
        (target / "x" / "y" / "b.yaml").write_text(GW.format(name="b"))
        await w.until(lambda cs: set(cs.objects) == {key("a"), key("b")})


async def test_burst_read_slowly_is_one_changeset(tmp_path: Path) -> None:
    """Files written while a batch is being read go into the same ChangeSet (one
    reconcile for a burst), without a fixed debounce."""

    def slow_parse(doc: Any) -> Any:
        time.sleep(0.04)  # reading blocks the loop, as parsing many manifests does
        return fake_parse(doc)

    def writer() -> None:
        for i in range(10):
            (tmp_path / f"g{i}.yaml").write_text(GW.format(name=f"g{i}"))
            time.sleep(0.02)

    async with watching(tmp_path, parse=slow_parse, debounce_ms=20, step_ms=2) as w:
        before = len(w.sets)
        thread = threading.Thread(target=writer)
        thread.start()
        try:
            await w.until(lambda cs: len(cs.objects) == 10)
        finally:
            thread.join()
        # Without coalescing: 4 or more (each batch read while the next is written).
        assert len(w.sets) - before <= 2


# --- inotify (Linux): events alone, the periodic rescan pushed out of the way ----------

needs_inotify = pytest.mark.skipif(
    not __import__("propylon.sources.inotify", fromlist=["available"]).available(),
    reason="inotify is Linux-only",
)


@needs_inotify
async def test_inotify_reports_a_file_only_once_written(tmp_path: Path) -> None:
    async with watching(tmp_path, rescan_interval=60) as w:
        with (tmp_path / "a.yaml").open("w") as f:
            f.write("apiVersion: gateway.networking.k8s.io/v1\nkind: Gate")
            f.flush()
            # Time for a watcher that reacts to creation or partial writes to do so.
            await asyncio.sleep(0.05)
            f.write("way\nmetadata:\n  name: a\n")
        await w.until(lambda cs: set(cs.objects) == {key("a")})
        assert not any(cs.diagnostics for cs in w.sets), [cs.diagnostics for cs in w.sets]


@needs_inotify
async def test_inotify_new_and_moved_directories(tmp_path: Path) -> None:
    async with watching(tmp_path, rescan_interval=60) as w:
        sub = tmp_path / "team"
        sub.mkdir()
        (sub / "a.yaml").write_text(GW.format(name="a"))
        await w.until(lambda cs: set(cs.objects) == {key("a")})
        nested = sub / "nested"
        nested.mkdir()
        (nested / "b.yaml").write_text(GW.format(name="b"))  # watched since mkdir
        await w.until(lambda cs: set(cs.objects) == {key("a"), key("b")})
        os.rename(sub, tmp_path.parent / f"{tmp_path.name}-away")  # files go, no events
        await w.until(lambda cs: cs.objects == {})
