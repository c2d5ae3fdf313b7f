"""Leader election with a coordination.k8s.io/v1 Lease, with client-go's semantics.

- A candidate tries every `retry_period` (jittered) to take the Lease: it may when the
  Lease is free, or when its record has not changed for `lease_duration` as observed
  by this process's monotonic clock (never by comparing the holder's wall clock).
- The leader renews every `retry_period`; when no renewal succeeded for
  `renew_deadline`, it stops being leader at once.
- `holderIdentity` is pod name + uid; `leaseTransitions` counts changes of holder.
- On a clean stop, the Lease is released (empty holder) if it names this process, so a
  standby takes over without waiting out the lease duration.

`can_write()` is the fence for every write the leader makes: it is true only until
`renew_deadline` after the start of the last successful renewal. With renew_deadline
< lease_duration a standby cannot take the Lease before the old leader has stopped
writing (`lease_duration - renew_deadline` is the margin for clock rate differences
and writes in flight).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx2

from propylon.clock import format_micro_time, utc_now
from propylon.kube import kinds
from propylon.kube.api import ApiError, KubeApi, Obj

log = logging.getLogger("propylon.leader")

JITTER = 1.2  # client-go's JitterFactor for the retry period
# A clean stop waits this long for the Lease release (two requests) before giving up.
RELEASE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str
    name: str = "propylon-operator"
    identity: str = ""
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline > JITTER * self.retry_period:
            raise ValueError(
                f"leader election needs lease-duration > renew-deadline > {JITTER} x retry-period"
            )


class LeaderElector:
    def __init__(
        self,
        api: KubeApi,
        config: LeaseConfig,
        *,
        on_change: Callable[[bool], Awaitable[None] | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.config = config
        self._on_change = on_change
        self._clock = clock
        self._leader = False
        self._valid_until = 0.0  # clock time until which this process may write
        self._observed: Mapping[str, Any] | None = None  # the Lease spec last seen
        self._observed_at = 0.0
        self.transitions = 0
        self.became_leader = asyncio.Event()
        self.stopped_leading = asyncio.Event()

    # --- the fence ----------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self.can_write()

    @property
    def leading(self) -> bool:
        """Leader since the last change of leadership, whatever the fence says now."""
        return self._leader

    def can_write(self) -> bool:
        return self._leader and self._clock() < self._valid_until

    def remaining(self) -> float:
        """Seconds this process may still write without a successful renewal."""
        return max(0.0, self._valid_until - self._clock()) if self._leader else 0.0

    # --- the loop --------------------------------------------------------------------

    async def run(self) -> None:
        """Acquire, renew until that fails past the deadline, then try again; forever."""
        try:
            while True:
                await self._acquire()
                await self._renew_until_lost()
        finally:
            await self._set_leader(False)
            # Also when a late renewal had just cost the leadership: the Lease still
            # names this process, and a standby would wait out its whole duration.
            # (The release is a replace at the read resourceVersion: it cannot undo
            # another's takeover.)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._release(), timeout=RELEASE_TIMEOUT_S)

    async def _acquire(self) -> None:
        while True:
            if await self._try_acquire_or_renew():
                await self._set_leader(True)
                log.info(
                    "%s: leading (Lease %s/%s)",
                    self.config.identity,
                    self.config.namespace,
                    self.config.name,
                )
                return
            await asyncio.sleep(self.config.retry_period * (1 + random.random() * (JITTER - 1)))

    async def _renew_until_lost(self) -> None:
        cfg = self.config
        while True:
            await asyncio.sleep(cfg.retry_period)
            deadline = self._valid_until
            renewed = False
            while self._clock() < deadline:
                try:
                    # asyncio.timeout, not wait_for: in Python 3.11 wait_for drops a cancel
                    # that arrives as the request finishes, and the elector never stops.
                    async with asyncio.timeout(max(0.05, deadline - self._clock())):
                        renewed = await self._try_acquire_or_renew()
                except TimeoutError:
                    renewed = False
                if renewed:
                    break
                await asyncio.sleep(min(cfg.retry_period / 4, max(0.0, deadline - self._clock())))
            if not renewed:
                log.warning(
                    "%s: failed to renew the Lease within %.1fs: no longer leading",
                    cfg.identity,
                    cfg.renew_deadline,
                )
                await self._set_leader(False)
                return

    async def _set_leader(self, leader: bool) -> None:
        if leader == self._leader:
            return
        self._leader = leader
        if leader:
            self.stopped_leading.clear()
            self.became_leader.set()
        else:
            self._valid_until = 0.0
            self.became_leader.clear()
            self.stopped_leading.set()
        if self._on_change is not None:
            result = self._on_change(leader)
            if result is not None:
                await result

    async def _try_acquire_or_renew(self) -> bool:
        cfg = self.config
        started = self._clock()
        now = utc_now()
        try:
            lease = await self.api.get(kinds.LEASE, cfg.name, cfg.namespace)
            if lease is None:
                await self.api.create(kinds.LEASE, self._new_lease(now), cfg.namespace)
                self._record_success(started, 0)
                return True
            spec = lease.get("spec") or {}
            if spec != self._observed:
                self._observed, self._observed_at = dict(spec), self._clock()
            holder = spec.get("holderIdentity") or ""
            duration = float(spec.get("leaseDurationSeconds") or cfg.lease_duration)
            if holder and holder != cfg.identity and self._observed_at + duration > self._clock():
                return False  # held by another, and not expired in our observation
            transitions = int(spec.get("leaseTransitions") or 0)
            new_spec: dict[str, Any] = {
                "holderIdentity": cfg.identity,
                "leaseDurationSeconds": int(cfg.lease_duration),
                "renewTime": format_micro_time(now),
                "acquireTime": spec.get("acquireTime")
                if holder == cfg.identity
                else format_micro_time(now),
                "leaseTransitions": transitions if holder == cfg.identity else transitions + 1,
            }
            updated = dict(lease)
            updated["spec"] = new_spec
            await self.api.replace(kinds.LEASE, updated)  # 409 if someone else got there
            self._record_success(started, int(new_spec["leaseTransitions"]))
            return True
        except ApiError as exc:
            if exc.code != 409:
                log.warning("%s: Lease %s/%s: %s", cfg.identity, cfg.namespace, cfg.name, exc)
            return False
        except (httpx2.HTTPError, OSError) as exc:
            log.warning(
                "%s: Lease %s/%s: %s: %s",
                cfg.identity,
                cfg.namespace,
                cfg.name,
                type(exc).__name__,
                exc,
            )
            return False

    def _record_success(self, started: float, transitions: int) -> None:
        # Counted from when the request was sent: the API server may have stored it at
        # any moment after that.
        self._valid_until = started + self.config.renew_deadline
        self._observed = None
        self.transitions = transitions

    def _new_lease(self, now: datetime) -> Obj:
        cfg = self.config
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": cfg.name, "namespace": cfg.namespace},
            "spec": {
                "holderIdentity": cfg.identity,
                "leaseDurationSeconds": int(cfg.lease_duration),
                "acquireTime": format_micro_time(now),
                "renewTime": format_micro_time(now),
                "leaseTransitions": 0,
            },
        }

    async def _release(self) -> None:
        cfg = self.config
        lease = await self.api.get(kinds.LEASE, cfg.name, cfg.namespace)
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != cfg.identity:
            return
        spec = dict(lease.get("spec") or {})
        spec.update(
            {
                "holderIdentity": None,
                "leaseDurationSeconds": 1,
                "renewTime": format_micro_time(utc_now()),
            }
        )
        lease["spec"] = spec
        await self.api.replace(kinds.LEASE, lease)
        log.info("%s: released the Lease", cfg.identity)
