"""The status sink of Kubernetes mode: statuses through the status subresource.

- Only on change: the status the core built, with `lastTransitionTime` kept from the
  object's current status where a condition did not change, is compared with what the
  API server has; equal means no request.
- Optimistic concurrency: each write is a merge patch carrying the resourceVersion it
  was computed from; 409 Conflict re-reads the object and recomputes (a few times).
- Route statuses are shared: only `parents` entries with our controllerName are ours,
  the other controllers' entries are kept.
- Never a hot loop: a key is looked at again only when the core's status or the
  object's status changes, and a write whose result the API server then defaults
  differently is remembered (what we sent -> what it stored) and not repeated. Putting
  back a status someone else keeps overwriting is slowed down (a fight, not a loop).
- Fenced: nothing is written unless `can_write()` (the leader fence) says so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import httpx2

from propylon.clock import utc_now
from propylon.kube import kinds
from propylon.kube.api import ApiError, KubeApi, Obj
from propylon.kube.hooks import NO_METRICS, KubeMetrics
from propylon.resources import ObjectKey

log = logging.getLogger("propylon.status")

ROUTE_KINDS = frozenset({"HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "UDPRoute"})
CONFLICT_RETRIES = 5
# At most this many writes of one key in RATE_WINDOW_S; beyond, the key waits.
RATE_WRITES = 5
RATE_WINDOW_S = 30.0
BACKOFF_S = 1.0
# Writes in flight at once (the API server handles them in parallel; one at a time,
# 3000 route statuses took ~60 s here).
WORKERS = 4
# Longest a write may take when no leader fence bounds it.
WRITE_TIMEOUT_S = 10.0
BACKOFF_MAX_S = 60.0
# A build's statuses are written this long after it: the API server's work on our
# patches (and the watch events they fan out) then falls after the agents made the change
# live, not on the same cores at the same moment; a burst of builds is written once. (The
# operator's leader builds 20 ms after a change: its patches start ~50 ms after it.)
SETTLE_S = 0.03


# (previous status, new status, now) -> new status with lastTransitionTime filled in
# (`propylon.state.merge_conditions`, the same rule as standalone).
MergeConditions = Callable[[Mapping[str, Any] | None, Mapping[str, Any], datetime], dict[str, Any]]


def desired_status(
    current: Mapping[str, Any],
    built: Mapping[str, Any] | None,
    kind: str,
    controller: str,
    now: datetime,
    merge_conditions: MergeConditions,
) -> dict[str, Any]:
    """The status to store: `built` with transition times kept from `current`, and for
    routes the other controllers' parent entries kept. `built` None: drop ours."""
    if kind in ROUTE_KINDS:
        theirs = [
            p
            for p in current.get("parents") or ()
            if isinstance(p, Mapping) and p.get("controllerName") != controller
        ]
        ours = merge_conditions(current, built, now) if built is not None else {}
        out = {k: v for k, v in current.items() if k != "parents"}
        out.update({k: v for k, v in ours.items() if k != "parents"})
        out["parents"] = [*ours.get("parents", []), *theirs]
        return out
    if built is None:
        return dict(current)
    return merge_conditions(current, built, now)


