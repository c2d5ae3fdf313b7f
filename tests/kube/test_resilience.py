"""The operator across kube-apiserver and etcd restarts: it re-converges, writes what
changed meanwhile, and nothing flaps (transition times, addresses, generated objects)."""

from __future__ import annotations

from typing import Any

from kube_controlplane import ControlPlane
from kube_eventually import eventually
from operators import pool_and_objects, running_operator
from test_failover import ROUTES

from propylon.kube import kinds
from propylon.kube.api import KubeApi


def _accepted(route: dict[str, Any] | None) -> dict[str, Any] | None:
    for parent in ((route or {}).get("status") or {}).get("parents") or ():
        for cond in parent.get("conditions") or ():
            if cond.get("type") == "Accepted":
                return dict(cond)
    return None


async def test_apiserver_and_etcd_restarts(
    api: KubeApi, controlplane: ControlPlane, namespace: str
) -> None:
    with pool_and_objects(
        controlplane,
        ROUTES.format(ns=namespace),
        pool=f"{namespace}-pool",
        cidr="198.19.203.0/24",
        gateway_class=f"{namespace}-class",
    ):
        async with running_operator(controlplane.kubeconfig, namespace) as operator:

            async def settled() -> tuple[dict[str, Any], dict[str, Any]] | None:
                route = await api.get(kinds.HTTP_ROUTE, "r", namespace)
                gw = await api.get(kinds.GATEWAY, "gw", namespace)
                cond = _accepted(route)
                if not (route and gw and cond and cond["observedGeneration"] == 1):
                    return None
                if not (gw.get("status") or {}).get("addresses"):
                    return None
                return route, gw

            route, gw = await eventually(settled, what="first convergence")
            before_cond = _accepted(route)
            before_addresses = gw["status"]["addresses"]

            for process in ("kube-apiserver", "etcd"):
                controlplane.restart(process)

                async def caught_up(gen: int) -> dict[str, Any] | None:
                    r = await api.get(kinds.HTTP_ROUTE, "r", namespace)
                    c = _accepted(r)
                    return r if c and c["observedGeneration"] == gen else None

                # A change made right after the restart is picked up and written.
                current = await api.get(kinds.HTTP_ROUTE, "r", namespace)
                assert current is not None
                gen = current["metadata"]["generation"] + 1
                await api.patch(
                    kinds.HTTP_ROUTE,
                    "r",
                    {"spec": {"hostnames": [f"after-{process}.example"]}},
                    namespace=namespace,
                )
                route = await eventually(
                    lambda gen=gen: caught_up(gen),
                    timeout=60,
                    what=f"status after {process} restart",
                )
                cond = _accepted(route)
                assert cond is not None
                # Same status (True): the transition time did not move (no flap).
                assert cond["lastTransitionTime"] == before_cond["lastTransitionTime"]
                gw = await api.get(kinds.GATEWAY, "gw", namespace)
                assert gw is not None and gw["status"]["addresses"] == before_addresses
                services = [
                    s
                    for s in (await api.list(kinds.SERVICE))[0]
                    if s["metadata"]["namespace"] == namespace
                ]
                assert [s["metadata"]["name"] for s in services] == ["cilium-gateway-gw"]
            assert operator.source.stats["errors"] > 0  # it did see the outages
