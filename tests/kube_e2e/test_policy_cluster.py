"""Cilium's documented example policies for Gateway traffic on the dev cluster: the
chart installed with helm, the walkthrough's app behind a Gateway, the policies applied
with kubectl, and requests from the host namespace (outside the cluster: `world`)
through the Gateway's LoadBalancer address. Envoy answers a refusal 403
`Access denied`, as Cilium's does; identities come from the Pods' labels."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from chart_install import REPO, installed
from waiting import wait_for

from devcluster import network

POLICIES = REPO / "examples" / "cilium-policies"
HOST = "http-test.mynetwork.local"
DENIED = "Access denied\r\n"


def get(address: str) -> tuple[int, str]:
    request = urllib.request.Request(f"http://{address}:8080/", headers={"Host": HOST})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:
        return 0, str(error)


def _address(cluster: Any) -> str | None:
    out = cluster.kubectl(
        "get", "gateway", "example-gateway", "-o", "jsonpath={.status.addresses[0].value}"
    )
    return out.strip() or None


@pytest.fixture(scope="module")
def gateway(devcluster: Any) -> Iterator[tuple[Any, str]]:
    cluster = devcluster
    with installed(cluster, ["envoy.enabled=false"], examples=True):
        try:
            address = wait_for("the Gateway's address", lambda: _address(cluster), 120)
            wait_for("200 through the Gateway", lambda: get(address)[0] == 200, 120)
            yield cluster, address
        finally:
            cluster.kubectl("delete", "-f", str(POLICIES), "--ignore-not-found", check=False)


@pytest.fixture
def policies(gateway: tuple[Any, str]) -> Iterator[Any]:
    cluster, address = gateway
    applied: list[str] = []

    def apply(name: str, text: str | None = None) -> None:
        body = text if text is not None else (POLICIES / f"{name}.yaml").read_text()
        cluster.kubectl("apply", "-f", "-", input=body)
        applied.append(body)

    try:
        yield apply
    finally:
        for body in applied:
            cluster.kubectl("delete", "-f", "-", "--ignore-not-found", input=body, check=False)
        wait_for("200 again without policies", lambda: get(address)[0] == 200, 120)


def expect(address: str, status: int) -> None:
    def check() -> bool:
        got, body = get(address)
        return got == status and (status != 403 or body == DENIED)

    wait_for(f"{status} from the Gateway", check, 120)


def test_external_lockdown_answers_world_403(gateway: tuple[Any, str], policies: Any) -> None:
    _, address = gateway
    policies("external-lockdown")
    expect(address, 403)


def test_allow_ingress_cidr_admits_the_hosts_address(
    gateway: tuple[Any, str], policies: Any
) -> None:
    _, address = gateway
    policies("external-lockdown")
    expect(address, 403)
    doc = yaml.safe_load((POLICIES / "allow-ingress-cidr.yaml").read_text())
    doc["spec"]["ingress"][0]["fromCIDRSet"][0]["cidr"] = f"{network.HOST_ADDRESS}/32"
    policies("allow-ingress-cidr", yaml.safe_dump(doc))
    expect(address, 200)


def test_default_deny_then_allow_ingress_to_the_cluster(
    gateway: tuple[Any, str], policies: Any
) -> None:
    _, address = gateway
    policies("default-deny")
    expect(address, 403)
    policies("allow-ingress-cluster")
    expect(address, 200)


def test_a_backend_admitting_only_other_pods_is_not_sent_traffic(
    gateway: tuple[Any, str], policies: Any
) -> None:
    """The backend's own ingress policy does not admit the ingress identity: its
    endpoints are left out (Cilium drops the connection; Envoy answers 503)."""
    _, address = gateway
    only_clients = {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "http-test-from-clients", "namespace": "default"},
        "spec": {
            "endpointSelector": {"matchLabels": {"app": "http-test"}},
            "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}]}],
        },
    }
    policies("only-clients", yaml.safe_dump(only_clients))
    expect(address, 503)


def test_the_api_server_refuses_a_malformed_policy(gateway: tuple[Any, str]) -> None:
    cluster, _ = gateway
    doc = yaml.safe_load((POLICIES / "external-lockdown.yaml").read_text())
    doc["spec"]["ingress"][0]["fromEntities"] = ["everyone"]
    with pytest.raises(RuntimeError) as refused:  # kubectl's error, from the API server
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))
    assert "spec.ingress[0].fromEntities[0]" in str(refused.value)
    assert "Unsupported value" in str(refused.value)
