"""List+watch of the pods bound to this node, as client-go's reflector does it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from devcluster.node.api import API_ERRORS, WatchExpired

Obj = dict[str, Any]
log = logging.getLogger("devcluster.node")
RETRY_SECONDS = 1.0


class PodSource(Protocol):
    async def list_pods(self, node_name: str) -> tuple[list[Obj], str]: ...

    def watch_pods(
        self, node_name: str, resource_version: str
    ) -> AsyncIterator[tuple[str, Obj]]: ...


class PodHandler(Protocol):
    async def sync(self, pods: list[Obj]) -> None:
        """A full list: everything not in it is gone."""

    def changed(self, pod: Obj) -> None: ...

    def deleted(self, pod: Obj) -> None: ...


async def run_informer(
    source: PodSource,
    node_name: str,
    handler: PodHandler,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """List, then watch from the list's resourceVersion. A watch that ends or breaks (an
    API server restart) resumes from the last version seen, bookmarks included; 410 Gone
    means that version is too old: list again."""
    version: str | None = None
    while True:
        try:
            if version is None:
                pods, version = await source.list_pods(node_name)
                await handler.sync(pods)
            async for kind, obj in source.watch_pods(node_name, version):
                version = obj.get("metadata", {}).get("resourceVersion") or version
                if kind in ("ADDED", "MODIFIED"):
                    handler.changed(obj)
                elif kind == "DELETED":
                    handler.deleted(obj)
        except WatchExpired:
            log.info("pod watch: resourceVersion %s expired, listing again", version)
            version = None
        except API_ERRORS as error:
            log.warning("pod watch: %s; retrying", error)
            await sleep(RETRY_SECONDS)
