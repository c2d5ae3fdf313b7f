"""The walkthrough manifests in examples/: kinds, names and the links between them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WALKTHROUGH = REPO / "examples" / "walkthrough"
ORIGINAL = REPO / "examples" / "walkthrough-original"


def load(directory: Path) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.yaml")):
        with path.open() as f:
            docs.extend(d for d in yaml.safe_load_all(f) if d is not None)
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> Iterator[dict[str, Any]]:
    return (d for d in docs if d["kind"] == kind)


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in by_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return found[0]


def test_walkthrough_objects_in_order() -> None:
    docs = load(WALKTHROUGH)
    assert [(d["apiVersion"], d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("gateway.networking.k8s.io/v1", "GatewayClass", "example-gateway-class"),
        ("cilium.io/v2alpha1", "CiliumGatewayClassConfig", "example-gateway-config"),
        ("gateway.networking.k8s.io/v1", "Gateway", "example-gateway"),
        ("gateway.networking.k8s.io/v1", "HTTPRoute", "http-test-app"),
        ("gateway.networking.k8s.io/v1", "GRPCRoute", "grpc-test-app"),
        ("v1", "Service", "http-test"),
        ("discovery.k8s.io/v1", "EndpointSlice", "http-test-local"),
        ("v1", "Service", "grpc-test"),
        ("discovery.k8s.io/v1", "EndpointSlice", "grpc-test-local"),
    ]


def test_gateway_class_and_config() -> None:
    docs = load(WALKTHROUGH)
    gc = one(docs, "GatewayClass", "example-gateway-class")["spec"]
    assert gc["controllerName"] == "io.cilium/gateway-controller"
    assert gc["description"] == "The default Cilium GatewayClass"
    ref = gc["parametersRef"]
    config = one(docs, ref["kind"], ref["name"])
    assert (ref["group"], config["apiVersion"].split("/")[0]) == ("cilium.io", "cilium.io")
    assert config["metadata"]["namespace"] == ref["namespace"] == "default"
    assert config["spec"] == {"service": {"type": "LoadBalancer"}}


def test_gateway_listeners() -> None:
    gw = one(load(WALKTHROUGH), "Gateway", "example-gateway")
    assert gw["spec"]["gatewayClassName"] == "example-gateway-class"
    assert "addresses" not in gw["spec"]
    assert "namespace" not in gw["metadata"]  # default, as in the walkthrough
    assert [
        (lst["name"], lst["protocol"], lst["port"], lst["allowedRoutes"]["namespaces"]["from"])
        for lst in gw["spec"]["listeners"]
    ] == [("web-gw", "HTTP", 8080, "Same"), ("grpc-gw", "HTTP", 50051, "Same")]


@pytest.mark.parametrize(
    ("kind", "name", "section", "hostname", "service", "port"),
    [
        ("HTTPRoute", "http-test-app", "web-gw", "http-test.mynetwork.local", "http-test", 8080),
        ("GRPCRoute", "grpc-test-app", "grpc-gw", "grpc-test.mynetwork.local", "grpc-test", 50051),
    ],
)
def test_routes_attach_to_listeners_and_services(
    kind: str, name: str, section: str, hostname: str, service: str, port: int
) -> None:
    docs = load(WALKTHROUGH)
    route = one(docs, kind, name)["spec"]
    listeners = {
        lst["name"] for lst in one(docs, "Gateway", "example-gateway")["spec"]["listeners"]
    }
    assert route["parentRefs"] == [
        {"name": "example-gateway", "namespace": "default", "sectionName": section}
    ]
    assert section in listeners
    assert route["hostnames"] == [hostname]
    [rule] = route["rules"]
    assert rule["backendRefs"] == [{"name": service, "port": port}]
    svc_ports = [p["port"] for p in one(docs, "Service", service)["spec"]["ports"]]
    assert port in svc_ports


def test_route_matches() -> None:
    docs = load(WALKTHROUGH)
    http_rule = one(docs, "HTTPRoute", "http-test-app")["spec"]["rules"][0]
    assert http_rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    grpc_rule = one(docs, "GRPCRoute", "grpc-test-app")["spec"]["rules"][0]
    assert grpc_rule["matches"] == [
        {"method": {"service": "test.v1.TestService", "method": "Ping"}}
    ]


@pytest.mark.parametrize(("service", "port"), [("http-test", 8080), ("grpc-test", 50051)])
def test_services_have_local_endpoints(service: str, port: int) -> None:
    docs = load(WALKTHROUGH)
    svc = one(docs, "Service", service)
    assert svc["metadata"]["namespace"] == "default"
    assert svc["spec"]["type"] == "ClusterIP"
    assert "selector" not in svc["spec"]
    [svc_port] = svc["spec"]["ports"]
    assert (svc_port["port"], svc_port["targetPort"], svc_port["protocol"]) == (port, port, "TCP")
    assert "appProtocol" not in svc_port
    slices = [
        s
        for s in by_kind(docs, "EndpointSlice")
        if s["metadata"]["labels"]["kubernetes.io/service-name"] == service
    ]
    assert len(slices) == 1
    eps = slices[0]
    assert eps["metadata"]["namespace"] == "default"
    assert eps["addressType"] == "IPv4"
    assert eps["ports"] == [{"name": svc_port["name"], "port": port, "protocol": "TCP"}]
    assert eps["endpoints"] == [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]


def test_original_route_has_the_walkthrough_typo() -> None:
    docs = load(ORIGINAL)
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [("HTTPRoute", "http-test-app")]
    fixed = one(load(WALKTHROUGH), "HTTPRoute", "http-test-app")
    original = docs[0]
    [ref] = original["spec"]["parentRefs"]
    assert ref["sectionName"] == "http-gw"
    listeners = {
        lst["name"]
        for lst in one(load(WALKTHROUGH), "Gateway", "example-gateway")["spec"]["listeners"]
    }
    assert "http-gw" not in listeners
    # Apart from the sectionName, the two routes are the same.
    original["spec"]["parentRefs"][0]["sectionName"] = "web-gw"
    assert original == fixed


def test_examples_parse_with_the_resource_models() -> None:
    from propylon.resources import parse_object

    for doc in load(WALKTHROUGH) + load(ORIGINAL):
        obj = parse_object(doc)
        assert obj.kind == doc["kind"]
        assert obj.metadata.name == doc["metadata"]["name"]
