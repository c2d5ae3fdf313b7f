"""Gateway spec.tls end to end (standalone, real Envoy, real TLS): a client without a
certificate, or with one its CA did not sign, is refused by an HTTPS listener that
validates client certificates, a client with a good one is served; and a backend that
requires a client certificate (BackendTLSPolicy) sees the Gateway's."""

from __future__ import annotations

import base64
import datetime
import http.client
import http.server
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from e2e_harness import Running

from propylon.testing.launcher import wait_for

pytestmark = pytest.mark.e2e

HOST = "mtls.example.com"
BACKEND_HOST = "backend.example.com"
HTTPS_PORT = 8443
HTTP_PORT = 8080

Pem = tuple[str, str]  # certificate, key


def _issue(
    cn: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    sans: tuple[str, ...] = (),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    signer_cert, signer_key = issuer if issuer is not None else (None, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(signer_cert.subject if signer_cert is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(h) for h in sans]), critical=False
        )
    return builder.sign(signer_key, hashes.SHA256()), key


def _pem(pair: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]) -> Pem:
    cert, key = pair
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _secret(name: str, pem: Pem) -> str:
    return f"""
apiVersion: v1
kind: Secret
metadata: {{name: {name}}}
type: kubernetes.io/tls
data: {{tls.crt: {_b64(pem[0])}, tls.key: {_b64(pem[1])}}}
---"""


def _config_map(name: str, ca: str) -> str:
    return f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}}}
