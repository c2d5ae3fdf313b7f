"""The seed walkthrough on the dev cluster, as a user does it: Gateway API CRDs, `helm
install` of the chart, `kubectl apply` of examples/kubernetes/, then `kubectl get`,
curl and the gRPC demo client through the Gateway's LoadBalancer address from the host
(the outside world), and the operator's leader killed under traffic.

Everything here is real but the node agent, which runs the chart's pods (operator, agent,
the demo apps) as processes of this checkout; RBAC, ServiceAccount tokens, the scheduler,
Deployments and EndpointSlices are the upstream ones."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from chart_install import EXAMPLES, REPO, chart_values
from chart_install import installed as installed_chart
from waiting import wait_for

from devcluster import network

HTTP_HOST = "http-test.mynetwork.local"
GRPC_HOST = "grpc-test.mynetwork.local"


def table(output: str) -> list[dict[str, str]]:
    """kubectl's default table output as rows of column -> value."""
    lines = output.strip().splitlines()
    header = lines[0]
    starts = [i for i, c in enumerate(header) if c != " " and (i == 0 or header[i - 1] == " ")]
    names = [header[s:e].strip() for s, e in zip(starts, [*starts[1:], None], strict=True)]
    return [
        {n: line[s:e].strip() for n, s, e in zip(names, starts, [*starts[1:], None], strict=True)}
        for line in lines[1:]
    ]


