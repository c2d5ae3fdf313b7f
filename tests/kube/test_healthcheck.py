"""healthCheckNodePort answers: which ports the agent opens (pure), and what each answers
over real HTTP as the Envoy's state changes."""

from __future__ import annotations

import asyncio
import json
import socket

from free_ports import free_port

from propylon.kube.healthcheck import HealthCheck, HealthCheckPorts, health_checks
from propylon.resources import ObjectKey, parse_object

GATEWAY = ObjectKey("Gateway", "default", "gw")


def _service(name: str, policy: str, port: int | None, *, gateway: str | None = None) -> object:
    labels = {"io.cilium.gateway/owning-gateway": gateway} if gateway else {}
    spec: dict[str, object] = {
        "type": "LoadBalancer",
        "externalTrafficPolicy": policy,
        "ports": [{"name": "http", "port": 80}],
    }
    if port:
        spec["healthCheckNodePort"] = port
    return parse_object(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": spec,
        }
    )


def _slice(service: str, nodes: list[tuple[str, bool]]) -> object:
    return parse_object(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{service}-abc",
                "namespace": "default",
                "labels": {"kubernetes.io/service-name": service},
            },
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": [f"198.18.20.{i}"], "nodeName": n, "conditions": {"ready": r}}
                for i, (n, r) in enumerate(nodes, 1)
            ],
            "ports": [{"name": "http", "port": 80}],
        }
    )


def test_only_local_load_balancers_with_a_port_are_checked() -> None:
    objects = [
        _service("cilium-gateway-gw", "Local", 31001, gateway="gw"),
        _service("cluster-policy", "Cluster", None),
        _service("app", "Local", 31002),
        _slice("app", [("node-1", True), ("node-1", False), ("node-2", True)]),
    ]
    checks = health_checks(objects, "node-1")  # type: ignore[arg-type]
    assert checks == {
        31001: HealthCheck(ObjectKey("Service", "default", "cilium-gateway-gw"), GATEWAY, 0),
        31002: HealthCheck(ObjectKey("Service", "default", "app"), None, 1),
    }
    assert health_checks(objects, "node-3")[31002].local_endpoints == 0  # type: ignore[arg-type]


async def _get(port: int) -> tuple[int, dict[str, object]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: node\r\n\r\n")
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


async def test_answers_follow_envoy_at_every_request() -> None:
    serving = {GATEWAY: False}
    ports = HealthCheckPorts(lambda gw: serving.get(gw, False), host="127.0.0.1")
    gw_port, app_port = free_port(), free_port()
    service = ObjectKey("Service", "default", "cilium-gateway-gw")
    app = ObjectKey("Service", "default", "app")
    try:
        await ports.update(
            {gw_port: HealthCheck(service, GATEWAY), app_port: HealthCheck(app, None, 2)}
        )
        code, body = await _get(gw_port)
        assert code == 503 and body["localEndpoints"] == 0
        assert body["service"] == {"namespace": "default", "name": "cilium-gateway-gw"}
        serving[GATEWAY] = True
        assert (await _get(gw_port))[0] == 200
        assert await _get(app_port) == (
            200,
            {
                "service": {"namespace": "default", "name": "app"},
                "localEndpoints": 2,
                "serviceProxyHealthy": True,
            },
        )
        await ports.update({app_port: HealthCheck(app, None, 0)})
        assert ports.ports == {app_port}
        assert (await _get(app_port))[0] == 503
        try:
            await _get(gw_port)
            raise AssertionError("the closed port still answers")
        except ConnectionRefusedError:
            pass
    finally:
        await ports.stop()


async def test_a_port_taken_on_the_node_is_bound_once_it_is_free() -> None:
    port = free_port()
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    ports = HealthCheckPorts(lambda _gw: True, host="127.0.0.1")
    try:
        await ports.update({port: HealthCheck(ObjectKey("Service", "default", "s"), GATEWAY)})
        assert ports.ports == frozenset()
        squatter.close()
        deadline = asyncio.get_running_loop().time() + 10
        while port not in ports.ports:
            assert asyncio.get_running_loop().time() < deadline, "never bound"
            await asyncio.sleep(0.1)
        assert (await _get(port))[0] == 200
    finally:
        squatter.close()
        await ports.stop()


def test_node_ports_of_the_gateways_services_name_their_listeners() -> None:
    from propylon.kube.healthcheck import gateway_node_ports

    svc = parse_object(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "cilium-gateway-gw",
                "namespace": "default",
                "labels": {"io.cilium.gateway/owning-gateway": "gw"},
            },
            "spec": {
                "type": "LoadBalancer",
                "ports": [
                    {"name": "port-80", "port": 80, "nodePort": 31080},
                    {"name": "port-443", "port": 443},  # allocateLoadBalancerNodePorts: false
                ],
            },
        }
    )
    other = _service("app", "Cluster", None)
    assert gateway_node_ports([svc, other]) == (("default/gw/80", 31080),)  # type: ignore[list-item]
