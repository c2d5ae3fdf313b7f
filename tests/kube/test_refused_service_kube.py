"""A generated Service the API server refuses shows in its Gateway's status, against a
real API server: a class config asking for `ipFamilies: [IPv6]` on a cluster whose
Services are IPv4 only (`spec.ipFamilies[0]: ... not configured on this cluster`) makes
the Gateway `Programmed=False` (`Invalid`) with the API server's words, instead of only a
line in the operator's log; once the config asks for IPv4 the Service is created and
the Gateway is programmed again."""

from __future__ import annotations

from typing import Any

from kube_controlplane import ControlPlane
from kube_eventually import eventually
from operators import pool_and_objects, running_operator

from propylon.kube import kinds
from propylon.kube.api import KubeApi

OBJECTS = """apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: {ns}-families}}
spec:
  controllerName: io.cilium/gateway-controller
  parametersRef: {{group: cilium.io, kind: CiliumGatewayClassConfig, name: families,
                  namespace: {ns}}}
---
apiVersion: cilium.io/v2alpha1
kind: CiliumGatewayClassConfig
metadata: {{name: families, namespace: {ns}}}
spec:
  service: {{ipFamilies: [{family}], ipFamilyPolicy: SingleStack}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: {ns}}}
spec:
  gatewayClassName: {ns}-families
  listeners: [{{name: web, protocol: HTTP, port: 8080}}]
"""


async def _programmed(api: KubeApi, namespace: str) -> dict[str, Any]:
    gw = await api.get(kinds.GATEWAY, "gw", namespace) or {}
    for cond in (gw.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Programmed":
            return dict(cond)
    return {}


async def test_a_refused_service_is_in_the_gateway_status(
    api: KubeApi, controlplane: ControlPlane, namespace: str
) -> None:
    with pool_and_objects(
        controlplane,
        OBJECTS.format(ns=namespace, family="IPv6"),
        pool=f"{namespace}-pool",
        cidr="127.37.0.0/24",
        gateway_class=f"{namespace}-families",
    ):
        async with running_operator(controlplane.kubeconfig, namespace):

            async def refused() -> dict[str, Any] | None:
                cond = await _programmed(api, namespace)
                return cond if cond.get("status") == "False" else None

            cond = await eventually(refused, timeout=30, what="Programmed=False")
            assert cond["reason"] == "Invalid"
            assert "the API server refused the generated Service" in cond["message"]
            assert "spec.ipFamilies[0]" in cond["message"]
            assert await api.get(kinds.SERVICE, "cilium-gateway-gw", namespace) is None
            # What this cluster allows: the Service is made, the Gateway programmed.
            controlplane.kubectl(
                "apply", "-f", "-", input=OBJECTS.format(ns=namespace, family="IPv4")
            )

            async def programmed() -> bool:
                cond = await _programmed(api, namespace)
                svc = await api.get(kinds.SERVICE, "cilium-gateway-gw", namespace)
                return cond.get("status") == "True" and svc is not None

            await eventually(programmed, timeout=60, what="programmed once IPv4")
