from __future__ import annotations

import argparse
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from propylon.cli.get import run_describe, run_get
from propylon.cli.kinds import UnknownResourceError, resolve_kind
from propylon.cli.printers import format_table, human_duration

NOW = datetime(2026, 3, 18, 12, 0, 0, tzinfo=UTC)


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, namespace: str | None = "default", **kw: Any) -> dict[str, Any]:
    m: dict[str, Any] = {"name": name, "generation": 1, "uid": "u-" + name, **kw}
    if namespace:
        m["namespace"] = namespace
    return m


GATEWAY = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "Gateway",
    "metadata": meta("example-gateway", creationTimestamp=ago(seconds=12)),
    "spec": {
        "gatewayClassName": "example-gateway-class",
        "listeners": [{"name": "web-gw", "port": 8080, "protocol": "HTTP"}],
    },
    "status": {
        "addresses": [{"type": "IPAddress", "value": "127.10.0.1"}],
        "conditions": [
            {
                "type": "Accepted",
                "status": "True",
                "reason": "Accepted",
                "message": "ok",
                "observedGeneration": 1,
                "lastTransitionTime": ago(seconds=12),
            },
            {
                "type": "Programmed",
                "status": "True",
                "reason": "Programmed",
                "message": "ok",
                "observedGeneration": 1,
                "lastTransitionTime": ago(seconds=10),
            },
        ],
        "listeners": [
            {
                "name": "web-gw",
                "attachedRoutes": 1,
                "supportedKinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
                "conditions": [
                    {
                        "type": "Programmed",
                        "status": "True",
                        "reason": "Programmed",
                        "message": "",
                        "observedGeneration": 1,
                        "lastTransitionTime": ago(seconds=10),
                    }
                ],
            },
        ],
    },
}
PENDING_GW = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "Gateway",
    "metadata": meta("other", namespace="team-a", creationTimestamp=ago(days=2, hours=7)),
    "spec": {"gatewayClassName": "cilium"},
}


def svc(
    name: str,
    type_: str,
    cluster_ip: str | None,
    ports: list[dict[str, Any]],
    age: timedelta,
    ingress: str | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name, creationTimestamp=(NOW - age).strftime("%Y-%m-%dT%H:%M:%SZ")),
        "spec": {"type": type_, "ports": ports, "selector": {"app": name}},
    }
    if cluster_ip:
        doc["spec"]["clusterIP"] = cluster_ip
    if ingress:
        doc["status"] = {"loadBalancer": {"ingress": [{"ip": ingress}]}}
    return doc


SERVICES = [
    svc(
        "cilium-gateway-example-gateway",
        "LoadBalancer",
        None,
        [{"port": 8080, "protocol": "TCP"}, {"port": 50051, "protocol": "TCP"}],
        timedelta(minutes=5, seconds=27),
        ingress="127.10.0.1",
    ),
    svc("grpc-test", "ClusterIP", "10.105.48.100", [{"port": 50051}], timedelta(minutes=27)),
    svc(
        "http-test",
        "ClusterIP",
        None,
        [{"port": 8080, "nodePort": 31832, "protocol": "TCP"}],
        timedelta(days=5, hours=12),
    ),
    svc("pending", "LoadBalancer", None, [], timedelta(days=17)),
]
GATEWAY_CLASS = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "GatewayClass",
    "metadata": meta("cilium", namespace=None, creationTimestamp=ago(hours=3)),
    "spec": {"controllerName": "io.cilium/gateway-controller", "description": "The default"},
    "status": {"conditions": [{"type": "Accepted", "status": "True"}]},
}
ROUTES = [
    {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": meta("http-test-app", creationTimestamp=ago(seconds=65)),
        "spec": {"hostnames": ["http-test.mynetwork.local", "b.example"]},
    },
    {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": meta("no-hosts", creationTimestamp=ago(seconds=300)),
    },
]


class FakeSource:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs
        self.calls: list[tuple[str | None, str | None]] = []

    def list_objects(
        self, kind: str | None = None, *, namespace: str | None = None, name: str | None = None
    ) -> list[dict[str, Any]]:
        self.calls.append((kind, namespace))
        return [
            d
            for d in self.docs
            if d["kind"] == kind
            and (namespace is None or d["metadata"].get("namespace") == namespace)
        ]


