"""A class config switched from LoadBalancer (with source ranges) to NodePort and back,
against a real API server: the generated Service becomes NodePort without the
LoadBalancer-only fields (a merge patch would keep them and the API server refuse it),
its LB-IPAM address is released from the Service's and the Gateway's status, the Gateway
shows the Ready Node's address instead (following the Node's readiness and address), and
LoadBalancer again gives a pool address."""

from __future__ import annotations

import contextlib
import ipaddress
from typing import Any

from kube_controlplane import ControlPlane
from kube_eventually import eventually
from operators import POOL, running_operator

from propylon.kube import kinds
from propylon.kube.api import KubeApi

OBJECTS = """apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: {ns}-np}}
spec:
  controllerName: io.cilium/gateway-controller
  parametersRef: {{group: cilium.io, kind: CiliumGatewayClassConfig, name: np, namespace: {ns}}}
---
apiVersion: cilium.io/v2alpha1
kind: CiliumGatewayClassConfig
metadata: {{name: np, namespace: {ns}}}
spec:
  service: {{type: {type}, loadBalancerSourceRanges: [198.18.0.0/16], loadBalancerClass: x/y}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: {ns}}}
spec:
  gatewayClassName: {ns}-np
  listeners: [{{name: web, protocol: HTTP, port: 8080}}]
"""

NODE_ADDRESS = "198.18.250.7"
MOVED_ADDRESS = "198.18.250.8"


async def _node_status(api: KubeApi, node: str, address: str, ready: str) -> None:
    status = {
        "addresses": [{"type": "InternalIP", "address": address}],
        "conditions": [{"type": "Ready", "status": ready, "reason": "Test"}],
    }
    await api.patch(kinds.NODE, node, {"status": status}, sub="status")


async def _gateway(api: KubeApi, namespace: str) -> tuple[list[str], dict[str, Any]]:
    gw = await api.get(kinds.GATEWAY, "gw", namespace) or {}
    status = gw.get("status") or {}
    addresses = [a.get("value") for a in status.get("addresses") or ()]
    programmed = next(
        (c for c in status.get("conditions") or () if c.get("type") == "Programmed"), {}
    )
    return addresses, dict(programmed)


async def _service(api: KubeApi, namespace: str) -> dict[str, Any]:
    return await api.get(kinds.SERVICE, "cilium-gateway-gw", namespace) or {}


def _ingress(svc: dict[str, Any]) -> list[str]:
    lb = (svc.get("status") or {}).get("loadBalancer") or {}
    return [i.get("ip") for i in lb.get("ingress") or ()]


async def test_switching_the_service_type(
    api: KubeApi, controlplane: ControlPlane, namespace: str
) -> None:
    pool, node = f"{namespace}-pool", f"{namespace}-node"
    cidr = ipaddress.ip_network("127.38.0.0/24")
    controlplane.kubectl("apply", "-f", "-", input=POOL.format(name=pool, cidr=cidr))
    await api.create(kinds.NODE, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
    await _node_status(api, node, NODE_ADDRESS, "True")
    apply = OBJECTS.format(ns=namespace, type="LoadBalancer")
    controlplane.kubectl("apply", "-f", "-", input=apply)
    try:
        async with running_operator(controlplane.kubeconfig, namespace):

            async def pool_address() -> str | None:
                addresses, programmed = await _gateway(api, namespace)
                svc = await _service(api, namespace)
                if programmed.get("status") != "True" or len(addresses) != 1:
                    return None
                if ipaddress.ip_address(addresses[0]) not in cidr:
                    return None
                return addresses[0] if _ingress(svc) == addresses else None

            await eventually(pool_address, timeout=60, what="a pool address")
            svc = await _service(api, namespace)
            assert svc["spec"]["loadBalancerSourceRanges"] == ["198.18.0.0/16"]

            controlplane.kubectl(
                "apply", "-f", "-", input=OBJECTS.format(ns=namespace, type="NodePort")
            )

            async def on_the_node() -> dict[str, Any] | None:
                addresses, programmed = await _gateway(api, namespace)
                svc = await _service(api, namespace)
                done = (
                    addresses == [NODE_ADDRESS]
                    and programmed.get("status") == "True"
                    and svc.get("spec", {}).get("type") == "NodePort"
                    and not _ingress(svc)
                )
                return svc if done else None

            svc = await eventually(on_the_node, timeout=60, what="the node's address")
            for field in ("loadBalancerSourceRanges", "loadBalancerClass"):
                assert field not in svc["spec"], field

            # The Node's status is what counts: NotReady, then Ready at a new address.
            await _node_status(api, node, NODE_ADDRESS, "False")

            async def no_node() -> dict[str, Any] | None:
                addresses, programmed = await _gateway(api, namespace)
                return programmed if not addresses and programmed.get("status") == "False" else None

            cond = await eventually(no_node, timeout=60, what="no Ready node")
            assert cond["reason"] == "AddressNotAssigned", cond
            await _node_status(api, node, MOVED_ADDRESS, "True")

            async def moved() -> bool:
                addresses, programmed = await _gateway(api, namespace)
                return addresses == [MOVED_ADDRESS] and programmed.get("status") == "True"

            await eventually(moved, timeout=60, what="the node's new address")

            controlplane.kubectl("apply", "-f", "-", input=apply)
            await eventually(pool_address, timeout=60, what="a pool address again")
    finally:
        with contextlib.suppress(AssertionError):
            controlplane.kubectl("delete", "gatewayclass", f"{namespace}-np")
        controlplane.kubectl("delete", "ciliumloadbalancerippool", pool, check=False)
        controlplane.kubectl("delete", "node", node, check=False)
