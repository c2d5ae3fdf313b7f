"""The pod list+watch loop: resumes from the last version, relists on 410 Gone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from devcluster.node.api import WatchExpired
from devcluster.node.informer import run_informer

Obj = dict[str, Any]


def pod(uid: str, version: str) -> Obj:
    return {"metadata": {"uid": uid, "resourceVersion": version}}


class Stop(Exception):
    pass


class FakeSource:
    """Scripted API server: each watch call plays the next script entry."""

    def __init__(self, lists: list[tuple[list[Obj], str]], watches: list[list[Any]]) -> None:
        self.lists = lists
        self.watches = watches
        self.calls: list[tuple[str, str | None]] = []

    async def list_pods(self, node_name: str) -> tuple[list[Obj], str]:
        self.calls.append(("list", None))
        return self.lists.pop(0)

    async def watch_pods(
        self, node_name: str, resource_version: str
    ) -> AsyncIterator[tuple[str, Obj]]:
        self.calls.append(("watch", resource_version))
        if not self.watches:
            raise Stop
        for step in self.watches.pop(0):
            if isinstance(step, BaseException):
                raise step
            yield step


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def sync(self, pods: list[Obj]) -> None:
        self.seen.append(("sync", ",".join(p["metadata"]["uid"] for p in pods)))

    def changed(self, pod: Obj) -> None:
        self.seen.append(("changed", pod["metadata"]["uid"]))

    def deleted(self, pod: Obj) -> None:
        self.seen.append(("deleted", pod["metadata"]["uid"]))


async def no_sleep(seconds: float) -> None:
    pass


async def test_resumes_after_bookmarks_and_broken_watches_and_relists_on_410() -> None:
    source = FakeSource(
        lists=[([pod("a", "5")], "10"), ([pod("b", "40")], "41")],
        watches=[
            [("ADDED", pod("c", "11")), ("BOOKMARK", {"metadata": {"resourceVersion": "20"}})],
            [("MODIFIED", pod("c", "21")), httpx2.ConnectError("API server restarting")],
            [("DELETED", pod("c", "22")), WatchExpired("22")],
        ],
    )
    recorder = Recorder()
    with pytest.raises(Stop):
        await run_informer(source, "node-1", recorder, sleep=no_sleep)
    assert source.calls == [
        ("list", None),
        ("watch", "10"),  # from the list's version
        ("watch", "20"),  # the watch ended: resume from the bookmark's version
        ("watch", "21"),  # broken connection: resume from the last event's
        ("list", None),  # 410 Gone: too old, list again
        ("watch", "41"),
    ]
    assert recorder.seen == [
        ("sync", "a"),
        ("changed", "c"),
        ("changed", "c"),
        ("deleted", "c"),
        ("sync", "b"),
    ]