def get(*argv: str, docs: list[dict[str, Any]]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind")
    parser.add_argument("names", nargs="*")
    parser.add_argument("-n", "--namespace")
    parser.add_argument("-A", "--all-namespaces", action="store_true")
    parser.add_argument("-o", "--output")
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    code = run_get(args, FakeSource(docs), now=NOW, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_get_gateway_table() -> None:
    code, out, _ = get("gateways", docs=[GATEWAY, PENDING_GW])
    assert code == 0
    assert out == (
        "NAME              CLASS                   ADDRESS      PROGRAMMED   AGE\n"
        "example-gateway   example-gateway-class   127.10.0.1   True         12s\n"
    )


def test_get_gateway_all_namespaces_blank_cells() -> None:
    _, out, _ = get("gtw", "-A", docs=[GATEWAY, PENDING_GW])
    assert out == (
        "NAMESPACE   NAME              CLASS                   ADDRESS      PROGRAMMED   AGE\n"
        "default     example-gateway   example-gateway-class   127.10.0.1   True         12s\n"
        "team-a      other             cilium                                            2d7h\n"
    )


def test_get_services_like_kubectl() -> None:
    _, out, _ = get("svc", docs=SERVICES)
    assert out == (
        "NAME                             TYPE           CLUSTER-IP      EXTERNAL-IP   "
        "PORT(S)              AGE\n"
        "cilium-gateway-example-gateway   LoadBalancer   <none>          127.10.0.1    "
        "8080/TCP,50051/TCP   5m27s\n"
        "grpc-test                        ClusterIP      10.105.48.100   <none>        "
        "50051/TCP            27m\n"
        "http-test                        ClusterIP      <none>          <none>        "
        "8080:31832/TCP       5d12h\n"
        "pending                          LoadBalancer   <none>          <pending>     "
        "<none>               17d\n"
    )
    _, wide, _ = get("services", "grpc-test", "-o", "wide", docs=SERVICES)
    assert wide.splitlines()[0].endswith("AGE   SELECTOR")
    assert wide.splitlines()[1].endswith("27m   app=grpc-test")


def test_get_gatewayclass_cluster_scoped_and_wide() -> None:
    code, out, _ = get("gc", "-o", "wide", docs=[GATEWAY_CLASS])
    assert code == 0
    assert out == (
        "NAME     CONTROLLER                     ACCEPTED   AGE   DESCRIPTION\n"
        "cilium   io.cilium/gateway-controller   True       3h    The default\n"
    )


def test_get_httproute_hostnames_json_like_kubectl() -> None:
    _, out, _ = get("httproute", docs=ROUTES)
    assert out == (
        "NAME            HOSTNAMES                                   AGE\n"
        'http-test-app   ["http-test.mynetwork.local","b.example"]   65s\n'
        "no-hosts                                                    5m\n"
    )


def test_get_listenersets_accepted_and_programmed() -> None:
    def lset(name: str, accepted: str, programmed: str) -> dict[str, Any]:
        return {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "ListenerSet",
            "metadata": meta(name, creationTimestamp=ago(seconds=65)),
            "spec": {"parentRef": {"name": "example-gateway"}},
            "status": {
                "conditions": [
                    {"type": "Accepted", "status": accepted},
                    {"type": "Programmed", "status": programmed},
                ]
            },
        }

    code, out, _ = get(
        "listenersets", docs=[lset("extra", "True", "True"), lset("refused", "False", "False")]
    )
    assert code == 0
    assert out == (
        "NAME      ACCEPTED   PROGRAMMED   AGE\n"
        "extra     True       True         65s\n"
        "refused   False      False        65s\n"
    )


def test_get_outputs_json_yaml_name() -> None:
    _, out, _ = get("gateway", "-o", "json", docs=[GATEWAY])
    data = json.loads(out)
    assert data["kind"] == "List" and data["items"][0]["status"] == GATEWAY["status"]
    _, out, _ = get("gateway", "example-gateway", "-o", "json", docs=[GATEWAY])
    assert json.loads(out)["kind"] == "Gateway"  # one named object: the object itself
    _, out, _ = get("gateway", "-o", "yaml", docs=[GATEWAY])
    assert yaml.safe_load(out)["items"][0]["metadata"]["name"] == "example-gateway"
    _, out, _ = get("gateway", "-o", "name", docs=[GATEWAY])
    assert out == "gateway.gateway.networking.k8s.io/example-gateway\n"
    _, out, _ = get("svc", "-o", "name", docs=SERVICES[:1])
    assert out == "service/cilium-gateway-example-gateway\n"


def test_get_empty_and_not_found() -> None:
    code, out, err = get("gateways", docs=[])
    assert (code, out, err) == (0, "", "No resources found in default namespace.\n")
    code, out, err = get("gateways", "nope", docs=[GATEWAY])
    assert code == 1 and out == ""
    assert (
        err == 'Error from server (NotFound): gateways.gateway.networking.k8s.io "nope" not found\n'
    )


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("gatewayclasses", "GatewayClass"),
        ("gatewayclass", "GatewayClass"),
        ("gc", "GatewayClass"),
        ("gateways", "Gateway"),
        ("gateway", "Gateway"),
        ("gtw", "Gateway"),
        ("httproutes", "HTTPRoute"),
        ("httproute", "HTTPRoute"),
        ("grpcroutes", "GRPCRoute"),
        ("grpcroute", "GRPCRoute"),
        ("tlsroutes", "TLSRoute"),
        ("tlsroute", "TLSRoute"),
        ("tcproutes", "TCPRoute"),
        ("udproute", "UDPRoute"),
        ("referencegrants", "ReferenceGrant"),
        ("referencegrant", "ReferenceGrant"),
        ("refgrant", "ReferenceGrant"),
        ("services", "Service"),
        ("service", "Service"),
        ("svc", "Service"),
        ("backendtlspolicies", "BackendTLSPolicy"),
        ("listenersets", "ListenerSet"),
        ("lset", "ListenerSet"),
        ("xlistenersets.gateway.networking.x-k8s.io", "XListenerSet"),
        ("Gateway", "Gateway"),
        ("gateways.gateway.networking.k8s.io", "Gateway"),
    ],
)
def test_kind_aliases(name: str, kind: str) -> None:
    assert resolve_kind(name).kind == kind


