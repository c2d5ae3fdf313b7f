"""Two operator replicas: one writes; when the leader loses its Lease (its renewals
cut off while its other requests still work), it stops writing on its own and the
standby takes over within the lease duration. Their writes never interleave."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from kube_controlplane import ControlPlane
from kube_eventually import eventually
from operators import FAST_LEASE, pool_and_objects, running_operator
from test_leader import Overlap, Partitionable

from propylon.kube import kinds
from propylon.kube.api import KubeApi

ROUTES = """apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: {ns}-class}}
spec: {{controllerName: io.cilium/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: {ns}}}
spec:
  gatewayClassName: {ns}-class
  listeners: [{{name: web, protocol: HTTP, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: {ns}}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [h0.example]
"""


class WriteLog:
    """Records when each replica's API sends a write (Lease and Event writes aside)."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, str]] = []

    def wrap(self, api: KubeApi, name: str) -> None:
        for verb in ("patch", "create", "replace", "delete"):
            original = getattr(api, verb)

            async def call(*args: Any, _o: Any = original, **kwargs: Any) -> Any:
                kind = args[0]
                if kind not in (kinds.LEASE, kinds.EVENT):
                    self.writes.append((time.monotonic(), name))
                return await _o(*args, **kwargs)

            setattr(api, verb, call)

    def of(self, name: str) -> list[float]:
        return [t for t, n in self.writes if n == name]


async def _observed(api: KubeApi, namespace: str) -> tuple[int, int]:
    route = await api.get(kinds.HTTP_ROUTE, "r", namespace) or {}
    gen = int(route.get("metadata", {}).get("generation", 0))
    observed = 0
    for parent in (route.get("status") or {}).get("parents") or ():
        for cond in parent.get("conditions") or ():
            if cond.get("type") == "Accepted":
                observed = int(cond.get("observedGeneration", 0))
    return gen, observed


async def test_standby_takes_over_and_writes_never_interleave(
    api: KubeApi, controlplane: ControlPlane, namespace: str
) -> None:
    log = WriteLog()
    with pool_and_objects(
        controlplane,
        ROUTES.format(ns=namespace),
        pool=f"{namespace}-pool",
        cidr="198.19.202.0/24",
        gateway_class=f"{namespace}-class",
    ):
        async with running_operator(controlplane.kubeconfig, namespace, identity="a") as a:
            log.wrap(a.api, "a")
            assert a.elector is not None
            await eventually(a.elector.can_write, what="a leads")

            async def caught_up() -> bool:
                gen, observed = await _observed(api, namespace)
                return gen > 0 and gen == observed

            await eventually(caught_up, what="a wrote the route status")
            async with running_operator(controlplane.kubeconfig, namespace, identity="b") as b:
                log.wrap(b.api, "b")
                assert b.elector is not None
                overlap = Overlap(a.elector, b.elector)
                sampler = asyncio.create_task(overlap.run())
                await eventually(lambda: b.source.synced.is_set(), what="b synced")
                assert not b.can_write()
                # A standby keeps its store current but builds nothing (no CPU per change).
                assert b.reconciles == 0 and b.result is None

                # Cut a's Lease renewals only: its watches and writes still work, so
                # only its own fence can stop it from writing.
                a.elector.api = Partitionable(a.api)  # type: ignore[assignment]
                a.elector.api.partitioned = True  # type: ignore[attr-defined]
                cut = time.monotonic()
                stop_changes = asyncio.Event()

                async def keep_changing() -> None:
                    i = 0
                    while not stop_changes.is_set():
                        i += 1
                        await api.patch(
                            kinds.HTTP_ROUTE,
                            "r",
                            {"spec": {"hostnames": [f"h{i}.example"]}},
                            namespace=namespace,
                        )
                        await asyncio.sleep(0.1)

                changer = asyncio.create_task(keep_changing())
                await eventually(b.can_write, timeout=10, what="b takes over")
                took = time.monotonic() - cut
                await asyncio.sleep(1.0)
                stop_changes.set()
                await changer
                await eventually(caught_up, what="b writes the latest generation")
                sampler.cancel()

                # How soon b takes over is a benchmark's business; here: never both.
                assert overlap.both == 0, f"both wrote (b took over after {took:.2f} s)"
                a_writes, b_writes = log.of("a"), log.of("b")
                assert b_writes, "b wrote after taking over"
                assert b.reconciles >= 1
                # Every write of a happened before the first write of b.
                assert max(a_writes) < min(b_writes)
                # a stopped writing within its renew deadline of the cut.
                late = [t for t in a_writes if t > cut + FAST_LEASE["renew_deadline"] + 0.2]
                assert not late
