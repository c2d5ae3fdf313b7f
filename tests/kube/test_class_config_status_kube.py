"""CiliumGatewayClassConfig status in Kubernetes mode, against a real API server: the
operator writes `Accepted` through the status subresource with the API server's
generation (as Cilium 1.20 does), follows spec changes, and a config the operator cannot
use (a source range that is not a CIDR, which the schema lets through) is
`Accepted=False` with the field named, its GatewayClass `InvalidParameters`; fixed, both
are accepted again."""

from __future__ import annotations

from typing import Any

from kube_controlplane import ControlPlane
from kube_eventually import eventually
from operators import running_operator

from propylon.kube import kinds
from propylon.kube.api import KubeApi


def _config(namespace: str, name: str, ranges: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "cilium.io/v2alpha1",
        "kind": "CiliumGatewayClassConfig",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"service": {"loadBalancerSourceRanges": ranges}},
    }


def _class(namespace: str, config: str) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": f"{namespace}-{config}"},
        "spec": {
            "controllerName": "io.cilium/gateway-controller",
            "parametersRef": {
                "group": "cilium.io",
                "kind": "CiliumGatewayClassConfig",
                "name": config,
                "namespace": namespace,
            },
        },
    }


async def _accepted(api: KubeApi, kind: Any, name: str, namespace: str = "") -> dict[str, Any]:
    obj = await api.get(kind, name, namespace) or {}
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Accepted":
            return dict(cond)
    return {}


async def test_operator_writes_class_config_status(
    api: KubeApi, controlplane: ControlPlane, namespace: str
) -> None:
    config, cls = kinds.GATEWAY_CLASS_CONFIG, kinds.GATEWAY_CLASS
    await api.create(config, _config(namespace, "good", ["198.18.0.0/24"]), namespace)
    await api.create(config, _config(namespace, "bad", ["not-a-cidr"]), namespace)
    await api.create(cls, _class(namespace, "bad"))
    try:
        async with running_operator(controlplane.kubeconfig, namespace):

            async def good(generation: int) -> dict[str, Any] | None:
                cond = await _accepted(api, config, "good", namespace)
                return cond if cond.get("observedGeneration") == generation else None

            cond = await eventually(lambda: good(1), what="good config Accepted")
            assert (cond["status"], cond["reason"], cond["message"]) == (
                "True",
                "Accepted",
                "Valid GatewayClassConfig",
            )
            assert cond["lastTransitionTime"]
            # A spec change: the new generation is observed.
            await api.patch(
                config,
                "good",
                {"spec": {"service": {"loadBalancerSourceRanges": ["198.18.1.0/24"]}}},
                namespace=namespace,
            )
            await eventually(lambda: good(2), what="generation 2 observed")

            async def bad() -> dict[str, Any] | None:
                cond = await _accepted(api, config, "bad", namespace)
                return cond if cond.get("status") == "False" else None

            cond = await eventually(bad, what="bad config not Accepted")
            assert cond["reason"] == "Invalid"
            assert cond["observedGeneration"] == 1
            assert "spec.service.loadBalancerSourceRanges" in cond["message"]
            assert "'not-a-cidr' is not a CIDR" in cond["message"]

            async def class_refused() -> dict[str, Any] | None:
                cond = await _accepted(api, cls, f"{namespace}-bad")
                return cond if "is invalid" in str(cond.get("message")) else None

            cond = await eventually(class_refused, what="the GatewayClass says why")
            assert (cond["status"], cond["reason"]) == ("False", "InvalidParameters")
            assert f"CiliumGatewayClassConfig {namespace}/bad is invalid" in cond["message"]

            # Fixed: both accepted, the config at its new generation.
            await api.patch(
                config,
                "bad",
                {"spec": {"service": {"loadBalancerSourceRanges": ["198.18.2.0/24"]}}},
                namespace=namespace,
            )

            async def fixed() -> bool:
                cond = await _accepted(api, config, "bad", namespace)
                gc = await _accepted(api, cls, f"{namespace}-bad")
                return (
                    cond.get("status") == "True"
                    and cond.get("observedGeneration") == 2
                    and gc.get("status") == "True"
                )

            await eventually(fixed, what="config and class accepted once fixed")
    finally:
        controlplane.kubectl("delete", "gatewayclass", f"{namespace}-bad", check=False)
