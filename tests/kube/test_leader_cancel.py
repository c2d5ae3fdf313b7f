"""A stop (task cancel) that arrives in the same loop turn as a renewal's answer still
stops the elector. In Python 3.11 `asyncio.wait_for` returns the finished inner result
and drops such a cancel, so an elector built on it went on renewing forever and the
operator never stopped (seen as a 300 s hang of test_leader under load)."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from kube_eventually import eventually

from propylon.kube.leader import LeaderElector, LeaseConfig


class HeldApi:
    """An in-memory Lease store whose reads wait for the test's answer while `hold`."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.hold = False
        self.pending: asyncio.Future[Any] | None = None
        self.waiting = asyncio.Event()

    async def get(self, kind: Any, name: str, namespace: str) -> Any:
        if self.hold:
            self.pending = asyncio.get_running_loop().create_future()
            self.waiting.set()
            return await self.pending
        return copy.deepcopy(self.lease)

    async def create(self, kind: Any, obj: dict[str, Any], namespace: str) -> Any:
        self.lease = copy.deepcopy(obj)
        return obj

    async def replace(self, kind: Any, obj: dict[str, Any]) -> Any:
        self.lease = copy.deepcopy(obj)
        return obj


async def test_a_cancel_that_meets_a_renewal_answer_stops_the_elector() -> None:
    api = HeldApi()
    config = LeaseConfig(
        "ns", "op", identity="a", lease_duration=2.0, renew_deadline=1.5, retry_period=0.05
    )
    elector = LeaderElector(api, config)  # type: ignore[arg-type]
    task = asyncio.create_task(elector.run())
    await eventually(elector.can_write, what="leading")
    api.hold = True
    await eventually(api.waiting.is_set, what="a renewal waiting for its answer")
    api.hold = False
    assert api.pending is not None
    # The answer and the cancel in one loop turn: the renewal finishes first.
    api.pending.set_result(copy.deepcopy(api.lease))
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert task in done, "the elector dropped the cancel and went on renewing"
    assert task.cancelled()
    assert not elector.can_write()
    assert api.lease is not None and api.lease["spec"]["holderIdentity"] is None  # released
