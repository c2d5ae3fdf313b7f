"""The dev cluster as a whole: several nodes, pods reaching pods across nodes, helm, the
API server's own validation, and the host-side load balancer."""

from __future__ import annotations

import errno
import json
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from shared_paths import GATEWAY_API
from test_node_e2e import get, ready_pods, wait_for

from devcluster import build, network


@pytest.fixture
def namespace(devcluster: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    name = "cluster-e2e-" + request.node.name.removeprefix("test_").replace("_", "-")[:28]
    name = name.strip("-")
    devcluster.kubectl("create", "namespace", name)
    wait_for(
        f"the default ServiceAccount of {name}",
        lambda: devcluster.kubectl("get", "serviceaccount", "-n", name, "default", check=False),
    )
    yield name
    devcluster.kubectl("delete", "namespace", name, "--wait=false")


def _spread_echo(namespace: str) -> str:
    # Two replicas that must land on different nodes (required anti-affinity).
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: spread, namespace: {namespace}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: spread}}}}
  template:
    metadata: {{labels: {{app: spread}}}}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {{matchLabels: {{app: spread}}}}
            topologyKey: kubernetes.io/hostname
      containers:
      - name: echo
        image: registry.k8s.io/gateway-api/echo-basic:v1.6.3
        env:
        - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
        - {{name: NAMESPACE, valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}}}
        readinessProbe: {{httpGet: {{path: /, port: 3000}}, periodSeconds: 2}}
"""


def _in_pod_netns(pod: dict[str, Any], *argv: str) -> subprocess.CompletedProcess[str]:
    """Run a command inside the network namespace of `pod` (named by the node agent)."""
    node = pod["spec"]["nodeName"]
    netns = f"pdc-pod-{node}-{pod['metadata']['uid'][:8]}"
    return subprocess.run(
        ["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, timeout=20
    )


def test_pods_on_two_nodes_reach_each_other(devcluster: Any, namespace: str) -> None:
    if devcluster.node_count < 2:
        pytest.skip("needs a cluster of two nodes or more (PROPYLON_DEVCLUSTER_NODES)")
    devcluster.kubectl("apply", "-f", "-", input=_spread_echo(namespace))
    pods = wait_for(
        "two Ready echo pods", lambda: ready_pods(devcluster, namespace, "app=spread", 2), 90
    )
    assert len({p["spec"]["nodeName"] for p in pods}) == 2, "anti-affinity put both on one node"
    first, second = pods
    done = _in_pod_netns(
        first,
        "python3",
        "-c",
        "import sys, urllib.request; "
        "print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())",
        f"http://{second['status']['podIP']}:3000/across",
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["pod"] == second["metadata"]["name"]
    assert answer["namespace"] == namespace
    assert answer["path"] == "/across"


def test_api_server_refuses_a_gateway_that_breaks_a_cel_rule(devcluster: Any) -> None:
    devcluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", str(GATEWAY_API / "crd/experimental")
    )
    wait_for(
        "the Gateway CRD to be established",
        lambda: (
            "True"
            in devcluster.kubectl(
                "get",
                "crd",
                "gateways.gateway.networking.k8s.io",
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Established')].status}",
                check=False,
            )
        ),
    )
    bad = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: cel-refused, namespace: default}
spec:
  gatewayClassName: any
  listeners:
  - {name: tcp, port: 9000, protocol: TCP, hostname: not.allowed.example}
"""
    with pytest.raises(RuntimeError) as refused:
        devcluster.kubectl("apply", "-f", "-", input=bad)
    assert "hostname must not be specified for protocols ['TCP', 'UDP']" in str(refused.value)
    assert devcluster.kubectl("get", "gateway", "cel-refused", check=False) == ""


