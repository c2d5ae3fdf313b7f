"""Cilium's documented example policies for Gateway traffic, standalone with real Envoy.

examples/policy/ has a Gateway in front of a `details` backend whose Pod (labels) is
named by the EndpointSlice's targetRef, and an in-cluster client Pod at 127.0.0.7.
Each test starts with no policy (everything answers 200), applies Cilium's example
files from examples/cilium-policies/ and checks what each client gets, as Cilium's
documentation shows it: 403 `Access denied` from Envoy for a refusal.
"""

from __future__ import annotations

import http.client
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from e2e_harness import Backend, Running, start_backend, start_propylon, stop_backend, stop_propylon

from propylon.testing.launcher import wait_for

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "policy"
WORLD = "127.0.0.1"  # no Pod has this address
ALLOWED_CIDR_CLIENT = "127.0.0.5"  # the CIDR of allow-ingress-cidr.yaml
IN_CLUSTER = "127.0.0.7"  # the client Pod's address


def request(
    address: str,
    source: str,
    path: str = "/details/1",
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(address, 8080, timeout=10, source_address=(source, 0))
    try:
        conn.request(method, path, headers={"Host": "bookinfo.example", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.fixture
def details() -> Iterator[Backend]:
    backend = start_backend("http-server")
    try:
        yield backend
    finally:
        stop_backend(backend)


@pytest.fixture
def gateway(tmp_path: Path, details: Backend) -> Iterator[tuple[Running, str]]:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for source in EXAMPLE.glob("*.yaml"):
        docs = list(yaml.safe_load_all(source.read_text()))
        for doc in docs:
            if doc.get("kind") == "EndpointSlice":
                doc["ports"][0]["port"] = details.port
        (manifests / source.name).write_text(yaml.safe_dump_all(docs, sort_keys=False))
    running = start_propylon(manifests, tmp_path / "state")
    try:
        address = running.gateway_address("bookinfo")
        expect(address, WORLD, 200)  # Envoy listens (Programmed may come first)
        yield running, address
    finally:
        stop_propylon(running)


def apply(running: Running, *names: str) -> None:
    for name in names:
        shutil.copy(
            EXAMPLE.parent / "cilium-policies" / f"{name}.yaml",
            running.manifests / f"50-{name}.yaml",
        )


DENIED = b"Access denied\r\n"  # Cilium's Envoy's answer to a policy refusal


def expect(address: str, source: str, status: int) -> bytes:
    """Wait until `source` gets `status` (the change is applied asynchronously; files
    copied one after the other may be applied one at a time)."""

    def check() -> bytes | None:
        got, body = request(address, source)
        if got != status or (status == 403 and body != DENIED):
            return None
        return body or b"<empty>"

    return wait_for(check, timeout=30, what=f"{status} for a client at {source}")


def test_no_policy_allows_everything(gateway: tuple[Running, str]) -> None:
    _, address = gateway
    for source in (WORLD, ALLOWED_CIDR_CLIENT, IN_CLUSTER):
        assert request(address, source)[0] == 200


def test_external_lockdown_denies_world_and_admits_the_cluster(
    gateway: tuple[Running, str],
) -> None:
    running, address = gateway
    expect(address, WORLD, 200)
    apply(running, "external-lockdown")
    # Each of Envoy's workers takes a new listener on its own: wait for each client.
    expect(address, WORLD, 403)
    expect(address, ALLOWED_CIDR_CLIENT, 403)
    expect(address, IN_CLUSTER, 200)


def test_allow_ingress_cidr_admits_that_cidr_only(gateway: tuple[Running, str]) -> None:
    running, address = gateway
    apply(running, "external-lockdown", "allow-ingress-cidr")
    expect(address, ALLOWED_CIDR_CLIENT, 200)
    expect(address, IN_CLUSTER, 200)  # both files applied
    expect(address, WORLD, 403)
    # Taking the CIDR policy away locks that client out again.
    (running.manifests / "50-allow-ingress-cidr.yaml").unlink()
    expect(address, ALLOWED_CIDR_CLIENT, 403)


def test_default_deny_then_allow_ingress_to_the_cluster(gateway: tuple[Running, str]) -> None:
    running, address = gateway
    apply(running, "default-deny")
    expect(address, WORLD, 403)
    expect(address, IN_CLUSTER, 403)
    apply(running, "allow-ingress-cluster")
    expect(address, WORLD, 200)
    expect(address, IN_CLUSTER, 200)


L7_AT_THE_GATEWAY = """
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: gateway-reads-only}
spec:
  endpointSelector:
    matchExpressions: [{key: reserved:ingress, operator: Exists}]
  ingress:
  - fromEntities: [world]
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
      rules:
        http: [{method: GET, path: "/details/.*"}]
"""

L7_AT_THE_BACKEND = """
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: details-needs-a-token, namespace: default}
spec:
  endpointSelector:
    matchLabels: {app: details}
  ingress:
  - fromEntities: [ingress]
    toPorts:
    - ports: [{port: "PORT", protocol: TCP}]
      rules:
        http: [{path: "/details/1", headers: ["X-Token: yes"]}]
"""


def eventually(address: str, status: int, path: str, method: str = "GET", **headers: str) -> None:
    """Wait for `status` (Envoy's workers take a new listener each on its own)."""

    def check() -> bool:
        got, body = request(address, WORLD, path, method, headers)
        return got == status and (status != 403 or body == DENIED)

    wait_for(check, timeout=30, what=f"{status} for {method} {path} {headers}")


def test_l7_rules_at_the_gateway_and_at_the_backend(
    gateway: tuple[Running, str], details: Backend
) -> None:
    running, address = gateway
    (running.manifests / "60-l7.yaml").write_text(L7_AT_THE_GATEWAY)
    eventually(address, 403, "/details/1", "POST")
    eventually(address, 403, "/details/1", "DELETE")
    eventually(address, 200, "/details/1", "GET")
    (running.manifests / "60-l7.yaml").unlink()
    backend_rule = L7_AT_THE_BACKEND.replace("PORT", str(details.port))
    (running.manifests / "61-l7.yaml").write_text(backend_rule)
    eventually(address, 403, "/details/1")  # no token
    eventually(address, 200, "/details/1", **{"X-Token": "yes"})
    eventually(address, 403, "/details/2", **{"X-Token": "yes"})
    eventually(address, 200, "/details/1", "POST", **{"X-Token": "yes"})
