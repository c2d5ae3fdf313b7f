"""Cilium's listener-wide knobs, standalone (`propylon run`, real Envoy, real backends).

From a CiliumGatewayClassConfig: loadBalancerSourceRanges with Deny and then Allow (a
changed class config reaches every Gateway of the class), the backend's Server header
passed through, JSON and text access logs with the Gateway placeholders, gRPC-Web
translation. From the values: ALPN on HTTPS listeners (enableAlpn), the backend protocol
from the Service port's appProtocol (enableAppProtocol: h2c), and the PROXY protocol
(enableProxyProtocol, v1 and v2 headers over a raw socket, with source ranges applied to
the address in the header).

Client source addresses: a socket bound to 127.77.0.1 before it connects is a client
from 127.77.0.0/16; a PROXY header's addresses are only values (198.18.0.0/15)."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from e2e_harness import Running, start_propylon, stop_propylon
from selfsigned_cert import self_signed
from waiting import wait_for

from propylon.demo.echo import EchoContext, EchoServer
from propylon.demo.echo.h2c import H2cEchoServer

pytestmark = pytest.mark.e2e

DENIED_SOURCE = "127.77.0.1"  # inside the class config's range 127.77.0.0/16
PLAIN_SOURCE = "127.0.0.1"
HOST = "knobs.example.com"
BACKEND_SERVER = "knobs-backend/1.0"


# --- backends ------------------------------------------------------------------------


class _Echo(BaseHTTPRequestHandler):
    """Answers every request with its headers as JSON, and its own Server header."""

    protocol_version = "HTTP/1.1"

    def version_string(self) -> str:
        return BACKEND_SERVER

    def do_GET(self) -> None:
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Backends:
    plain: int
    h2c: int
    grpc: int


@pytest.fixture(scope="module")
def backends() -> Iterator[Backends]:
    plain = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    plain.daemon_threads = True
    threading.Thread(target=plain.serve_forever, daemon=True).start()

    # The h2c echo (prior knowledge only: an HTTP/1.1 request to it fails) on a loop of
    # its own.
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    h2c = H2cEchoServer(EchoServer(EchoContext(service="h2c")))
    asyncio.run_coroutine_threadsafe(h2c.start("127.0.0.1", 0), loop).result(30)

    grpc = subprocess.Popen(
        [sys.executable, "-m", "propylon.demo", "grpc-server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert grpc.stdout is not None
    line = grpc.stdout.readline()  # "grpc-server listening on 127.0.0.1:PORT"
    try:
        assert "listening on" in line, line
        yield Backends(int(plain.server_address[1]), h2c.port, int(line.rsplit(":", 1)[1]))
    finally:
        grpc.terminate()
        grpc.wait(timeout=10)
        asyncio.run_coroutine_threadsafe(h2c.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        plain.shutdown()
        plain.server_close()


# --- manifests -----------------------------------------------------------------------


def _service(name: str, port: int, app_protocol: str | None = None) -> str:
    proto = f", appProtocol: {app_protocol}" if app_protocol else ""
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  ports: [{{name: p, port: 80{proto}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}
  namespace: default
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports: [{{name: p, port: {port}}}]
endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]
---"""


def class_config(ranges: list[str], policy: str, extra: str = "") -> str:
    return f"""
apiVersion: cilium.io/v2alpha1
kind: CiliumGatewayClassConfig
metadata: {{name: knobs-config, namespace: default}}
spec:
  service:
    loadBalancerSourceRanges: {json.dumps(ranges)}
    loadBalancerSourceRangesPolicy: {policy}
{extra}"""


KNOBS = """
  envoy: {serverHeaderTransformation: PASS_THROUGH}
  telemetry:
    accessLogs:
    - format: JSON
      json:
        gateway: "%CILIUM_GATEWAY_NAMESPACE%/%CILIUM_GATEWAY_NAME%"
        code: "%RESPONSE_CODE%"
        path: "%REQ(:PATH)%"
    - format: Text
      text: "text-log %CILIUM_GATEWAY_NAME% %RESPONSE_CODE% %REQ(:PATH)%"
"""


def write_manifests(directory: Path, backends: Backends, config: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    chain, key = self_signed([HOST])
    indent = "\n    "
    gateways = "".join(
        f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: knobs-{suffix}, namespace: default}}
spec:
  gatewayClassName: knobs
  listeners:
  - {{name: http, protocol: HTTP, port: 8080}}
  - name: https
    protocol: HTTPS
    port: 8443
    hostname: {HOST}
    tls: {{certificateRefs: [{{name: knobs-cert}}]}}
