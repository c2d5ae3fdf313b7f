"""A ListenerSet in Kubernetes mode, on the dev cluster with the chart: its HTTPS
listener (certificate copied into the secrets namespace for the agents) joins its
Gateway and serves a route attached to the ListenerSet; the Gateway taking its
permission back makes it NotAllowed and closes the port on every node's Envoy.

ListenerSet (v1) when the cluster serves it (Gateway API v1.5+ CRDs, as an upstream
conformance run installs), else v1.4's XListenerSet. The host is the client."""

from __future__ import annotations

import base64
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from chart_install import apply_gateway_api_crds, installed
from echo_backend import echo_backend
from selfsigned_cert import self_signed
from waiting import wait_for

HOST = "lset.example.com"
PORT = 9443


def manifests(cert: bytes, key: bytes, kind: str, api_version: str, group: str) -> str:
    crt64, key64 = base64.b64encode(cert).decode(), base64.b64encode(key).decode()
    return f"""
apiVersion: v1
kind: Secret
metadata: {{name: lset-cert, namespace: default}}
type: kubernetes.io/tls
data: {{tls.crt: {crt64}, tls.key: {key64}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: lset-gw, namespace: default}}
spec:
  gatewayClassName: cilium
  allowedListeners: {{namespaces: {{from: Same}}}}
  listeners: [{{name: http, protocol: HTTP, port: 8080, hostname: plain.example.com}}]
---
apiVersion: {api_version}
kind: {kind}
metadata: {{name: lset, namespace: default}}
spec:
  parentRef: {{name: lset-gw}}
  listeners:
  - name: https
    protocol: HTTPS
    port: {PORT}
    hostname: {HOST}
    tls: {{certificateRefs: [{{name: lset-cert}}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: lset, namespace: default}}
spec:
  parentRefs: [{{group: {group}, kind: {kind}, name: lset, sectionName: https}}]
  rules: [{{backendRefs: [{{name: lset-echo, port: 3000}}]}}]
{echo_backend("lset-echo")}"""


@dataclass
class Setup:
    cluster: Any
    cert: bytes
    kind: str  # ListenerSet or XListenerSet


@pytest.fixture(scope="module")
def setup(devcluster: Any) -> Iterator[Setup]:
    cluster = devcluster
    apply_gateway_api_crds(cluster)  # first: which ListenerSet kind is served
    if cluster.kubectl("get", "crd", "listenersets.gateway.networking.k8s.io", check=False):
        kind, api_version, group = (
            "ListenerSet",
            "gateway.networking.k8s.io/v1",
            "gateway.networking.k8s.io",
        )
    else:
        kind, api_version, group = (
            "XListenerSet",
            "gateway.networking.x-k8s.io/v1alpha1",
            "gateway.networking.x-k8s.io",
        )
    cert, key = (pem.encode() for pem in self_signed([HOST]))
    with installed(cluster, manifests=manifests(cert, key, kind, api_version, group)):
        yield Setup(cluster, cert, kind)


def _condition(cluster: Any, kind: str, type_: str) -> str:
    return str(
        cluster.kubectl(
            "get",
            kind.lower(),
            "lset",
            f"-o=jsonpath={{.status.conditions[?(@.type=='{type_}')].status}}"
            f"{{' '}}{{.status.conditions[?(@.type=='{type_}')].reason}}",
            check=False,
        )
    ).strip()


def _address(cluster: Any) -> str | None:
    out = cluster.kubectl(
        "get",
        "gateway",
        "lset-gw",
        "-o=jsonpath={.status.addresses[0].value}",
        check=False,
    ).strip()
    return out or None


def https_get(address: str, cert: bytes) -> int:
    """Status of GET / over TLS (SNI and Host: HOST, only our certificate trusted);
    0 when the connection is refused, reset or closed without an answer."""
    ctx = ssl.create_default_context(cadata=cert.decode())
    try:
        with (
            socket.create_connection((address, PORT), timeout=3) as raw,
            ctx.wrap_socket(raw, server_hostname=HOST) as tls,
        ):
            tls.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
            head = tls.recv(64)
            return int(head.split()[1]) if head.startswith(b"HTTP/1.1 ") else 0
    except (OSError, ssl.SSLError):
        return 0


def test_https_listener_of_a_listener_set_on_every_node(setup: Setup) -> None:
    cluster, kind = setup.cluster, setup.kind
    wait_for(
        f"{kind} Programmed",
        lambda: _condition(cluster, kind, "Programmed") == "True Programmed",
        180,
    )
    address = wait_for("the Gateway's address", lambda: _address(cluster), 60)
    wait_for(
        "HTTPS 200 through the ListenerSet's listener",
        lambda: https_get(address, setup.cert) == 200,
        120,
    )
    # The Service of the Gateway carries the ListenerSet's port too.
    ports = cluster.kubectl(
        "get", "svc", "cilium-gateway-lset-gw", "-o=jsonpath={.spec.ports[*].port}"
    ).split()
    assert sorted(int(p) for p in ports) == [8080, PORT]

    cluster.kubectl(
        "patch",
        "gateway",
        "lset-gw",
        "--type=merge",
        "-p",
        '{"spec":{"allowedListeners":{"namespaces":{"from":"None"}}}}',
    )
    wait_for(
        f"{kind} NotAllowed",
        lambda: _condition(cluster, kind, "Accepted") == "False NotAllowed",
        60,
    )
    wait_for("the HTTPS port closed", lambda: https_get(address, setup.cert) == 0, 60)