def http_get(address: str, host: str, timeout: float = 3.0) -> tuple[int, str]:
    request = urllib.request.Request(f"http://{address}:8080/", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""
    except OSError as error:  # refused, reset, timed out: no HTTP status at all
        return 0, str(error)


@dataclass
class Installed:
    cluster: Any
    address: str = ""
    values: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def installed(devcluster: Any) -> Iterator[Installed]:
    values = ["envoy.enabled=false"]
    with installed_chart(devcluster, values, examples=True):
        yield Installed(devcluster, values=chart_values(values))


def _gateway_row(cluster: Any) -> dict[str, str] | None:
    rows = table(cluster.kubectl("get", "gateway", "example-gateway"))
    row = rows[0] if rows else None
    return row if row and row["ADDRESS"] and row["PROGRAMMED"] == "True" else None


@pytest.fixture(scope="module")
def serving(installed: Installed) -> Installed:
    row = wait_for(
        "kubectl get gateway: ADDRESS and PROGRAMMED True",
        lambda: _gateway_row(installed.cluster),
        120,
    )
    installed.address = row["ADDRESS"]
    wait_for(
        "200 from the walkthrough's HTTP app through the Gateway",
        lambda: http_get(installed.address, HTTP_HOST)[0] == 200,
        60,
    )
    return installed


def test_kubectl_get_gateway_and_svc_as_in_the_walkthrough(serving: Installed) -> None:
    cluster = serving.cluster
    row = _gateway_row(cluster)
    assert row is not None
    assert row["NAME"] == "example-gateway"
    assert row["CLASS"] == "example-gateway-class"
    assert ipaddress.ip_address(row["ADDRESS"]) in network.LB_POOL
    services = {r["NAME"]: r for r in table(cluster.kubectl("get", "svc"))}
    generated = services["cilium-gateway-example-gateway"]
    assert generated["TYPE"] == "LoadBalancer"
    assert generated["EXTERNAL-IP"] == row["ADDRESS"]
    assert "8080:" in generated["PORT(S)"] and "50051:" in generated["PORT(S)"]
    owner = json.loads(cluster.kubectl("get", "svc", "cilium-gateway-example-gateway", "-o=json"))
    assert [o["kind"] for o in owner["metadata"]["ownerReferences"]] == ["Gateway"]
    classes = {r["NAME"]: r for r in table(cluster.kubectl("get", "gatewayclass"))}
    assert classes["cilium"]["ACCEPTED"] == "True", "gatewayClass.create=auto makes `cilium`"


def test_curl_and_grpc_client_through_the_gateway(serving: Installed) -> None:
    route = subprocess.run(
        ["ip", "route", "get", serving.address], capture_output=True, text=True
    ).stdout
    assert network.HOST_BRIDGE in route, (
        f"the Gateway address is not routed to the cluster: {route}"
    )
    status, body = http_get(serving.address, HTTP_HOST)
    assert status == 200
    assert body.startswith("hello from http server")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "propylon.cli.main",
            "demo",
            "grpc-client",
            "--addr",
            f"{serving.address}:50051",
            "--authority",
            GRPC_HOST,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert 'response message="hello"' in done.stdout


def test_seed_original_section_name_is_no_matching_parent(serving: Installed) -> None:
    cluster = serving.cluster
    cluster.kubectl("apply", "-f", str(REPO / "examples/walkthrough-original/20-httproute.yaml"))
    try:

        def described() -> str | None:
            text = cluster.kubectl("describe", "httproute", "http-test-app")
            return text if "NoMatchingParent" in text else None

        text = wait_for("Accepted False NoMatchingParent", described, 30)
        assert 'no listener named "http-gw"' in text
        assert "web-gw" in text and "grpc-gw" in text
    finally:
        cluster.kubectl("apply", "-f", str(EXAMPLES / "20-httproute.yaml"))
    wait_for(
        "the route to serve again",
        lambda: http_get(serving.address, HTTP_HOST)[0] == 200,
        30,
    )


def _leader(cluster: Any) -> str:
    lease = json.loads(
        cluster.kubectl("get", "lease", "-n", "kube-system", "propylon-operator", "-o=json")
    )
    return str(lease["spec"].get("holderIdentity", ""))


def _pod_pid(cluster: Any, namespace: str, name: str) -> int:
    """The process the node agent runs for a pod (its state dir records the pid)."""
    for record in Path(cluster.folder).glob("nodes/*/pods/*/record.json"):
        data = json.loads(record.read_text())
        if data["namespace"] == namespace and data["name"] == name:
            return int(next(iter(data["containers"].values()))["pid"])
    raise AssertionError(f"no process recorded for pod {namespace}/{name}")


def test_operator_leader_killed_under_traffic(serving: Installed) -> None:
    cluster = serving.cluster
    holder = wait_for("an operator leader", lambda: _leader(cluster) or None, 30)
    pod = holder.split("_")[0]
    failures: list[str] = []
    sent = 0
    stop = threading.Event()

    def traffic() -> None:
        nonlocal sent
        while not stop.is_set():
            status, detail = http_get(serving.address, HTTP_HOST, timeout=5)
            sent += 1
            if status != 200:
                failures.append(f"{status} {detail}".strip())

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        killed_at = time.monotonic()
        os.kill(_pod_pid(cluster, "kube-system", pod), signal.SIGKILL)
        new = wait_for(
            "the standby to take the Lease",
            lambda: (h := _leader(cluster)) and not h.startswith(pod + "_") and h,
            120,
        )
        took = time.monotonic() - killed_at
        # Status writes resume under the new leader: a new route gets Accepted.
        route = (EXAMPLES / "20-httproute.yaml").read_text()
        route = route.replace("name: http-test-app", "name: after-failover")
        route = route.replace("http-test.mynetwork.local", "after-failover.mynetwork.local")
        cluster.kubectl("apply", "-f", "-", input=route)

        def accepted() -> bool:
            out = cluster.kubectl(
                "get",
                "httproute",
                "after-failover",
                "-o=jsonpath={.status.parents[0].conditions[?(@.type=='Accepted')].status}",
            )
            return out == "True"

        wait_for("the new leader to write the new route's status", accepted, 30)
    finally:
        stop.set()
        sender.join()
        cluster.kubectl("delete", "httproute", "after-failover", "--ignore-not-found")
    assert new.split("_")[0] != pod
    assert sent > 20
    assert failures == [], (
        f"{len(failures)} of {sent} requests failed during failover (the standby took the "
        f"Lease after {took:.1f} s; lease duration 15 s)"
    )