def merge_patch(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch turning `current` into `wanted` at the top level of status
    (lists and nested objects are replaced whole; vanished keys are nulled)."""
    patch: dict[str, Any] = {k: v for k, v in wanted.items() if current.get(k) != v}
    for key in current:
        if key not in wanted:
            patch[key] = None
    return patch


class StatusSink:
    def __init__(
        self,
        api: KubeApi,
        raw: Callable[[ObjectKey], Obj | None],
        *,
        controller: str,
        merge_conditions: MergeConditions,
        can_write: Callable[[], bool] = lambda: True,
        write_budget: Callable[[], float] = lambda: WRITE_TIMEOUT_S,
        now: Callable[[], datetime] = utc_now,
        metrics: KubeMetrics = NO_METRICS,
    ) -> None:
        self.api = api
        self._budget = write_budget
        self.metrics = metrics
        self._raw = raw
        self._controller = controller
        self._merge = merge_conditions
        self._can_write = can_write
        self._now = now
        self._built: dict[ObjectKey, Mapping[str, Any] | None] = {}
        self._dirty: dict[ObjectKey, None] = {}  # ordered: first come, first written
        self._inflight: set[ObjectKey] = set()
        self._wake = asyncio.Event()
        # key -> (status we sent, status the API server answered with)
        self._sent: dict[ObjectKey, tuple[dict[str, Any], Any]] = {}
        self._recent: dict[ObjectKey, deque[float]] = {}
        self._failures: dict[ObjectKey, int] = {}
        self.writes = 0
        self.conflicts = 0
        self.errors = 0
        self.idle = asyncio.Event()
        self._settling: asyncio.TimerHandle | None = None

    # --- input -----------------------------------------------------------------------

    def update(
        self, statuses: Mapping[ObjectKey, Mapping[str, Any]], changed: Iterable[ObjectKey] | None
    ) -> None:
        """The core's statuses (no transition times). `changed`: the keys that may
        differ from the previous call's (None: all)."""
        keys = set(statuses) | set(self._built) if changed is None else set(changed)
        for key in keys:
            if key.kind not in kinds.WITH_STATUS:
                continue
            built = statuses.get(key)
            if built is None and key.kind not in ROUTE_KINDS:
                self._built.pop(key, None)
                continue
            if self._built.get(key) != built or key not in self._built:
                self._built[key] = built
                self._dirty[key] = None
        if self._dirty:
            self.idle.clear()
            self._wake_after_settling()

    def _wake_after_settling(self) -> None:
        if self._settling is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop yet: the writer starts with what is dirty
            self._wake.set()
            return
        self._settling = loop.call_later(SETTLE_S, self._settled)

    def _settled(self) -> None:
        self._settling = None
        self._wake.set()

    def object_changed(self, key: ObjectKey) -> None:
        """The API server's copy changed (e.g. someone else wrote its status)."""
        if key in self._built and key not in self._failures:
            self._dirty[key] = None
            self.idle.clear()
            self._wake.set()

    def resync(self) -> None:
        """Look at every key again (on becoming leader)."""
        self._dirty.update(dict.fromkeys(self._built))
        self._sent.clear()
        if self._dirty:
            self.idle.clear()
            self._wake.set()

    # --- the writer ------------------------------------------------------------------

    async def run(self) -> None:
        """WORKERS writers, each taking the oldest dirty key not being written."""
        workers = [asyncio.create_task(self._worker()) for _ in range(WORKERS)]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()

    def _next(self) -> ObjectKey | None:
        for key in self._dirty:
            if key not in self._inflight:
                del self._dirty[key]
                return key
        return None

    async def _worker(self) -> None:
        while True:
            key = self._next() if self._can_write() else None
            if key is None:
                if not self._dirty and not self._inflight:
                    self.idle.set()
                self._wake.clear()
                if self._dirty and not self._can_write():
                    await asyncio.sleep(0.2)  # not the leader (yet)
                else:
                    await self._wake.wait()
                continue
            self._inflight.add(key)
            try:
                # Never wait on a write past the leader fence (a stalled request must
                # not land after a standby may have taken over). A timeout scope, not
                # wait_for: no task per write (its teardown showed in the profile).
                async with asyncio.timeout(max(0.01, self._budget())):
                    await self._write(key)
                self._failures.pop(key, None)
            except (ApiError, httpx2.HTTPError, OSError, TimeoutError) as exc:
                self.errors += 1
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                wait = min(BACKOFF_S * 2 ** (failures - 1), BACKOFF_MAX_S)
                log.warning(
                    "status of %s: %s; retrying in %.0fs", key, str(exc) or type(exc).__name__, wait
                )
                asyncio.get_running_loop().call_later(wait, self._requeue, key)
            finally:
                self._inflight.discard(key)
                if self._dirty:
                    self._wake.set()  # a key skipped while in flight, or more work

    def _requeue(self, key: ObjectKey) -> None:
        self._dirty[key] = None
        self.idle.clear()
        self._wake.set()

    def _rate_wait(self, key: ObjectKey) -> float:
        recent = self._recent.get(key)
        if recent is None:
            return 0.0
        now = time.monotonic()
        while recent and recent[0] < now - RATE_WINDOW_S:
            recent.popleft()
        if len(recent) < RATE_WRITES:
            return 0.0
        return recent[0] + RATE_WINDOW_S - now

    async def _write(self, key: ObjectKey) -> None:
        kind = kinds.WITH_STATUS[key.kind]
        obj = self._raw(key)
        for _ in range(CONFLICT_RETRIES):
            if obj is None or key not in self._built:
                if obj is None and self._built.get(key, {}) is None:
                    del self._built[key]  # a route gone from the cluster and from us
                return
            built = self._built[key]
            current = obj.get("status") or {}
            wanted = desired_status(
                current, built, key.kind, self._controller, self._now(), self._merge
            )
            if wanted == current:
                return
            sent = self._sent.get(key)
            if sent is not None and sent[0] == wanted and sent[1] == current:
                return  # the API server stores what we sent this way: nothing to do
            if not self._can_write():
                self._dirty[key] = None
                return
            if sent is not None and sent[0] == wanted:
                # Putting back what we wrote before: someone else keeps changing it.
                # Do it, but not faster than RATE_WRITES per RATE_WINDOW_S.
                wait = self._rate_wait(key)
                if wait > 0:
                    asyncio.get_running_loop().call_later(wait, self._requeue, key)
                    return
                self._recent.setdefault(key, deque()).append(time.monotonic())
            meta = obj.get("metadata") or {}
            patch = {
                "metadata": {"resourceVersion": meta.get("resourceVersion")},
                "status": merge_patch(current, wanted),
            }
            try:
                answer = await self.api.patch(
                    kind, key.name, patch, namespace=key.namespace, sub="status"
                )
            except ApiError as exc:
                if exc.code == 404:
                    return
                if exc.code != 409:
                    raise
                self.conflicts += 1
                self.metrics.status_conflicted(key.kind)
                obj = await self.api.get(kind, key.name, key.namespace)
                continue
            self.writes += 1
            self.metrics.status_written(key.kind)
            self._sent[key] = (wanted, answer.get("status") or {})
            return
        log.warning("status of %s: still conflicting after %d tries; later", key, CONFLICT_RETRIES)
        self._requeue(key)
