"""ListenerSets in Kubernetes mode: the operator watches XListenerSet (the control
plane here serves Gateway API v1.4.1's experimental CRDs), writes its status through
the status subresource and routes attach through it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from kube_controlplane import ControlPlane
from kube_eventually import eventually
from operators import pool_and_objects, running_operator

from propylon.kube import kinds
from propylon.kube.api import KubeApi
from propylon.kube.nodereport import REPORT_LABEL, STATE_ANNOTATION, report_name

MANIFESTS = """apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: {cls}}}
spec: {{controllerName: io.cilium/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: {ns}}}
spec:
  gatewayClassName: {cls}
  allowedListeners: {{namespaces: {{from: Same}}}}
  listeners:
    - {{name: web, protocol: HTTP, port: 80, hostname: gw.example.com}}
---
apiVersion: gateway.networking.x-k8s.io/v1alpha1
kind: XListenerSet
metadata: {{name: extra, namespace: {ns}}}
spec:
  parentRef: {{name: gw}}
  listeners:
    - {{name: one, protocol: HTTP, port: 80, hostname: one.example.com}}
    - {{name: clash, protocol: HTTP, port: 80, hostname: gw.example.com}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: {ns}}}
spec:
  parentRefs:
    - {{group: gateway.networking.x-k8s.io, kind: XListenerSet, name: extra, sectionName: one}}
  rules: [{{backendRefs: [{{name: svc, port: 80}}]}}]
"""


@pytest.fixture
def listener_set(controlplane: ControlPlane, namespace: str) -> Any:
    cls = f"{namespace}-class"
    manifests = MANIFESTS.format(cls=cls, ns=namespace)
    with pool_and_objects(
        controlplane, manifests, pool=f"{namespace}-pool", cidr="198.19.204.0/24", gateway_class=cls
    ):
        yield cls


def _condition(obj: dict[str, Any] | None, type_: str) -> tuple[str, str] | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or ():
        if cond.get("type") == type_:
            return cond["status"], cond["reason"]
    return None


async def test_operator_writes_x_listener_set_status(
    api: KubeApi, controlplane: ControlPlane, namespace: str, listener_set: str
) -> None:
    async with running_operator(controlplane.kubeconfig, namespace) as operator:

        async def programmed() -> dict[str, Any] | None:
            ls = await api.get(kinds.X_LISTENER_SET, "extra", namespace)
            return ls if _condition(ls, "Programmed") == ("True", "Programmed") else None

        ls = await eventually(programmed, what="XListenerSet Programmed")
        # One listener loses to the Gateway's own: accepted, saying which is not valid.
        assert _condition(ls, "Accepted") == ("True", "ListenersNotValid")
        entries = {e["name"]: e for e in ls["status"]["listeners"]}
        assert entries["one"]["attachedRoutes"] == 1
        clash = {c["type"]: (c["status"], c["reason"]) for c in entries["clash"]["conditions"]}
        assert clash["Conflicted"] == ("True", "HostnameConflict")
        assert clash["Accepted"] == ("False", "HostnameConflict")
        for cond in ls["status"]["conditions"]:
            assert cond["observedGeneration"] == ls["metadata"]["generation"]

        # Each object's status is its own write: the route's may land after the set's.
        async def route_status() -> dict[str, Any] | None:
            route = await api.get(kinds.HTTP_ROUTE, "r", namespace)
            return route if route and (route.get("status") or {}).get("parents") else None

        route = await eventually(route_status, what="the HTTPRoute's status")
        (parent,) = route["status"]["parents"]
        assert parent["parentRef"]["kind"] == "XListenerSet"
        assert parent["conditions"][0]["status"] == "True"

        # The Gateway stops allowing ListenerSets: NotAllowed, written back.
        controlplane.kubectl(
            "patch",
            "gateway",
            "gw",
            "-n",
            namespace,
            "--type=merge",
            "-p",
            '{"spec":{"allowedListeners":{"namespaces":{"from":"None"}}}}',
        )

        async def not_allowed() -> dict[str, Any] | None:
            ls = await api.get(kinds.X_LISTENER_SET, "extra", namespace)
            return ls if _condition(ls, "Accepted") == ("False", "NotAllowed") else None

        await eventually(not_allowed, what="XListenerSet NotAllowed")
        await eventually(lambda: operator.statuses.idle.is_set(), what="status writer idle")
        row = controlplane.kubectl("get", "xlistenerset", "extra", "-n", namespace, "--no-headers")
        assert row.split()[:3] == ["extra", "False", "False"]


async def test_programmed_follows_the_gateways_agent_ack(
    api: KubeApi, controlplane: ControlPlane, namespace: str, listener_set: str
) -> None:
    async with running_operator(controlplane.kubeconfig, namespace, require_agent_ack=True):

        async def programmed() -> tuple[str, str] | None:
            found = _condition(
                await api.get(kinds.X_LISTENER_SET, "extra", namespace), "Programmed"
            )
            return found if found and found[0] != "Unknown" else None

        # No agent has reported the Gateway's listeners: neither is programmed.
        assert await eventually(programmed, what="Programmed written") == ("False", "Pending")
        name = report_name("node-x")
        state = json.dumps({"acked": {f"{namespace}/gw": 1}})
        await api.create(
            kinds.LEASE,
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": {REPORT_LABEL: "true"},
                    "annotations": {STATE_ANNOTATION: state},
                },
                "spec": {
                    "holderIdentity": "node-x",
                    "leaseDurationSeconds": 40,
                    "renewTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                },
            },
            namespace,
        )

        async def acked() -> bool:
            return await programmed() == ("True", "Programmed")

        await eventually(acked, what="Programmed True once the Gateway is acknowledged")