def test_unknown_kind() -> None:
    with pytest.raises(UnknownResourceError, match='resource type "widgets"'):
        resolve_kind("widgets")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (12, "12s"),
        (119, "119s"),
        (120, "2m"),
        (327, "5m27s"),
        (600, "10m"),
        (27 * 60, "27m"),
        (179 * 60, "179m"),
        (3 * 3600, "3h"),
        (5 * 3600 + 3 * 60, "5h3m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (55 * 3600, "2d7h"),
        (5 * 86400 + 12 * 3600, "5d12h"),
        (7 * 86400, "7d"),
        (17 * 86400, "17d"),
        (729 * 86400, "729d"),
        (760 * 86400, "2y30d"),
        (3 * 365 * 86400, "3y"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_format_table_min_width_and_last_column() -> None:
    assert format_table(["A", "B"], [["x", "y"]]) == "A     B\nx     y\n"


def test_describe_gateway() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind")
    parser.add_argument("names", nargs="*")
    parser.add_argument("-n", "--namespace")
    doc = json.loads(json.dumps(GATEWAY))
    doc["metadata"]["labels"] = {"b": "2", "a": "1"}
    out = io.StringIO()
    code = run_describe(parser.parse_args(["gtw", "example-gateway"]), FakeSource([doc]), out=out)
    assert code == 0
    ts12, ts10 = ago(seconds=12), ago(seconds=10)
    assert out.getvalue() == (
        "Name:         example-gateway\n"
        "Namespace:    default\n"
        "Labels:       a=1\n"
        "              b=2\n"
        "Annotations:  <none>\n"
        "API Version:  gateway.networking.k8s.io/v1\n"
        "Kind:         Gateway\n"
        "Metadata:\n"
        f"  Creation Timestamp:  {ts12}\n"
        "  Generation:          1\n"
        "  UID:                 u-example-gateway\n"
        "Spec:\n"
        "  Gateway Class Name:  example-gateway-class\n"
        "  Listeners:\n"
        "    Name:      web-gw\n"
        "    Port:      8080\n"
        "    Protocol:  HTTP\n"
        "Status:\n"
        "  Addresses:\n"
        "    Type:   IPAddress\n"
        "    Value:  127.10.0.1\n"
        "  Conditions:\n"
        "    Type        Status  Reason      Message  ObservedGeneration  LastTransitionTime\n"
        "    ----        ------  ------      -------  ------------------  ------------------\n"
        f"    Accepted    True    Accepted    ok       1                   {ts12}\n"
        f"    Programmed  True    Programmed  ok       1                   {ts10}\n"
        "  Listeners:\n"
        "    Name:             web-gw\n"
        "    Attached Routes:  1\n"
        "    Conditions:\n"
        "      Type        Status  Reason      Message  ObservedGeneration  LastTransitionTime\n"
        "      ----        ------  ------      -------  ------------------  ------------------\n"
        f"      Programmed  True    Programmed           1                   {ts10}\n"
        "    Supported Kinds:\n"
        "      Group:  gateway.networking.k8s.io\n"
        "      Kind:   HTTPRoute\n"
    )


def test_get_several_kinds() -> None:
    _, out, _ = get("httproutes,gtw", docs=[*ROUTES[:1], GATEWAY])
    assert out == (
        "NAME                                                HOSTNAMES"
        "                                   AGE\n"
        'httproute.gateway.networking.k8s.io/http-test-app   ["http-test.mynetwork.local",'
        '"b.example"]   65s\n'
        "\n"
        "NAME                                                CLASS                   ADDRESS      "
        "PROGRAMMED   AGE\n"
        "gateway.gateway.networking.k8s.io/example-gateway   example-gateway-class   127.10.0.1   "
        "True         12s\n"
    )
