"""Manifests the benchmarks write: one GatewayClass + Gateway, and routes each with its
own hostname, Service and EndpointSlice pointing at a local backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

GATEWAY_NS = "default"
GATEWAY = "bench-gw"
PORT = 8080


def base_docs(*, from_all: bool = True) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "bench"},
            "spec": {"controllerName": "io.cilium/gateway-controller"},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": GATEWAY, "namespace": GATEWAY_NS},
            "spec": {
                "gatewayClassName": "bench",
                "listeners": [
                    {
                        "name": "http",
                        "protocol": "HTTP",
                        "port": PORT,
                        "allowedRoutes": {"namespaces": {"from": "All" if from_all else "Same"}},
                    }
                ],
            },
        },
    ]


def hostname(i: int, ns: str = GATEWAY_NS) -> str:
    return f"r{i}.{ns}.bench.test"


def route_docs(
    i: int,
    backend_port: int,
    *,
    ns: str = GATEWAY_NS,
    header: str | None = None,
    grpc: bool = False,
    backend_host: str = "127.0.0.1",
) -> list[dict[str, Any]]:
    """HTTPRoute (or GRPCRoute) `r<i>` + Service `s<i>` + EndpointSlice `s<i>-1`."""
    name, svc = f"r{i}", f"s{i}"
    rule: dict[str, Any] = {"backendRefs": [{"name": svc, "port": 80}]}
    if grpc:
        rule["matches"] = [{"method": {"service": f"bench.v1.S{i}", "method": "Call"}}]
    else:
        rule["matches"] = [{"path": {"type": "PathPrefix", "value": "/"}}]
        if header is not None:
            rule["filters"] = [
                {
                    "type": "ResponseHeaderModifier",
                    "responseHeaderModifier": {"set": [{"name": "x-bench", "value": header}]},
                }
            ]
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GRPCRoute" if grpc else "HTTPRoute",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "parentRefs": [{"name": GATEWAY, "namespace": GATEWAY_NS}],
            "hostnames": [hostname(i, ns)],
            "rules": [rule],
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": svc, "namespace": ns},
        "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
    }
    if grpc:
        service["spec"]["ports"][0]["appProtocol"] = "kubernetes.io/h2c"
    slice_ = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{svc}-1",
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": svc},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": backend_port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [backend_host], "conditions": {"ready": True}}],
    }
    return [route, service, slice_]


def dump(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def write_atomic(path: Path, text: str) -> None:
    """Write then rename, so the watcher never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