---"""
        for suffix in ("a", "b")
    )
    (directory / "objects.yaml").write_text(
        f"""
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: knobs}}
spec:
  controllerName: io.cilium/gateway-controller
  parametersRef: {{group: cilium.io, kind: CiliumGatewayClassConfig, name: knobs-config,
                  namespace: default}}
---
apiVersion: v1
kind: Secret
metadata: {{name: knobs-cert, namespace: default}}
type: kubernetes.io/tls
stringData:
  tls.crt: |
    {indent.join(chain.splitlines())}
  tls.key: |
    {indent.join(key.splitlines())}
---{gateways}
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: knobs, namespace: default}}
spec:
  parentRefs: [{{name: knobs-a}}, {{name: knobs-b}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /h2c}}}}]
    backendRefs: [{{name: h2c, port: 80}}]
  - backendRefs: [{{name: plain, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: knobs, namespace: default}}
spec:
  parentRefs: [{{name: knobs-a}}]
  rules:
  - matches: [{{method: {{service: test.v1.TestService, method: Ping}}}}]
    backendRefs: [{{name: grpc, port: 80}}]
---{_service("plain", backends.plain)}{_service("h2c", backends.h2c, "kubernetes.io/h2c")}\
{_service("grpc", backends.grpc, "kubernetes.io/h2c")}"""
    )
    (directory / "config.yaml").write_text(config)
    return directory


def start(tmp_path: Path, backends: Backends, config: str, *values: str) -> Running:
    manifests = write_manifests(tmp_path / "manifests", backends, config)
    sets = [arg for value in values for arg in ("--set", value)]
    running = start_propylon(manifests, tmp_path / "state", *sets)
    for gateway in ("knobs-a", "knobs-b"):
        running.gateway_address(gateway)
    running.wait_synced()
    return running


# --- clients -------------------------------------------------------------------------


def _connect(address: str, port: int, source: str) -> socket.socket:
    sock = socket.socket()
    sock.settimeout(5)
    sock.bind((source, 0))
    sock.connect((address, port))
    return sock


def _read_response(sock: socket.socket | ssl.SSLSocket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (status 0: the connection closed without one)."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return 0, {}, data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return int(lines[0].split()[1]), headers, body
    except (ConnectionError, TimeoutError):
        return 0, {}, data


def request(
    address: str,
    port: int,
    path: str = "/",
    *,
    source: str = PLAIN_SOURCE,
    preamble: bytes = b"",
    extra: bytes = b"",
) -> tuple[int, dict[str, str], bytes]:
    """GET `path` over a fresh connection from `source`, after `preamble` (a PROXY
    protocol header); status 0 when the connection is closed without an answer."""
    try:
        sock = _connect(address, port, source)
    except OSError:
        return 0, {}, b""
    with sock:
        try:
            sock.sendall(
                preamble
                + f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n".encode()
                + extra
                + b"\r\n"
            )
        except OSError:
            return 0, {}, b""
        return _read_response(sock)


def negotiated_alpn(address: str, *, preamble: bytes = b"") -> str | None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with _connect(address, 8443, PLAIN_SOURCE) as raw:
        raw.sendall(preamble)
        with ctx.wrap_socket(raw, server_hostname=HOST) as tls:
            return tls.selected_alpn_protocol()


def proxy_v1(source: str, destination: str) -> bytes:
    return f"PROXY TCP4 {source} {destination} 40000 8080\r\n".encode()


def proxy_v2(source: str, destination: str) -> bytes:
    signature = b"\r\n\r\n\x00\r\nQUIT\n"
    addresses = (
        socket.inet_aton(source) + socket.inet_aton(destination) + struct.pack("!HH", 40000, 8080)
    )
    # version 2, command PROXY; TCP over IPv4; the length of the address block
    return signature + bytes([0x21, 0x11]) + struct.pack("!H", len(addresses)) + addresses


def grpc_web_ping(address: str, source: str = PLAIN_SOURCE) -> tuple[int, dict[str, str], bytes]:
    """A gRPC-Web call of test.v1.TestService/Ping (an empty message) over HTTP/1.1."""
    frame = b"\x00" + struct.pack("!I", 0)
    with _connect(address, 8080, source) as sock:
        sock.sendall(
            b"POST /test.v1.TestService/Ping HTTP/1.1\r\nHost: "
            + HOST.encode()
            + b"\r\ncontent-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\n"
            + b"content-length: 5\r\nConnection: close\r\n\r\n"
            + frame
        )
        status, headers, body = _read_response(sock)
        if headers.get("transfer-encoding") == "chunked" or "content-length" not in headers:
            while chunk := sock.recv(65536):
                body += chunk
        return status, headers, body


def envoy_log(running: Running) -> str:
    path = running.state_dir / "envoy" / "envoy.log"
    return path.read_text(errors="replace") if path.exists() else ""


# --- tests ---------------------------------------------------------------------------


def test_class_config_knobs(tmp_path: Path, backends: Backends) -> None:
    running = start(tmp_path, backends, class_config(["127.77.0.0/16"], "Deny", KNOBS))
    try:
        a = running.gateway_address("knobs-a")
        b = running.gateway_address("knobs-b")

        # loadBalancerSourceRanges, Deny: the range's clients are cut off, others served.
        status, headers, body = request(a, 8080, "/plain")
        assert status == 200, (status, body)
        assert request(a, 8080, source=DENIED_SOURCE)[0] == 0
        assert request(b, 8080, source=DENIED_SOURCE)[0] == 0
        assert request(b, 8080)[0] == 200

        # serverHeaderTransformation PASS_THROUGH: the backend's own Server header.
        assert headers.get("server") == BACKEND_SERVER

        # Access logs: the JSON and the text line, the Gateway placeholders filled in.
        def logged() -> list[dict[str, Any]]:
            out = []
            for line in envoy_log(running).splitlines():
                if line.startswith("{"):
                    entry = json.loads(line)
                    if entry.get("path") == "/plain":
                        out.append(entry)
            return out

        entries = wait_for("the JSON access log line", logged, timeout=30)
        assert any(
            e["gateway"] == "default/knobs-a" and str(e["code"]) == "200" for e in entries
        ), entries
        wait_for(
            "the text access log line",
            lambda: "text-log knobs-a 200 /plain" in envoy_log(running),
            timeout=30,
        )

        # enableAppProtocol (default on): a kubernetes.io/h2c port is reached over HTTP/2.
        status, _, body = request(a, 8080, "/h2c")
        assert status == 200, (status, body)
        assert json.loads(body)["proto"] == "HTTP/2.0"

        # enableAlpn (default on): the HTTPS listener negotiates h2.
        assert negotiated_alpn(a) == "h2"

        # gRPC-Web is translated to gRPC (on by default): a trailer frame with grpc-status 0.
        status, headers, body = grpc_web_ping(a)
        assert headers["content-type"].startswith("application/grpc-web"), headers
        assert b"grpc-status:0" in body.replace(b" ", b""), body

        # The class config changes to Allow: both Gateways follow.
        (running.manifests / "config.yaml").write_text(
            class_config(
                ["127.77.0.0/16"], "Allow", "  httpOptions: {grpcWebTranslation: {enabled: false}}"
            )
        )
        for gw in (a, b):
            wait_for(
                f"{gw}: the Allow range served",
                lambda gw=gw: request(gw, 8080, "/plain", source=DENIED_SOURCE)[0] == 200,
                timeout=30,
            )
            assert request(gw, 8080, "/plain")[0] == 0
        # The rest of the old config is gone with it: Envoy's own Server header again, and
        # gRPC-Web reaches the gRPC backend untranslated (no gRPC-Web answer).
        status, headers, _ = request(a, 8080, "/plain", source=DENIED_SOURCE)
        assert headers.get("server") == "envoy"
        status, headers, body = grpc_web_ping(a, DENIED_SOURCE)
        assert not headers.get("content-type", "").startswith("application/grpc-web"), (
            status,
            headers,
            body,
        )
    finally:
        stop_propylon(running)


def test_proxy_protocol_without_alpn_and_app_protocol(tmp_path: Path, backends: Backends) -> None:
    running = start(
        tmp_path,
        backends,
        class_config(["198.18.7.0/24"], "Allow"),
        "gatewayAPI.enableProxyProtocol=true",
        "gatewayAPI.enableAlpn=false",
        "gatewayAPI.enableAppProtocol=false",
    )
    try:
        a = running.gateway_address("knobs-a")
        # The client's address comes from the PROXY header, v1 or v2: the backend sees it
        # in X-Forwarded-For, and the source ranges apply to it.
        for header in (proxy_v1, proxy_v2):
            status, _, body = request(a, 8080, "/plain", preamble=header("198.18.7.7", a))
            assert status == 200, (header.__name__, status, body)
            assert json.loads(body)["x-forwarded-for"] == "198.18.7.7"
            assert request(a, 8080, "/plain", preamble=header("198.18.8.8", a))[0] == 0
        # Without a PROXY header there is no answer.
        assert request(a, 8080, "/plain")[0] == 0

        # enableAlpn=false: the HTTPS listener negotiates no application protocol.
        assert negotiated_alpn(a, preamble=proxy_v1("198.18.7.7", a)) is None

        # enableAppProtocol=false: the h2c port is spoken to in HTTP/1.1, which it refuses.
        status, _, body = request(a, 8080, "/h2c", preamble=proxy_v1("198.18.7.7", a))
        assert status == 502 and b"protocol error" in body, (status, body)
    finally:
        stop_propylon(running)
