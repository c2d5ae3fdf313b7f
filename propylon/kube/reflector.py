"""List+watch of one kind into a local cache, the way client-go's reflector does it.

- List (paginated), then watch from the list's resourceVersion with bookmarks, so a
  reconnect resumes where it left off without a relist.
- 410 Gone (the version fell out of the API server's window): relist, and report
  what the new list lacks as deletions (synthetic deletes), so nothing is lost.
- Any other error: back off exponentially (with jitter), then resume or relist.
- 404 on the kind itself (its CRD is not installed): one log line, then wait until
  `retry()` is called (the CRD watch does that when the CRD appears).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2

from propylon.kube.api import WATCH_TIMEOUT_S, ApiError, Kind, KubeApi, Obj
from propylon.kube.hooks import NO_METRICS, KubeMetrics

log = logging.getLogger("propylon.kube")

BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 30.0

ObjId = tuple[str, str]  # (namespace, name)


@dataclass
class Event:
    """A change to one object of the reflected kind. `obj` is None for a deletion
    (then `old` is the last object seen)."""

    kind: Kind
    id: ObjId
    obj: Obj | None
    old: Obj | None = None


@dataclass
class ReflectorStats:
    lists: int = 0
    relists_gone: int = 0
    watch_restarts: int = 0
    errors: int = 0
    synthetic_deletes: int = 0
    events: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def obj_id(obj: Mapping[str, Any]) -> ObjId:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


class Reflector:
    """Keeps `objects` equal to the API server's objects of `kind`; calls `emit` with
    each change, and `on_synced` after each completed (re)list."""

    def __init__(
        self,
        api: KubeApi,
        kind: Kind,
        emit: Callable[[list[Event]], None],
        *,
        label_selector: str = "",
        field_selector: str = "",
        namespace: str = "",
        on_synced: Callable[[Reflector], None] | None = None,
        metrics: KubeMetrics = NO_METRICS,
    ) -> None:
        self.api = api
        self.metrics = metrics
        self.kind = kind
        self.objects: dict[ObjId, Obj] = {}
        self.resource_version = ""
        self.synced = False
        self.installed: bool | None = None  # None: not known yet
        self.stats = ReflectorStats()
        self._emit = emit
        self._on_synced = on_synced
        self._labels = label_selector
        self._fields = field_selector
        # Non-empty: only this namespace (RBAC may grant no more than that).
        self._namespace = namespace
        self._retry = asyncio.Event()

    def retry(self, kind: Kind | None = None) -> None:
        """Try a kind that was not installed again (possibly in another version)."""
        if kind is not None:
            self.kind = kind
        self._retry.set()

    async def run(self) -> None:
        backoff = BACKOFF_FIRST_S
        while True:
            try:
                if not self.resource_version:
                    await self._relist()
                await self._watch()
                backoff = BACKOFF_FIRST_S
                self.stats.watch_restarts += 1
                self.metrics.watch_restarted(self.kind.kind)
            except ApiError as exc:
                if exc.code == 410:
                    log.info("%s: watch expired (410 Gone), relisting", self.kind.plural)
                    self.stats.relists_gone += 1
                    self.resource_version = ""
                    continue
                if exc.code == 404:
                    await self._not_installed()
                    continue
                if exc.code == 403 and not self.synced:
                    # RBAC does not let us read this kind: go on without it (said once,
                    # loudly), and keep retrying in case the permission is granted.
                    log.error("%s: %s; going on without them", self.kind.plural, exc)
                    self._replace([])
                self.stats.errors += 1
                log.warning("%s: %s; retrying in %.1fs", self.kind.plural, exc, backoff)
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            except (httpx2.HTTPError, OSError, ValueError) as exc:
                self.stats.errors += 1
                log.warning(
                    "%s: %s: %s; retrying in %.1fs",
                    self.kind.plural,
                    type(exc).__name__,
                    exc,
                    backoff,
                )
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _not_installed(self) -> None:
        if self.installed is not False:
            log.info(
                "%s (%s) is not served by the API server (CRD not installed): skipped until it is",
                self.kind.kind,
                self.kind.api_version,
            )
        self.installed = False
        # Report "synced" (empty) so the first reconcile does not wait for this kind.
        self._replace([])
        self.resource_version = ""
        self._retry.clear()
        await self._retry.wait()

    async def _relist(self) -> None:
        items, rv = await self.api.list(
            self.kind,
            label_selector=self._labels,
            field_selector=self._fields,
            namespace=self._namespace,
        )
        self.stats.lists += 1
        self.metrics.watch_relisted(self.kind.kind)
        if self.installed is False:
            log.info("%s (%s) is now served: watching it", self.kind.kind, self.kind.api_version)
        self.installed = True
        self._replace(items)
        self.resource_version = rv

    def _replace(self, items: list[Obj]) -> None:
        """The list result becomes the cache; differences are events (deletes for what
        vanished while we were not watching)."""
        fresh = {obj_id(o): o for o in items}
        events: list[Event] = []
        for oid, last in self.objects.items():
            if oid not in fresh:
                events.append(Event(self.kind, oid, None, last))
                self.stats.synthetic_deletes += 1
        for oid, obj in fresh.items():
            seen = self.objects.get(oid)
            if seen is None or _rv(seen) != _rv(obj):
                events.append(Event(self.kind, oid, obj, seen))
        self.objects = fresh
        self.synced = True
        if events:
            self._emit(events)
        if self._on_synced is not None:
            self._on_synced(self)

    async def _watch(self) -> None:
        timeout = random.randint(*WATCH_TIMEOUT_S)
        async for type_, obj in self.api.watch(
            self.kind,
            self.resource_version,
            timeout_s=timeout,
            label_selector=self._labels,
            field_selector=self._fields,
            namespace=self._namespace,
        ):
            rv = _rv(obj)
            if type_ == "BOOKMARK":
                if rv:
                    self.resource_version = rv
                continue
            obj.setdefault("apiVersion", self.kind.api_version)
            obj.setdefault("kind", self.kind.kind)
            oid = obj_id(obj)
            self.stats.events += 1
            if type_ == "DELETED":
                gone = self.objects.pop(oid, None)
                self._emit([Event(self.kind, oid, None, gone or obj)])
            elif type_ in ("ADDED", "MODIFIED"):
                before = self.objects.get(oid)
                self.objects[oid] = obj
                self._emit([Event(self.kind, oid, obj, before)])
            if rv:
                self.resource_version = rv


def _rv(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


async def stop_tasks(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
