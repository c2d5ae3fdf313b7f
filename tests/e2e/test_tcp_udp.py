"""TCPRoute and UDPRoute end to end: `propylon run` with real Envoy, TCP and UDP echo
backends on loopback, traffic through the Gateway's TCP and UDP listeners (one port
number for both), weights, the oldest of two routes on one listener, and a route
change taking effect."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import yaml
from e2e_harness import Running, start_propylon, stop_propylon

from propylon.testing.launcher import wait_for

TCP_PORT = 9000  # the Gateway's TCP and UDP listeners
WEIGHTED_PORT = 9001  # TCP, backends a:3 b:1 c:0
UDP_WEIGHTED_PORT = 9002  # UDP, backends a:3 b:1
SAMPLES = 200
DENIED_SOURCE = "127.77.0.1"  # in the "ranged" class's loadBalancerSourceRanges (Deny)


class _TCPEcho(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline()
        self.wfile.write(f"{self.server.name} ".encode() + line)  # type: ignore[attr-defined]


class _UDPEcho(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        sock.sendto(f"{self.server.name} ".encode() + data, self.client_address)  # type: ignore[attr-defined]


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _UDPServer(socketserver.ThreadingUDPServer):
    daemon_threads = True


Server = socketserver.BaseServer


@pytest.fixture
def echoes() -> Iterator[dict[str, Server]]:
    """Named echo servers on ephemeral loopback ports: they answer `<name> <data>`."""
    servers: dict[str, Server] = {}
    for name in ("tcp-a", "tcp-b", "tcp-c", "tcp-old", "tcp-new"):
        servers[name] = _TCPServer(("127.0.0.1", 0), _TCPEcho)
    for name in ("udp-a", "udp-b"):
        servers[name] = _UDPServer(("127.0.0.1", 0), _UDPEcho)
    threads = []
    for name, server in servers.items():
        server.name = name  # type: ignore[attr-defined]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        threads.append(thread)
    try:
        yield servers
    finally:
        for server in servers.values():
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join(timeout=10)


def _service(name: str, port: int, protocol: str) -> list[dict[str, object]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"ports": [{"name": "echo", "port": 7000, "protocol": protocol}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-1", "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": "echo", "port": port, "protocol": protocol}],
            "endpoints": [{"addresses": ["127.0.0.1"]}],
        },
    ]


def _route(
    kind: str, name: str, section: str, backends: dict[str, int], gateway: str = "l4"
) -> dict[str, object]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": gateway, "sectionName": section}],
            "rules": [
                {
                    "backendRefs": [
                        {"name": svc, "port": 7000, "weight": weight}
                        for svc, weight in backends.items()
                    ]
                }
            ],
        },
    }


def _write(path: Path, docs: list[dict[str, object]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    tmp.rename(path)  # the watcher sees a complete file


@pytest.fixture
def running(tmp_path: Path, echoes: dict[str, Server]) -> Iterator[Running]:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    docs: list[dict[str, object]] = [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "cilium"},
            "spec": {"controllerName": "io.cilium/gateway-controller"},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "l4"},
            "spec": {
                "gatewayClassName": "cilium",
                "listeners": [
                    {"name": "tcp", "port": TCP_PORT, "protocol": "TCP"},
                    {"name": "udp", "port": TCP_PORT, "protocol": "UDP"},
                    {"name": "tcp-weighted", "port": WEIGHTED_PORT, "protocol": "TCP"},
                    {"name": "udp-weighted", "port": UDP_WEIGHTED_PORT, "protocol": "UDP"},
                ],
            },
        },
        # A class whose config refuses clients from 127.77.0.0/16
        # (loadBalancerSourceRanges, Deny), with a TCP and a UDP listener.
        {
            "apiVersion": "cilium.io/v2alpha1",
            "kind": "CiliumGatewayClassConfig",
            "metadata": {"name": "ranged", "namespace": "default"},
            "spec": {
                "service": {
                    "loadBalancerSourceRanges": [f"{DENIED_SOURCE.rsplit('.', 2)[0]}.0.0/16"],
                    "loadBalancerSourceRangesPolicy": "Deny",
                }
            },
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "ranged"},
            "spec": {
                "controllerName": "io.cilium/gateway-controller",
                "parametersRef": {
                    "group": "cilium.io",
                    "kind": "CiliumGatewayClassConfig",
                    "name": "ranged",
                    "namespace": "default",
                },
            },
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "ranged"},
            "spec": {
                "gatewayClassName": "ranged",
                "listeners": [
                    {"name": "tcp", "port": TCP_PORT, "protocol": "TCP"},
                    {"name": "udp", "port": TCP_PORT, "protocol": "UDP"},
                ],
            },
        },
    ]
    for name, server in echoes.items():
        docs += _service(name, server.server_address[1], "UDP" if name[:3] == "udp" else "TCP")  # type: ignore[index]
    _write(manifests / "l4.yaml", docs)
    _write(manifests / "routes.yaml", _routes(old_backend="tcp-old"))
    running = start_propylon(manifests, tmp_path / "state")
    try:
        yield running
    finally:
        stop_propylon(running)


def _routes(old_backend: str) -> list[dict[str, object]]:
    # The store gives creation times (to the second): "older" is created first or in
    # the same second, and then wins the Gateway API's tie-break by name too.
    return [
        _route("TCPRoute", "older", "tcp", {old_backend: 1}),
        _route("TCPRoute", "we-are-newer", "tcp", {"tcp-new": 1}),
        _route("UDPRoute", "dns", "udp", {"udp-a": 1}),
        _route("TCPRoute", "weighted", "tcp-weighted", {"tcp-a": 3, "tcp-b": 1, "tcp-c": 0}),
        _route("UDPRoute", "udp-weighted", "udp-weighted", {"udp-a": 3, "udp-b": 1}),
        _route("TCPRoute", "ranged-tcp", "tcp", {"tcp-a": 1}, gateway="ranged"),
        _route("UDPRoute", "ranged-udp", "udp", {"udp-a": 1}, gateway="ranged"),
    ]


def tcp_echo(address: str, port: int, source: str = "127.0.0.1") -> str | None:
    """The backend's name, or None if the connection failed or was closed."""
    try:
        with socket.create_connection(
            (address, port), timeout=5, source_address=(source, 0)
        ) as conn:
            conn.sendall(b"ping\n")
            reply = conn.makefile("rb").readline().decode()
    except OSError:
        return None
    name, _, rest = reply.partition(" ")
    return name if rest == "ping\n" else None


