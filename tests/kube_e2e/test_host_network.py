"""gatewayAPI.hostNetwork on the 3-node dev cluster: the chart installed with
`hostNetwork.enabled=true` and `nodes.matchLabels: {propylon-gateway: "yes"}`.

A Gateway's listener is on 0.0.0.0:<port> of the labelled node only (the host reaches it
at the node's own address; the other nodes refuse), there is no LoadBalancer Service,
and the Gateway's status addresses are the labelled node's. Moving the label to another
node moves the listener and the status address (the agents' DaemonSet follows the
label; the operator watches the Nodes)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from chart_install import installed
from echo_backend import echo_backend
from waiting import wait_for

from devcluster import network

LABEL = "propylon-gateway"
PORT = 18080
HOST = "hostnet.example.com"
OBJECTS = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: hostnet, namespace: default}}
spec:
  gatewayClassName: cilium
  listeners: [{{name: http, protocol: HTTP, port: {PORT}}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: hostnet, namespace: default}}
spec:
  parentRefs: [{{name: hostnet}}]
  rules: [{{backendRefs: [{{name: hostnet-echo, port: 3000}}]}}]
{echo_backend("hostnet-echo")}"""


@dataclass
class Setup:
    cluster: Any
    nodes: dict[str, str]  # node name -> InternalIP


def _nodes(cluster: Any) -> dict[str, str]:
    items = json.loads(cluster.kubectl("get", "nodes", "-o=json"))["items"]
    return {
        n["metadata"]["name"]: next(
            a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP"
        )
        for n in items
    }


def _label(cluster: Any, node: str, on: bool) -> None:
    cluster.kubectl("label", "node", node, f"{LABEL}=yes" if on else f"{LABEL}-", "--overwrite")


@pytest.fixture(scope="module")
def setup(devcluster: Any) -> Iterator[Setup]:
    cluster = devcluster
    nodes = _nodes(cluster)
    assert len(nodes) >= 3, nodes
    first = sorted(nodes)[0]
    for name in nodes:
        _label(cluster, name, name == first)
    values = [
        "envoy.enabled=false",
        "gatewayAPI.hostNetwork.enabled=true",
        f"gatewayAPI.hostNetwork.nodes.matchLabels.{LABEL}=yes",
    ]
    try:
        with installed(cluster, values, pool=False, manifests=OBJECTS):
            yield Setup(cluster, nodes)
    finally:
        for name in nodes:
            _label(cluster, name, False)


def status_addresses(cluster: Any) -> list[str]:
    out = cluster.kubectl(
        "get", "gateway", "hostnet", "-o=jsonpath={.status.addresses[*].value}", check=False
    )
    return out.split()


def http_get(address: str) -> int:
    """Status of GET / at address:PORT; 0 when refused, reset or closed."""
    try:
        with socket.create_connection((address, PORT), timeout=3) as sock:
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
            head = sock.recv(64)
            return int(head.split()[1]) if head.startswith(b"HTTP/1.1 ") else 0
    except OSError:
        return 0


def serving(setup: Setup) -> dict[str, int]:
    return {name: http_get(address) for name, address in sorted(setup.nodes.items())}


def test_listeners_on_the_labelled_node_only(setup: Setup) -> None:
    cluster = setup.cluster
    first, second, third = sorted(setup.nodes)[:3]

    wait_for(
        "Gateway addresses: the labelled node's",
        lambda: status_addresses(cluster) == [setup.nodes[first]],
        180,
    )
    programmed = cluster.kubectl(
        "get",
        "gateway",
        "hostnet",
        "-o=jsonpath={.status.conditions[?(@.type=='Programmed')].status}",
    )
    assert programmed == "True"
    wait_for(
        "only the labelled node serves",
        lambda: serving(setup) == {first: 200, second: 0, third: 0},
        180,
    )
    # No LoadBalancer Service in front of the nodes' ports.
    services = cluster.kubectl("get", "svc", "-o=name")
    assert "service/cilium-gateway-hostnet" not in services.split()

    # The label moves: so do the listener and the Gateway's address.
    moved = time.monotonic()
    _label(cluster, first, False)
    _label(cluster, second, True)
    wait_for(
        "the listener moved to the newly labelled node",
        lambda: serving(setup) == {first: 0, second: 200, third: 0},
        120,
    )
    wait_for(
        "Gateway addresses: the newly labelled node's",
        lambda: status_addresses(cluster) == [setup.nodes[second]],
        60,
    )
    print(f"label moved: listener and status followed in {time.monotonic() - moved:.1f} s")


