"""Lease leader election against a real API server: one leader, takeover when the
leader is partitioned or stops, and never two writers at once."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
from kube_eventually import eventually

from propylon.kube import kinds
from propylon.kube.api import KubeApi
from propylon.kube.leader import LeaderElector, LeaseConfig

FAST = {"lease_duration": 2.0, "renew_deadline": 1.5, "retry_period": 0.3}


class Partitionable:
    """A KubeApi whose requests fail while `partitioned` (a network partition)."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api
        self.partitioned = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.api, name)
        if not callable(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.partitioned:
                raise httpx2.ConnectError("partitioned")
            return await attr(*args, **kwargs)

        return call


class Overlap:
    """Samples both electors' write fences on one clock; records any moment where
    both would write."""

    def __init__(self, *electors: LeaderElector) -> None:
        self.electors = electors
        self.both = 0
        self.samples = 0

    async def run(self) -> None:
        while True:
            writers = [e for e in self.electors if e.can_write()]
            self.samples += 1
            if len(writers) > 1:
                self.both += 1
            await asyncio.sleep(0.002)


def _elector(api: Any, namespace: str, identity: str) -> LeaderElector:
    return LeaderElector(api, LeaseConfig(namespace, "op", identity=identity, **FAST))


async def test_one_leader_and_takeover_on_partition(api: KubeApi, namespace: str) -> None:
    a_api, b_api = Partitionable(api), Partitionable(api)
    a, b = _elector(a_api, namespace, "a"), _elector(b_api, namespace, "b")
    overlap = Overlap(a, b)
    tasks = [asyncio.create_task(x) for x in (a.run(), overlap.run())]
    try:
        await eventually(a.can_write, what="a leads")
        tasks.append(asyncio.create_task(b.run()))
        # b stays a standby while a renews.
        await asyncio.sleep(3 * FAST["lease_duration"])
        assert a.can_write() and not b.can_write()

        a_api.partitioned = True
        # a stops, b takes over, never both at once (`overlap`, below); how soon is a
        # benchmark's business: under load any bound here is a flake.
        await eventually(lambda: not a.can_write(), what="a stops writing")
        await eventually(b.can_write, timeout=30, what="b takes over")
        lease = await api.get(kinds.LEASE, "op", namespace)
        assert lease is not None
        assert lease["spec"]["holderIdentity"] == "b"
        assert lease["spec"]["leaseTransitions"] == 1

        a_api.partitioned = False  # a comes back: b keeps leading
        await asyncio.sleep(3 * FAST["retry_period"])
        assert b.can_write() and not a.can_write()
        assert overlap.samples > 100 and overlap.both == 0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_clean_stop_releases_the_lease(api: KubeApi, namespace: str) -> None:
    a, b = _elector(api, namespace, "a"), _elector(api, namespace, "b")
    overlap = Overlap(a, b)
    ta = asyncio.create_task(a.run())
    to = asyncio.create_task(overlap.run())
    await eventually(a.can_write, what="a leads")
    tb = asyncio.create_task(b.run())
    try:
        await asyncio.sleep(2 * FAST["retry_period"])
        ta.cancel()
        await asyncio.gather(ta, return_exceptions=True)
        # Released on the way out: the Lease no longer names `a` (so nobody waits out
        # its duration), whether or not `b` already took it.
        lease = await api.get(kinds.LEASE, "op", namespace)
        assert lease is not None
        assert lease["spec"].get("holderIdentity") in (None, "", "b")
        await eventually(b.can_write, what="b takes over")
        assert overlap.both == 0
    finally:
        for task in (tb, to):
            task.cancel()
        await asyncio.gather(tb, to, return_exceptions=True)


class RenewalsLost:
    """A KubeApi whose writes naming a holder fail while `lost` (the renewals of a leader
    late under load); the release (no holder) still goes through."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api
        self.lost = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.api, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.lost and name == "replace" and args[1]["spec"].get("holderIdentity"):
                raise httpx2.ConnectError("renewal lost")
            return await attr(*args, **kwargs)

        return call if callable(attr) else attr


async def test_a_stop_after_a_lost_renewal_still_releases_the_lease(
    api: KubeApi, namespace: str
) -> None:
    """The Lease still names a process whose renewals failed past the deadline (it no
    longer leads); stopped then, it releases the Lease, or a standby would wait out the
    whole lease duration."""
    flaky = RenewalsLost(api)
    a = _elector(flaky, namespace, "a")
    task = asyncio.create_task(a.run())
    try:
        await eventually(a.can_write, what="a leads")
        flaky.lost = True
        await eventually(lambda: not a.leading, what="a gives up after its renew deadline")
        lease = await api.get(kinds.LEASE, "op", namespace)
        assert lease is not None and lease["spec"]["holderIdentity"] == "a"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    lease = await api.get(kinds.LEASE, "op", namespace)
    assert lease is not None
    assert lease["spec"].get("holderIdentity") in (None, "")


def test_config_refuses_a_renew_deadline_past_the_lease() -> None:
    import pytest

    with pytest.raises(ValueError, match="lease-duration > renew-deadline"):
        LeaseConfig("ns", lease_duration=10, renew_deadline=10, retry_period=2)
