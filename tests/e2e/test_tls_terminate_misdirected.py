"""End to end with real Envoy and real TLS (standalone):

- a TLS listener with `mode: Terminate`: a client doing TLS to the Gateway reaches a
  plain TCP backend, which reads the decrypted bytes;
- mixed mode: a Passthrough listener on the same port, chosen by SNI, hands the client's
  own TLS to a TLS backend;
- HTTPS listeners sharing a port answer 421 over HTTP/2 to a request whose :authority
  belongs to another listener than the one SNI chose, 404 for an unknown host on the
  catch-all listener's own chain;
- a CORS preflight from an origin not allowed is answered by the Gateway, without CORS
  headers (not forwarded to the backend);
- HTTPRoute `retry`: a backend failing with a listed code is tried again, up to
  `attempts` more times; an unlisted code is not retried."""

from __future__ import annotations

import base64
import http.server
import socket
import socketserver
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from cryptography import x509
from e2e_harness import Running, start_propylon, stop_propylon
from selfsigned_cert import self_signed

from propylon.testing.launcher import wait_for

pytestmark = pytest.mark.e2e

TLS_PORT = 8883  # Terminate (tls.example.com) and Passthrough (abc.example.com)
HTTPS_PORT = 8443  # HTTPS: one listener without hostname, one for second.example.org
HTTP_PORT = 8080  # HTTP: the retry routes
GATEWAY_HOSTS = ["tls.example.com", "example.org", "second.example.org", "unknown.example.org"]