TAKEN_PORT = 18081


def test_a_port_taken_on_the_node_shows_in_the_gateway_status(setup: Setup) -> None:
    """Another process holds the port on the labelled node: that node's Envoy cannot
    bind the listener, and the Gateway says so (Programmed=False with Envoy's reason)."""
    cluster = setup.cluster
    labelled = sorted(
        json.loads(cluster.kubectl("get", "nodes", f"-l={LABEL}=yes", "-o=json"))["items"],
        key=lambda n: n["metadata"]["name"],
    )
    assert labelled, "no labelled node"
    netns = f"{network.PREFIX}{labelled[0]['metadata']['name']}"
    holder = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            netns,
            sys.executable,
            "-c",
            "import socket, sys\n"
            "s = socket.socket()\n"
            f"s.bind(('0.0.0.0', {TAKEN_PORT}))\n"
            "s.listen()\n"
            "print('listening', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    gateway = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: taken, namespace: default}}
spec:
  gatewayClassName: cilium
  listeners: [{{name: http, protocol: HTTP, port: {TAKEN_PORT}}}]
"""
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "listening"
        cluster.kubectl("apply", "-f", "-", input=gateway)

        def rejected() -> dict[str, Any] | None:
            out = cluster.kubectl(
                "get",
                "gateway",
                "taken",
                "-o=jsonpath={.status.conditions[?(@.type=='Programmed')]}",
                check=False,
            )
            cond = json.loads(out) if out.startswith("{") else None
            return (
                cond
                if cond and cond["status"] == "False" and str(TAKEN_PORT) in cond["message"]
                else None
            )

        cond = wait_for("Programmed=False naming the taken port", rejected, 120)
        print(f"{cond['reason']}: {cond['message']}")
        # The other Gateway keeps serving on that node.
        address = setup.nodes[labelled[0]["metadata"]["name"]]
        assert http_get(address) == 200
    finally:
        cluster.kubectl("delete", "-f", "-", "--ignore-not-found", input=gateway, check=False)
        holder.kill()
        holder.wait(timeout=10)


def _listener_conditions(cluster: Any, gateway: str) -> dict[str, dict[str, Any]]:
    out = cluster.kubectl(
        "get", "gateway", gateway, "-o=jsonpath={.status.listeners[0].conditions}", check=False
    )
    return {c["type"]: c for c in json.loads(out)} if out.startswith("[") else {}


def test_privileged_port_and_a_shared_host_port_are_listener_conditions(setup: Setup) -> None:
    """Host network, on the cluster: a port <= 1023 without the capability values is
    `Accepted=False` naming them (not a bind failure on the nodes); a second Gateway on
    a host port the first holds is `Conflicted` (PortConflict); the first keeps serving."""
    cluster = setup.cluster
    gateways = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: privileged, namespace: default}}
spec:
  gatewayClassName: cilium
  listeners: [{{name: http, protocol: HTTP, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: same-port, namespace: default}}
spec:
  gatewayClassName: cilium
  listeners: [{{name: http, protocol: HTTP, port: {PORT}}}]
"""

    def served() -> dict[str, int] | None:
        now = serving(setup)
        return now if 200 in now.values() else None

    before = wait_for("hostnet served", served, 120)
    cluster.kubectl("apply", "-f", "-", input=gateways)
    try:

        def refused() -> dict[str, Any] | None:
            cond = _listener_conditions(cluster, "privileged").get("Accepted")
            return cond if cond and cond["status"] == "False" else None

        cond = wait_for("port 80 not accepted", refused, 60)
        assert "envoy.securityContext.capabilities.keepCapNetBindService" in cond["message"]
        assert "NET_BIND_SERVICE" in cond["message"]

        def conflicted() -> dict[str, Any] | None:
            cond = _listener_conditions(cluster, "same-port").get("Conflicted")
            return cond if cond and cond["status"] == "True" else None

        cond = wait_for("the second Gateway on the port Conflicted", conflicted, 60)
        assert cond["reason"] == "PortConflict"
        assert "default/hostnet" in cond["message"]
        print(f"\nport 80: {refused()}\nsame port: {cond}")
        # The labelled node still serves the first Gateway, the others still refuse.
        assert serving(setup) == before
    finally:
        cluster.kubectl("delete", "-f", "-", "--ignore-not-found", input=gateways, check=False)