data: {{ca.crt: {json.dumps(ca)}}}
---"""


class _Backend(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        conn = self.request
        assert isinstance(conn, ssl.SSLSocket)
        der = conn.getpeercert(binary_form=True)
        cert = x509.load_der_x509_certificate(der) if der else None
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME) if cert else []
        cn = str(names[0].value) if names else ""
        body = f"client={cn}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def tls_backend(tmp_path: Path) -> Iterator[tuple[int, Pem, Pem]]:
    """An HTTPS backend on 127.0.0.1 that requires a client certificate signed by its
    client CA: (port, its server certificate, the client certificate it accepts)."""
    server_pem = _pem(_issue(BACKEND_HOST, None, sans=(BACKEND_HOST,)))
    client_ca = _issue("gateway-client-ca", None, ca=True)
    client_pem = _pem(_issue("the-gateway", client_ca))
    (tmp_path / "srv.crt").write_text(server_pem[0])
    (tmp_path / "srv.key").write_text(server_pem[1])
    (tmp_path / "clients.crt").write_text(_pem(client_ca)[0])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "srv.crt", tmp_path / "srv.key")
    context.load_verify_locations(tmp_path / "clients.crt")
    context.verify_mode = ssl.CERT_REQUIRED
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield port, server_pem, client_pem
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _https_get(address: str, server_ca: Path, client: tuple[Path, Path] | None) -> int:
    context = ssl.create_default_context(cafile=str(server_ca))
    if client is not None:
        context.load_cert_chain(*client)
    with (
        socket.create_connection((address, HTTPS_PORT), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=HOST) as tls,
    ):
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        response = http.client.HTTPResponse(tls)
        response.begin()
        return response.status


def _outcome(address: str, server_ca: Path, client: tuple[Path, Path] | None) -> str:
    try:
        return str(_https_get(address, server_ca, client))
    except (OSError, http.client.HTTPException) as exc:
        return f"refused: {type(exc).__name__}"


def _http_get(address: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection(address, HTTP_PORT, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": BACKEND_HOST})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_client_certificates_at_both_ends(
    propylon: Running, tmp_path: Path, tls_backend: tuple[int, Pem, Pem]
) -> None:
    backend_port, backend_server, gateway_client = tls_backend
    listener_pem = _pem(_issue(HOST, None, sans=(HOST,)))
    client_ca = _issue("client-ca", None, ca=True)
    good = _pem(_issue("good-client", client_ca))
    stranger = _pem(_issue("stranger", _issue("other-ca", None, ca=True)))
    files: dict[str, Path] = {}
    for name, text in (
        ("server-ca", listener_pem[0]),
        ("good.crt", good[0]),
        ("good.key", good[1]),
        ("stranger.crt", stranger[0]),
        ("stranger.key", stranger[1]),
    ):
        files[name] = tmp_path / name
        files[name].write_text(text)
    manifests = (
        _secret("listener-cert", listener_pem)
        + _secret("gateway-client", gateway_client)
        + _config_map("client-ca", _pem(client_ca)[0])
        + _config_map("backend-ca", backend_server[0])
        + f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: mtls}}
spec:
  gatewayClassName: example-gateway-class
  tls:
    frontend:
      default:
        validation:
          caCertificateRefs: [{{group: "", kind: ConfigMap, name: client-ca}}]
    backend:
      clientCertificateRef: {{name: gateway-client}}
  listeners:
  - name: https
    port: {HTTPS_PORT}
    protocol: HTTPS
    hostname: {HOST}
    tls: {{certificateRefs: [{{name: listener-cert}}]}}
  - {{name: http, port: {HTTP_PORT}, protocol: HTTP}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: mtls-web}}
spec:
  parentRefs: [{{name: mtls, sectionName: https}}]
  rules: [{{backendRefs: [{{name: http-test, port: 8080}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: tls-backend}}
spec: {{ports: [{{name: https, port: 443}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: tls-backend-1
  labels: {{kubernetes.io/service-name: tls-backend}}
addressType: IPv4
ports: [{{name: https, port: {backend_port}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {{name: tls-backend}}
spec:
  targetRefs: [{{group: "", kind: Service, name: tls-backend}}]
  validation:
    caCertificateRefs: [{{group: "", kind: ConfigMap, name: backend-ca}}]
    hostname: {BACKEND_HOST}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: mtls-backend}}
spec:
  parentRefs: [{{name: mtls, sectionName: http}}]
  hostnames: [{BACKEND_HOST}]
  rules: [{{backendRefs: [{{name: tls-backend, port: 443}}]}}]
"""
    )
    (propylon.manifests / "50-gateway-tls.yaml").write_text(manifests)
    address = propylon.gateway_address("mtls")
    good_client = (files["good.crt"], files["good.key"])
    wait_for(
        lambda: _outcome(address, files["server-ca"], good_client) == "200",
        timeout=60,
        what="HTTPS 200 with a client certificate the Gateway trusts",
    )
    # Without a certificate, or with one another CA signed: the handshake fails.
    assert _outcome(address, files["server-ca"], None).startswith("refused"), "no client cert"
    stranger_client = (files["stranger.crt"], files["stranger.key"])
    assert _outcome(address, files["server-ca"], stranger_client).startswith("refused")

    # The backend requires a client certificate: it sees the Gateway's.
    wait_for(lambda: _http_get(address)[0] == 200, timeout=60, what="the TLS backend answers 200")
    status, body = _http_get(address)
    assert (status, body) == (200, "client=the-gateway\n")
    gateway = propylon.object("Gateway", "mtls")
    assert gateway is not None
    refs = propylon.condition(gateway["status"], "ResolvedRefs")
    assert refs is not None and refs["status"] == "True", refs

    # The Gateway stops presenting it (a missing Secret): the backend refuses Envoy.
    path = propylon.manifests / "50-gateway-tls.yaml"
    path.write_text(
        path.read_text().replace(
            "clientCertificateRef: {name: gateway-client}", "clientCertificateRef: {name: nowhere}"
        )
    )
    wait_for(
        lambda: (
            (
                propylon.condition(
                    (propylon.object("Gateway", "mtls") or {}).get("status") or {}, "ResolvedRefs"
                )
                or {}
            ).get("reason")
            == "InvalidClientCertificateRef"
        ),
        timeout=60,
        what="ResolvedRefs InvalidClientCertificateRef",
    )
    wait_for(
        lambda: _http_get(address)[0] != 200,
        timeout=60,
        what="the backend refusing a Gateway without a certificate",
    )
