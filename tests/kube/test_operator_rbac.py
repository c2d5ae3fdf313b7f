"""The operator and agent work with exactly the permissions README.md lists (RBAC
is enforced by the test API server: --authorization-mode=RBAC)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kube_controlplane import ControlPlane
from kube_eventually import eventually
from operators import pool_and_objects, running_operator
from test_agent import OBJECTS, running_agent

from propylon.kube import kinds
from propylon.kube.api import KubeApi

GW = "gateway.networking.k8s.io"
READ = [
    (
        GW,
        [
            "gatewayclasses",
            "gateways",
            "httproutes",
            "grpcroutes",
            "tlsroutes",
            "tcproutes",
            "udproutes",
            "referencegrants",
            "backendtlspolicies",
            "listenersets",
        ],
    ),
    ("gateway.networking.x-k8s.io", ["xlistenersets"]),
    ("", ["services", "namespaces", "secrets", "configmaps"]),
    ("discovery.k8s.io", ["endpointslices"]),
    ("cilium.io", ["ciliumgatewayclassconfigs", "ciliumloadbalancerippools"]),
    ("apiextensions.k8s.io", ["customresourcedefinitions"]),
    ("coordination.k8s.io", ["leases"]),
]


def _rules(extra: list[tuple[str, list[str], list[str]]]) -> list[dict[str, Any]]:
    rules = [{"apiGroups": [g], "resources": r, "verbs": ["list", "watch"]} for g, r in READ]
    rules += [{"apiGroups": [g], "resources": r, "verbs": v} for g, r, v in extra]
    return rules


OPERATOR = _rules(
    [
        (
            GW,
            [
                "gatewayclasses/status",
                "gateways/status",
                "httproutes/status",
                "grpcroutes/status",
                "tlsroutes/status",
                "tcproutes/status",
                "udproutes/status",
                "backendtlspolicies/status",
                "listenersets/status",
            ],
            ["patch"],
        ),
        ("gateway.networking.x-k8s.io", ["xlistenersets/status"], ["patch"]),
        ("gateway.networking.x-k8s.io", ["xlistenersets"], ["get"]),
        ("cilium.io", ["ciliumgatewayclassconfigs/status"], ["patch"]),
        ("cilium.io", ["ciliumgatewayclassconfigs"], ["get"]),
        (
            GW,
            [
                "gatewayclasses",
                "gateways",
                "httproutes",
                "grpcroutes",
                "tlsroutes",
                "tcproutes",
                "udproutes",
                "backendtlspolicies",
                "listenersets",
            ],
            ["get"],
        ),
        (GW, ["gatewayclasses"], ["create"]),
        # The addresses of NodePort (and hostNetwork) Gateways.
        ("", ["nodes"], ["list", "watch"]),
        ("", ["services"], ["create", "patch", "delete"]),
        ("", ["services/status"], ["patch"]),
        ("discovery.k8s.io", ["endpointslices"], ["create", "patch", "delete"]),
        ("events.k8s.io", ["events"], ["create"]),
        ("coordination.k8s.io", ["leases"], ["get", "create", "update"]),
    ]
)
AGENT = _rules(
    [
        ("coordination.k8s.io", ["leases"], ["get", "create", "patch"]),
        # Network policy: the policies and the Pods whose labels are endpoint identities.
        (
            "cilium.io",
            ["ciliumnetworkpolicies", "ciliumclusterwidenetworkpolicies"],
            ["list", "watch"],
        ),
        ("", ["pods"], ["list", "watch"]),
    ]
)


def _grant(cp: ControlPlane, user: str, rules: list[dict[str, Any]]) -> Path:
    name = f"test-{user}"
    cp.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "List",
                "items": [
                    {
                        "apiVersion": "rbac.authorization.k8s.io/v1",
                        "kind": "ClusterRole",
                        "metadata": {"name": name},
                        "rules": rules,
                    },
                    {
                        "apiVersion": "rbac.authorization.k8s.io/v1",
                        "kind": "ClusterRoleBinding",
                        "metadata": {"name": name},
                        "roleRef": {
                            "apiGroup": "rbac.authorization.k8s.io",
                            "kind": "ClusterRole",
                            "name": name,
                        },
                        "subjects": [
                            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
                        ],
                    },
                ],
            }
        ),
    )
    return cp.user_kubeconfig(user)


@pytest.mark.e2e
async def test_operator_and_agent_need_no_more_than_listed(
    api: KubeApi,
    controlplane: ControlPlane,
    namespace: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from kube_controlplane import free_port

    operator_kc = _grant(controlplane, "propylon-operator", OPERATOR)
    agent_kc = _grant(controlplane, "propylon-agent", AGENT)
    # Before anything runs: the grants are what the API server enforces.
    denied = controlplane.kubectl(
        "--kubeconfig", str(agent_kc), "auth", "can-i", "patch", "gateways/status", check=False
    )
    assert denied.strip() == "no"

    port = free_port()
    with pool_and_objects(
        controlplane,
        OBJECTS.format(ns=namespace, port=port),
        pool=f"{namespace}-pool",
        cidr="127.35.0.0/24",
        gateway_class=f"{namespace}-class",
    ):
        async with (
            running_operator(operator_kc, namespace, require_agent_ack=True) as operator,
            running_agent(agent_kc, namespace, tmp_path / "agent"),
        ):

            async def programmed() -> bool:
                gw = await api.get(kinds.GATEWAY, "gw", namespace)
                for cond in ((gw or {}).get("status") or {}).get("conditions") or ():
                    if cond.get("type") == "Programmed":
                        return bool(cond.get("status") == "True")
                return False

            await eventually(programmed, timeout=30, what="Programmed with least privilege")
            svc = await eventually(
                lambda: api.get(kinds.SERVICE, "cilium-gateway-gw", namespace),
                what="generated Service",
            )
            assert svc["status"]["loadBalancer"]["ingress"][0]["ip"] == "127.35.0.1"
            assert operator.source.stats["errors"] == 0
            forbidden = [
                r
                for r in caplog.records
                if r.name.startswith("propylon") and "403 Forbidden" in r.getMessage()
            ]
            assert not forbidden, forbidden[0].getMessage()
