"""A ListenerSet end to end (standalone): its HTTPS listener joins the walkthrough's
Gateway and serves a route attached to the ListenerSet, through real Envoy and real TLS;
the Gateway taking its permission back removes the listener again."""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
from e2e_harness import Running, wait_for
from selfsigned_cert import self_signed

pytestmark = pytest.mark.e2e

HOST = "secure.example.com"
PORT = 8443


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _manifests(cert: str, key: str) -> str:
    return f"""
apiVersion: v1
kind: Secret
metadata: {{name: secure-cert}}
type: kubernetes.io/tls
data: {{tls.crt: {_b64(cert)}, tls.key: {_b64(key)}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {{name: secure}}
spec:
  parentRef: {{name: example-gateway}}
  listeners:
  - name: https
    port: {PORT}
    protocol: HTTPS
    hostname: {HOST}
    tls: {{certificateRefs: [{{name: secure-cert}}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: secure-route}}
spec:
  parentRefs:
  - {{group: gateway.networking.k8s.io, kind: ListenerSet, name: secure, sectionName: https}}
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /}}}}]
    backendRefs: [{{name: http-test, port: 8080}}]
"""


def _allow(manifests: Path, allowed: str) -> None:
    path = manifests / "10-gateway.yaml"
    text = path.read_text().split("\n  allowedListeners:")[0].rstrip("\n")
    path.write_text(f"{text}\n  allowedListeners:\n    namespaces: {{from: {allowed}}}\n")


def _https_get(address: str, cafile: Path) -> tuple[int, str]:
    """GET /secure from `address`, TLS with SNI `HOST`, verified against `cafile`."""
    context = ssl.create_default_context(cafile=str(cafile))
    with (
        socket.create_connection((address, PORT), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=HOST) as tls,
    ):
        tls.sendall(f"GET /secure HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        response = http.client.HTTPResponse(tls)
        response.begin()
        return response.status, response.read().decode()


def _served(address: str, cafile: Path) -> bool:
    try:
        return _https_get(address, cafile)[0] == 200
    except OSError:
        return False


def _condition(obj: dict[str, Any] | None, type_: str) -> tuple[str, str] | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions", []):
        if cond["type"] == type_:
            return cond["status"], cond["reason"]
    return None


def test_https_listener_of_a_listener_set_serves_its_route(
    propylon: Running, tmp_path: Path
) -> None:
    manifests = propylon.manifests
    cert, key = self_signed([HOST])
    cafile = tmp_path / "ca.crt"
    cafile.write_text(cert)
    _allow(manifests, "Same")
    (manifests / "40-listenerset.yaml").write_text(_manifests(cert, key))
    address = propylon.gateway_address()

    wait_for(
        lambda: (
            _condition(propylon.object("ListenerSet", "secure"), "Programmed")
            == ("True", "Programmed")
        ),
        what="ListenerSet Programmed",
    )
    wait_for(lambda: _served(address, cafile), what="HTTPS 200 through the ListenerSet")
    status, body = _https_get(address, cafile)
    assert status == 200
    assert body.startswith("hello from http server\nmethod=GET path=/secure"), body

    ls = propylon.object("ListenerSet", "secure")
    assert ls is not None
    (entry,) = ls["status"]["listeners"]
    assert entry["name"] == "https" and entry["attachedRoutes"] == 1
    gateway = propylon.object("Gateway", "example-gateway")
    assert gateway is not None
    assert gateway["status"]["attachedListenerSets"] == 1
    route = propylon.object("HTTPRoute", "secure-route")
    assert route is not None
    (parent,) = route["status"]["parents"]
    assert parent["parentRef"]["kind"] == "ListenerSet"

    listed = propylon.cli("get", "listenersets")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split() == ["NAME", "ACCEPTED", "PROGRAMMED", "AGE"]
    assert listed.stdout.splitlines()[1].split()[:3] == ["secure", "True", "True"]

    # The Gateway no longer allows ListenerSets: NotAllowed, and the port stops serving.
    _allow(manifests, "None")
    wait_for(
        lambda: (
            _condition(propylon.object("ListenerSet", "secure"), "Accepted")
            == ("False", "NotAllowed")
        ),
        what="ListenerSet NotAllowed",
    )
    wait_for(lambda: not _served(address, cafile), what="the HTTPS listener gone")
    (parent,) = (propylon.object("HTTPRoute", "secure-route") or {})["status"]["parents"]
    assert (parent["conditions"][0]["status"], parent["conditions"][0]["reason"]) == (
        "False",
        "NoMatchingParent",
    )
