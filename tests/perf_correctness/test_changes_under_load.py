"""Correctness under the changes the benchmarks make (bench/), at a small scale:
routes written at once are all counted exactly once, and editing a route under steady
traffic never produces a non-200 answer. No timings are asserted."""

from __future__ import annotations

import http.client
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_harness import (
    Backend,
    Running,
    start_backend,
    start_propylon,
    stop_backend,
    stop_propylon,
    wait_for,
)

pytestmark = pytest.mark.e2e

GATEWAY = "perf-gw"
PORT = 8080


def _base() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "perf"},
            "spec": {"controllerName": "io.cilium/gateway-controller"},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": GATEWAY, "namespace": "default"},
            "spec": {
                "gatewayClassName": "perf",
                "listeners": [{"name": "http", "protocol": "HTTP", "port": PORT}],
            },
        },
    ]


def _route(i: int, port: int, header: str | None = None) -> list[dict[str, Any]]:
    rule: dict[str, Any] = {"backendRefs": [{"name": f"s{i}", "port": 80}]}
    if header is not None:
        rule["filters"] = [
            {
                "type": "ResponseHeaderModifier",
                "responseHeaderModifier": {"set": [{"name": "x-perf", "value": header}]},
            }
        ]
    return [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": f"r{i}", "namespace": "default"},
            "spec": {
                "parentRefs": [{"name": GATEWAY}],
                "hostnames": [f"r{i}.perf.test"],
                "rules": [rule],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"s{i}", "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 80}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"s{i}-1",
                "namespace": "default",
                "labels": {"kubernetes.io/service-name": f"s{i}"},
            },
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": port}],
            "endpoints": [{"addresses": ["127.0.0.1"]}],
        },
    ]


def _write(path: Path, docs: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump_all(docs))
    tmp.replace(path)


@pytest.fixture
def backends() -> Iterator[tuple[Backend, Backend]]:
    a, b = start_backend("http-server"), start_backend("http-server")
    try:
        yield a, b
    finally:
        stop_backend(a)
        stop_backend(b)


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[Running]:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    _write(manifests / "00-base.yaml", _base())
    running = start_propylon(manifests, tmp_path / "state")
    try:
        yield running
    finally:
        stop_propylon(running)


def _attached(running: Running) -> int | None:
    gw = running.object("Gateway", GATEWAY)
    listeners = (gw or {}).get("status", {}).get("listeners") or []
    return int(listeners[0]["attachedRoutes"]) if listeners else None


def test_routes_written_at_once_are_counted_exactly(
    instance: Running, backends: tuple[Backend, Backend]
) -> None:
    port = backends[0].port
    for i in range(50):
        _write(instance.manifests / f"r{i}.yaml", _route(i, port))
    seen: list[int] = []

    def settled(target: int) -> bool:
        n = _attached(instance)
        if n is not None:
            seen.append(n)
        return n == target

    wait_for(lambda: settled(50), timeout=30, what="attachedRoutes 50")
    instance.wait_synced()
    assert _attached(instance) == 50
    for i in range(25):
        (instance.manifests / f"r{i}.yaml").unlink()
    wait_for(lambda: settled(25), timeout=30, what="attachedRoutes 25")
    instance.wait_synced()
    assert _attached(instance) == 25
    assert max(seen) == 50 and min(seen[seen.index(50) :]) == 25


def test_edits_under_traffic_never_fail(
    instance: Running, backends: tuple[Backend, Backend]
) -> None:
    a, b = (x.port for x in backends)
    path = instance.manifests / "r0.yaml"
    _write(path, _route(0, a))
    address = instance.gateway_address(GATEWAY)
    host = "r0.perf.test"

    def get(conn: http.client.HTTPConnection) -> tuple[int, str | None]:
        conn.request("GET", "/", headers={"Host": host})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("x-perf")

    probe = http.client.HTTPConnection(address, PORT, timeout=5)
    wait_for(lambda: get(probe)[0] == 200, timeout=30, what="route r0")

    stop = threading.Event()
    statuses: dict[int, int] = {}

    def load() -> None:
        conn = http.client.HTTPConnection(address, PORT, timeout=5)
        while not stop.is_set():
            try:
                status, _ = get(conn)
            except (OSError, http.client.HTTPException):
                status = 0
                conn.close()
                conn = http.client.HTTPConnection(address, PORT, timeout=5)
            statuses[status] = statuses.get(status, 0) + 1

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        for n in range(10):
            header = f"v{n}" if n % 2 == 0 else None
            _write(path, _route(0, b if n % 2 == 0 else a, header))
            wait_for(lambda h=header: get(probe)[1] == h, timeout=30, what=f"edit {n}")  # type: ignore[misc]
            instance.wait_synced()
    finally:
        stop.set()
        thread.join(10)
    assert statuses.get(200, 0) > 0
    assert {k: v for k, v in statuses.items() if k != 200} == {}