def udp_echo(address: str, port: int, source: str = "127.0.0.1") -> str | None:
    """One datagram from a fresh socket (a new session for Envoy's UDP proxy)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        try:
            sock.bind((source, 0))
            sock.sendto(b"ping", (address, port))
            reply, _ = sock.recvfrom(1024)
        except OSError:
            return None
    name, _, rest = reply.decode().partition(" ")
    return name if rest == "ping" else None


def _accepted(running: Running, kind: str, name: str) -> bool:
    obj = running.object(kind, name)
    parents = (obj or {}).get("status", {}).get("parents") or []
    return bool(parents) and all(
        c["status"] == "True" for p in parents for c in p["conditions"] if c["type"] == "Accepted"
    )


def test_tcp_and_udp_through_the_gateway(running: Running) -> None:
    address = running.gateway_address("l4")
    for kind, name in (
        ("TCPRoute", "older"),
        ("TCPRoute", "we-are-newer"),
        ("UDPRoute", "dns"),
        ("TCPRoute", "weighted"),
        ("UDPRoute", "udp-weighted"),
    ):
        wait_for(partial(_accepted, running, kind, name), what=f"{kind} {name} Accepted")

    # One port number, two listeners: TCP to the oldest TCPRoute, UDP to the UDPRoute.
    assert wait_for(lambda: tcp_echo(address, TCP_PORT), what="TCP echo") == "tcp-old"
    assert wait_for(lambda: udp_echo(address, TCP_PORT), what="UDP echo") == "udp-a"
    assert {tcp_echo(address, TCP_PORT) for _ in range(20)} == {"tcp-old"}

    gateway = running.object("Gateway", "l4")
    assert gateway is not None
    attached = {li["name"]: li["attachedRoutes"] for li in gateway["status"]["listeners"]}
    assert attached == {"tcp": 2, "udp": 1, "tcp-weighted": 1, "udp-weighted": 1}

    # Weights 3:1 (and 0): each connection, and each new UDP session, picks a backend.
    wait_for(lambda: tcp_echo(address, WEIGHTED_PORT), what="weighted TCP echo")
    tcp = Counter(tcp_echo(address, WEIGHTED_PORT) for _ in range(SAMPLES))
    assert set(tcp) == {"tcp-a", "tcp-b"}, tcp
    assert 0.6 < tcp["tcp-a"] / SAMPLES < 0.9, tcp
    wait_for(lambda: udp_echo(address, UDP_WEIGHTED_PORT), what="weighted UDP echo")
    udp = Counter(udp_echo(address, UDP_WEIGHTED_PORT) for _ in range(SAMPLES))
    assert set(udp) == {"udp-a", "udp-b"}, udp
    assert 0.6 < udp["udp-a"] / SAMPLES < 0.9, udp
    print(f"weighted 3:1:0 over {SAMPLES}: TCP {dict(tcp)}, UDP {dict(udp)}")


def test_route_change_and_removal(running: Running) -> None:
    address = running.gateway_address("l4")
    assert wait_for(lambda: tcp_echo(address, TCP_PORT), what="TCP echo") == "tcp-old"

    # The older route now points elsewhere: new connections follow.
    _write(running.manifests / "routes.yaml", _routes(old_backend="tcp-a"))
    wait_for(lambda: tcp_echo(address, TCP_PORT) == "tcp-a", what="the changed backend")

    # Without the older route, the newer one is the oldest left and takes the listener.
    docs = [d for d in _routes(old_backend="tcp-a") if d["metadata"]["name"] != "older"]  # type: ignore[index]
    _write(running.manifests / "routes.yaml", docs)
    wait_for(lambda: tcp_echo(address, TCP_PORT) == "tcp-new", what="the newer route")


def test_source_ranges_hold_for_tcp_and_udp(running: Running) -> None:
    """The class config's loadBalancerSourceRanges (Deny 127.77.0.0/16): TCP by the
    network RBAC filter, UDP by the UDP proxy's matcher on the client address."""
    address = running.gateway_address("ranged")
    assert wait_for(lambda: tcp_echo(address, TCP_PORT), what="TCP echo") == "tcp-a"
    assert wait_for(lambda: udp_echo(address, TCP_PORT), what="UDP echo") == "udp-a"
    assert tcp_echo(address, TCP_PORT, source=DENIED_SOURCE) is None
    assert udp_echo(address, TCP_PORT, source=DENIED_SOURCE) is None
    # The allowed client still gets through (the refusals above were not an outage).
    assert udp_echo(address, TCP_PORT) == "udp-a"
    assert tcp_echo(address, TCP_PORT) == "tcp-a"