class _PlainEcho(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline()
        self.wfile.write(b"plain " + line)


class _TLSEcho(socketserver.StreamRequestHandler):
    """Ends TLS itself (the passthrough backend): answers with the SNI it was given."""

    def setup(self) -> None:
        context: ssl.SSLContext = self.server.context  # type: ignore[attr-defined]
        self.request = context.wrap_socket(self.request, server_side=True)
        super().setup()

    def handle(self) -> None:
        line = self.rfile.readline()
        self.wfile.write(b"backend-tls " + line)


class _HTTP(http.server.BaseHTTPRequestHandler):
    """Names itself; with `succeedAfter`, answers `responseCode` to the first that many
    requests of one `uuid` (the conformance echo server's retry simulation)."""

    attempts: Counter[str] = Counter()
    lock = threading.Lock()

    def do_GET(self) -> None:
        query = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
        code = 200
        if "stallFirst" in query or "dropFirst" in query:  # the first try of a uuid only
            with self.lock:
                first = self.attempts[query["uuid"]] == 0
                self.attempts[query["uuid"]] += 1
            if first and "dropFirst" in query:
                self.close_connection = True
                return  # no answer: the backend closed the connection
            if first:
                time.sleep(int(query["stallFirst"]) / 1000)
        if "succeedAfter" in query:
            with self.lock:
                seen = self.attempts[query["uuid"]]
                if seen < int(query["succeedAfter"]):
                    self.attempts[query["uuid"]] += 1
                    code = int(query["responseCode"])
        body = f"backend {self.headers['Host']}".encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Threading(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def backends(tmp_path: Path) -> Iterator[dict[str, socketserver.BaseServer]]:
    crt, key = self_signed(["abc.example.com"])
    (tmp_path / "backend.crt").write_text(crt)
    (tmp_path / "backend.key").write_text(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "backend.crt", tmp_path / "backend.key")
    servers: dict[str, socketserver.BaseServer] = {
        "plain": _Threading(("127.0.0.1", 0), _PlainEcho),
        "tls": _Threading(("127.0.0.1", 0), _TLSEcho),
        "http": http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HTTP),
    }
    servers["tls"].context = context  # type: ignore[attr-defined]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers.values()]
    for thread in threads:
        thread.start()
    try:
        yield servers
    finally:
        for server in servers.values():
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join(timeout=10)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _service(name: str, port: int) -> str:
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec: {{ports: [{{name: p, port: 7000}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: p, port: {port}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
"""


def _manifests(crt: str, key: str, ports: dict[str, int]) -> str:
    tls = "tls: {certificateRefs: [{name: gateway-cert}]}"
    routes = """
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: terminated}
spec:
  parentRefs: [{name: gw, sectionName: tls-terminate}]
  hostnames: [tls.example.com]
  rules: [{backendRefs: [{name: plain, port: 7000}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: passed-through}
spec:
  parentRefs: [{name: gw, sectionName: tls-passthrough}]
  hostnames: [abc.example.com]
  rules: [{backendRefs: [{name: tls, port: 7000}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: any-host}
spec:
  parentRefs: [{name: gw, sectionName: https}]
  hostnames: [example.org]
  rules: [{backendRefs: [{name: http, port: 7000}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: second}
spec:
  parentRefs: [{name: gw, sectionName: https-second}]
  rules: [{backendRefs: [{name: http, port: 7000}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: retries}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /retry-500}}]
    retry: {codes: [500], attempts: 2, backoff: 1ms}
    backendRefs: [{name: http, port: 7000}]
  - matches: [{path: {type: PathPrefix, value: /retry-errors}}]
    timeouts: {request: 10s, backendRequest: 500ms}
    retry: {attempts: 1, backoff: 1ms}
    backendRefs: [{name: http, port: 7000}]
  - matches: [{path: {type: PathPrefix, value: /no-retry}}]
    timeouts: {request: 10s, backendRequest: 500ms}
    backendRefs: [{name: http, port: 7000}]
  - matches: [{path: {type: PathPrefix, value: /cors}}]
    filters: [{type: CORS, cors: {allowOrigins: ["https://www.foo.com"], allowMethods: [GET]}}]
    backendRefs: [{name: http, port: 7000}]
"""
    gateway = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: cilium}}
spec: {{controllerName: io.cilium/gateway-controller}}
---
apiVersion: v1
kind: Secret
metadata: {{name: gateway-cert}}
type: kubernetes.io/tls
data: {{tls.crt: {_b64(crt)}, tls.key: {_b64(key)}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw}}
spec:
  gatewayClassName: cilium
  listeners:
  - {{name: tls-terminate, port: {TLS_PORT}, protocol: TLS, hostname: tls.example.com,
     tls: {{mode: Terminate, certificateRefs: [{{name: gateway-cert}}]}}}}
  - {{name: tls-passthrough, port: {TLS_PORT}, protocol: TLS, hostname: abc.example.com,
     tls: {{mode: Passthrough}}}}
  - {{name: https, port: {HTTPS_PORT}, protocol: HTTPS, {tls}}}
  - {{name: https-second, port: {HTTPS_PORT}, protocol: HTTPS, hostname: second.example.org,
     {tls}}}
  - {{name: http, port: {HTTP_PORT}, protocol: HTTP}}
"""
    services = "---".join(_service(name, port) for name, port in ports.items())
    return "---".join([gateway, services, routes])


def _port(server: socketserver.BaseServer) -> int:
    address = server.server_address
    assert isinstance(address, tuple)
    return int(address[1])


@pytest.fixture
def running(
    tmp_path: Path, backends: dict[str, socketserver.BaseServer]
) -> Iterator[tuple[Running, Path]]:
    crt, key = self_signed(GATEWAY_HOSTS)
    ca = tmp_path / "gateway-ca.pem"
    ca.write_text(crt)
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    ports = {name: _port(server) for name, server in backends.items()}
    (manifests / "all.yaml").write_text(_manifests(crt, key, ports))
    running = start_propylon(manifests, tmp_path / "state")
    try:
        yield running, ca
    finally:
        stop_propylon(running)


def _gateway_ready(running: Running) -> str:
    address = running.gateway_address("gw")

    def all_listeners_programmed() -> bool:
        gw = running.object("Gateway", "gw") or {}
        listeners = gw.get("status", {}).get("listeners") or []
        return len(listeners) == 5 and all(
            c["status"] == "True"
            for li in listeners
            for c in li["conditions"]
            if c["type"] in ("Accepted", "Programmed")
        )

    wait_for(all_listeners_programmed, timeout=60, what="every listener Programmed")
    running.wait_synced()
    return address


def _tls_line(address: str, sni: str, ca: Path | None) -> tuple[str, str]:
    """TLS to the Gateway with `sni`, one line sent; (the reply, the server
    certificate's first DNS name). `ca` None: any certificate is taken."""
    context = ssl.create_default_context(cafile=ca) if ca else ssl._create_unverified_context()
    with (
        socket.create_connection((address, TLS_PORT), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=sni) as conn,
    ):
        der = conn.getpeercert(binary_form=True)
        conn.sendall(b"ping\n")
        reply = conn.makefile("rb").readline().decode()
    assert der is not None
    san = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    return reply, san.value.get_values_for_type(x509.DNSName)[0]


def test_tls_terminate_and_passthrough_on_one_port(running: tuple[Running, Path]) -> None:
    proc, ca = running
    address = _gateway_ready(proc)
    # Terminate: the Gateway's certificate (verified against it), the backend got the
    # plain bytes.
    reply, cert_host = wait_for(
        lambda: _tls_line(address, "tls.example.com", ca), timeout=60, what="terminated TLS"
    )
    assert (reply, cert_host) == ("plain ping\n", "tls.example.com")
    # Passthrough on the same port: the backend's own certificate and TLS.
    reply, cert_host = wait_for(
        lambda: _tls_line(address, "abc.example.com", None), timeout=60, what="passthrough"
    )
    assert (reply, cert_host) == ("backend-tls ping\n", "abc.example.com")
    # Neither listener's SNI: no chain, the connection is refused during the handshake.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _tls_line(address, "other.example.com", None)


def _h2(address: str, ca: Path, sni: str, host: str) -> httpx.Response:
    with httpx.Client(http2=True, verify=ssl.create_default_context(cafile=ca)) as client:
        response = client.get(
            f"https://{address}:{HTTPS_PORT}/x",
            headers={"Host": host},
            extensions={"sni_hostname": sni},
        )
    assert response.http_version == "HTTP/2"
    return response


def test_https_misdirected_requests_answer_421_over_http2(running: tuple[Running, Path]) -> None:
    proc, ca = running
    address = _gateway_ready(proc)

    def served() -> httpx.Response | None:
        response = _h2(address, ca, "example.org", "example.org")
        return response if response.status_code == 200 else None

    ok = wait_for(served, timeout=60, what="example.org through HTTPS")
    assert ok.text == "backend example.org"
    cases = [
        # (SNI, :authority, status): SNI example.org chose the listener without hostname
        ("example.org", "second.example.org", 421),  # second.example.org's listener's host
        ("example.org", "unknown.example.org", 404),  # its own host, no route
        ("second.example.org", "second.example.org", 200),
        ("second.example.org", "example.org", 421),  # the catch-all listener's host
        ("second.example.org", "unknown.example.org", 421),
    ]
    got = [(sni, host, _h2(address, ca, sni, host).status_code) for sni, host, _ in cases]
    assert got == cases


def test_retry_on_listed_codes_up_to_attempts(running: tuple[Running, Path]) -> None:
    proc, _ = running
    address = _gateway_ready(proc)
    counter = iter(range(1_000_000))

    def get(code: int, succeed_after: int) -> int:
        query = f"responseCode={code}&succeedAfter={succeed_after}&uuid=u{next(counter)}"
        return httpx.get(f"http://{address}:{HTTP_PORT}/retry-500?{query}", timeout=10).status_code

    wait_for(lambda: get(500, 0) == 200, timeout=60, what="the retry route")
    assert get(500, 2) == 200  # two failures, two retries: the third try answers
    assert get(500, 3) == 500  # a third failure is more than attempts: 2
    assert get(503, 1) == 503  # 503 is not listed: not retried


def test_retry_after_a_backend_timeout_or_a_dropped_connection(
    running: tuple[Running, Path],
) -> None:
    """HTTPRouteRetryBackendTimeout and HTTPRouteRetryConnectionError: a try that outlives
    timeouts.backendRequest, or whose connection the backend closes unanswered, is tried
    again; without `retry` the client gets Envoy's 504 / 503."""
    proc, _ = running
    address = _gateway_ready(proc)
    counter = iter(range(1_000_000))

    def get(path: str, fault: str) -> int:
        query = f"{fault}&uuid=e{next(counter)}"
        return httpx.get(f"http://{address}:{HTTP_PORT}{path}?{query}", timeout=10).status_code

    wait_for(lambda: get("/retry-errors", "x=0") == 200, timeout=60, what="the retry route")
    wait_for(lambda: get("/no-retry", "x=0") == 200, timeout=60, what="the no-retry route")
    assert get("/retry-errors", "stallFirst=2000") == 200
    assert get("/retry-errors", "dropFirst=1") == 200
    assert get("/no-retry", "stallFirst=2000") == 504
    assert get("/no-retry", "dropFirst=1") == 503


def test_cors_preflight_from_another_origin_is_not_forwarded(
    running: tuple[Running, Path],
) -> None:
    proc, _ = running
    address = _gateway_ready(proc)

    def preflight(origin: str) -> httpx.Response:
        headers = {"Origin": origin, "Access-Control-Request-Method": "GET"}
        return httpx.options(f"http://{address}:{HTTP_PORT}/cors", headers=headers, timeout=10)

    def served() -> httpx.Response | None:
        response = preflight("https://www.foo.com")
        return response if response.status_code == 200 else None

    allowed = wait_for(served, timeout=60, what="the CORS route")
    assert allowed.headers["access-control-allow-origin"] == "https://www.foo.com"
    other = preflight("https://foobar.com")
    assert other.status_code in (200, 204, 403)
    assert "access-control-allow-origin" not in other.headers
    assert not other.text.startswith("backend")  # the backend never saw it