def test_helm_from_the_cache_installs_a_chart(
    devcluster: Any, namespace: str, tmp_path: Path
) -> None:
    chart = tmp_path / "hello"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: hello\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("greeting: hello from helm\n")
    (chart / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hello}\n"
        "data: {greeting: {{ .Values.greeting | quote }}}\n"
    )
    helm = build.binaries().helm
    argv = [str(helm), "install", "hello", str(chart), "--namespace", namespace]
    argv += ["--kubeconfig", str(devcluster.kubeconfig), "--set", "greeting=hi there", "--wait"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    config = get(devcluster, "configmap", "-n", namespace, "hello")
    assert config["data"] == {"greeting": "hi there"}
    listing = subprocess.run(
        [str(helm), "list", "-n", namespace, "--kubeconfig", str(devcluster.kubeconfig), "-o=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert [r["status"] for r in json.loads(listing.stdout)] == ["deployed"]


def _load_balancer_service(
    devcluster: Any, namespace: str, name: str, address: str, port: int
) -> None:
    """A LoadBalancer Service with `address` in its status: the Gateway controller's
    LB-IPAM writes status.loadBalancer; here the test plays it."""
    devcluster.kubectl(
        "apply",
        "-f",
        "-",
        input=f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{type: LoadBalancer, ports: [{{port: {port}}}], allocateLoadBalancerNodePorts: false}}
""",
    )
    patch = json.dumps({"status": {"loadBalancer": {"ingress": [{"ip": address}]}}})
    devcluster.kubectl(
        "patch", "service", name, "-n", namespace, "--subresource=status", "-p", patch
    )


def test_load_balancer_routes_a_service_address_to_the_nodes(
    devcluster: Any, namespace: str
) -> None:
    address = str(network.LB_POOL[250])
    _load_balancer_service(devcluster, namespace, "lb", address, 80)
    node_ips = {n.ip for n in devcluster.nodes}

    def routed() -> set[str] | None:
        out = subprocess.run(
            ["ip", "route", "show", f"{address}/32"], capture_output=True, text=True
        ).stdout
        hops = {w for line in out.splitlines() for w in line.split() if w in node_ips}
        return hops if hops == node_ips else None

    # Every node serves the address (the Gateway agent would add it to lo; here the test).
    for node in devcluster.nodes:
        _in_netns(node.netns, "ip", "addr", "add", f"{address}/32", "dev", "lo")
    try:
        wait_for(f"a route for {address} via every node", routed, 30)
    finally:
        for node in devcluster.nodes:
            _in_netns(node.netns, "ip", "addr", "del", f"{address}/32", "dev", "lo")
    devcluster.kubectl("delete", "service", "lb", "-n", namespace)
    wait_for(
        f"the route for {address} to go",
        lambda: (
            not subprocess.run(
                ["ip", "route", "show", f"{address}/32"], capture_output=True, text=True
            ).stdout.strip()
        ),
        30,
    )


def _in_netns(netns: str, *argv: str) -> str:
    done = subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True, text=True)
    assert done.returncode == 0, f"{argv} in {netns}: {done.stderr}"
    return done.stdout


CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60).close()
    print("connected")
except OSError as error:
    print(type(error).__name__, error.errno)
"""


def test_load_balancer_sends_an_address_only_to_the_nodes_that_hold_it(
    devcluster: Any, namespace: str
) -> None:
    """The CI flake: a connection to a Gateway's address hung when the balancer sent it
    to a node that did not (yet) serve it. A node serves an address by holding it (the
    Gateway agent adds it to lo; the test plays the agent): only those get traffic, and
    an address nobody holds is refused, not dropped."""
    if devcluster.node_count < 3:
        pytest.skip("needs three nodes (PROPYLON_DEVCLUSTER_NODES)")
    address, other, port = str(network.LB_POOL[249]), str(network.LB_POOL[248]), 18080
    holder, passer, client = devcluster.nodes[:3]
    _load_balancer_service(devcluster, namespace, "held", address, port)

    def hops() -> set[str]:
        out = subprocess.run(
            ["ip", "route", "show", f"{address}/32"], capture_output=True, text=True
        ).stdout
        node_ips = {n.ip for n in devcluster.nodes}
        return {w for line in out.splitlines() for w in line.split() if w in node_ips}

    _in_netns(holder.netns, "ip", "addr", "add", f"{address}/32", "dev", "lo")
    server = subprocess.Popen(
        [
            *("ip", "netns", "exec", holder.netns),
            *(sys.executable, "-m", "http.server", "--bind", address, str(port)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            "the server to listen",
            lambda: _in_netns(holder.netns, "ss", "-Hltn", "src", f"{address}:{port}").strip(),
        )
        wait_for(f"{address} routed to {holder.name} alone", lambda: hops() == {holder.ip}, 30)
        for _ in range(12):  # every flow hash lands on the holder
            with urllib.request.urlopen(f"http://{address}:{port}/", timeout=30) as answer:
                assert answer.status == 200
        _in_netns(holder.netns, "ip", "addr", "del", f"{address}/32", "dev", "lo")
        wait_for(f"the route for {address} to go", lambda: not hops(), 30)
        # Held by no node: the host (where the clients, e.g. the conformance suite, are)
        # refuses it rather than send it out of its default route.
        with pytest.raises(OSError) as refused:
            socket.create_connection((address, port), timeout=60).close()
        assert refused.value.errno == errno.EHOSTUNREACH, refused.value
        # Sent to a node that does not hold it (as between two checks of the balancer):
        # that node refuses it instead of bouncing it back to the host.
        _in_netns(client.netns, "ip", "route", "add", f"{other}/32", "via", passer.ip)
        try:
            out = _in_netns(client.netns, sys.executable, "-c", CONNECT, other, str(port))
        finally:
            _in_netns(client.netns, "ip", "route", "del", f"{other}/32")
        assert out.split() == ["OSError", str(errno.EHOSTUNREACH)], out
    finally:
        server.terminate()
        server.wait(timeout=30)
        subprocess.run(["ip", "-n", holder.netns, "addr", "del", f"{address}/32", "dev", "lo"])
        devcluster.kubectl("delete", "service", "held", "-n", namespace)
