"""gatewayAPI.enableProxyProtocol and enableAlpn on the 3-node dev cluster, with Envoy
embedded in the agents (envoy.enabled=false), the host namespace playing a load balancer
that speaks the PROXY protocol and the clients behind it:

- PROXY v1 and v2 headers through the LoadBalancer address: the echo backend sees the
  header's client address in X-Forwarded-For and X-Envoy-External-Address; without a
  header the connection gets no answer.
- ALPN: the HTTPS listener negotiates h2, and an HTTP/2 request reaches the backend.
- TLS passthrough: the TLS backend answers with no X-Forwarded-For, and its own log
  shows the connection came from a node (Envoy), not from the client nor from the
  address the PROXY header claimed.
- telemetry.accessLogs (class config): the embedded Envoy's access log line is on the
  agent's standard output, so `kubectl logs` of the agent pod shows it.

The PROXY header's client addresses are TEST-NET values; nothing is ever sent to them."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import h2.connection
import h2.events
import pytest
from chart_install import installed
from echo_backend import ECHO_IMAGE, echo_backend
from selfsigned_cert import self_signed
from waiting import wait_for

from devcluster import network

HOST = "pp.example.com"
PASS_HOST = "pass.example.com"
CLIENT_V1 = "203.0.113.41"  # TEST-NET-3: header values only
CLIENT_V2 = "203.0.113.42"
CLIENT_PASSTHROUGH = "203.0.113.43"
ACCESS = "pp-access"


def manifests(cert: str, key: str, backend_cert: str, backend_key: str) -> str:
    def b64(pem: str) -> str:
        return base64.b64encode(pem.encode()).decode()

    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: pp}}
spec:
  controllerName: io.cilium/gateway-controller
  parametersRef: {{group: cilium.io, kind: CiliumGatewayClassConfig, name: pp-config,
                  namespace: default}}
---
apiVersion: cilium.io/v2alpha1
kind: CiliumGatewayClassConfig
metadata: {{name: pp-config, namespace: default}}
spec:
  telemetry:
    accessLogs:
    - format: Text
      targets: [HTTP, TCP]
      text: "{ACCESS} %CILIUM_GATEWAY_NAMESPACE%/%CILIUM_GATEWAY_NAME% %PROTOCOL% \
%RESPONSE_CODE% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%\\n"
---
apiVersion: v1
kind: Secret
metadata: {{name: pp-cert, namespace: default}}
type: kubernetes.io/tls
data: {{tls.crt: {b64(cert)}, tls.key: {b64(key)}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: pp-backend-cert, namespace: default}}
type: kubernetes.io/tls
data: {{tls.crt: {b64(backend_cert)}, tls.key: {b64(backend_key)}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: pp, namespace: default}}
spec:
  gatewayClassName: pp
  listeners:
  - {{name: http, protocol: HTTP, port: 8080}}
  - name: https
    protocol: HTTPS
    port: 8443
    hostname: {HOST}
    tls: {{certificateRefs: [{{name: pp-cert}}]}}
  - name: passthrough
    protocol: TLS
    port: 9443
    hostname: {PASS_HOST}
    tls: {{mode: Passthrough}}
    allowedRoutes: {{kinds: [{{kind: TLSRoute}}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: pp, namespace: default}}
spec:
  parentRefs: [{{name: pp, sectionName: http}}, {{name: pp, sectionName: https}}]
  rules: [{{backendRefs: [{{name: pp-echo, port: 3000}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {{name: pp-passthrough, namespace: default}}
spec:
  parentRefs: [{{name: pp, sectionName: passthrough}}]
  hostnames: [{PASS_HOST}]
  rules: [{{backendRefs: [{{name: pp-tls-echo, port: 443}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: pp-tls-echo, namespace: default}}
spec:
  selector: {{app: pp-tls-echo}}
  ports: [{{name: https, port: 443, targetPort: 8443}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: pp-tls-echo, namespace: default}}
spec:
  selector: {{matchLabels: {{app: pp-tls-echo}}}}
  template:
    metadata: {{labels: {{app: pp-tls-echo}}}}
    spec:
      containers:
      - name: echo
        image: {ECHO_IMAGE}
        volumeMounts: [{{name: certs, mountPath: /etc/secret-volume}}]
        env:
        - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
        - {{name: NAMESPACE, valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}}}
        - {{name: TLS_SERVER_CERT, value: /etc/secret-volume/crt}}
        - {{name: TLS_SERVER_PRIVKEY, value: /etc/secret-volume/key}}
        readinessProbe: {{httpGet: {{path: /, port: 3000}}, periodSeconds: 2}}
      volumes:
      - name: certs
        secret:
          secretName: pp-backend-cert
          items: [{{key: tls.crt, path: crt}}, {{key: tls.key, path: key}}]
{echo_backend("pp-echo")}"""


@dataclass
class Setup:
    cluster: Any
    address: str
    cert: str
    backend_cert: str


def _programmed_address(cluster: Any) -> str | None:
    out = cluster.kubectl(
        "get",
        "gateway",
        "pp",
        "-o=jsonpath={.status.addresses[0].value}"
        "{' '}{.status.conditions[?(@.type=='Programmed')].status}",
        check=False,
    ).split()
    return out[0] if len(out) == 2 and out[1] == "True" else None


@pytest.fixture(scope="module")
def setup(devcluster: Any) -> Iterator[Setup]:
    cluster = devcluster
    if len(cluster.nodes) < 3:
        pytest.skip("needs a 3-node dev cluster (PROPYLON_DEVCLUSTER_NODES=3)")
    values = [
        "envoy.enabled=false",  # Envoy embedded: its access log is the agent pod's log
        "gatewayAPI.enableProxyProtocol=true",
        "gatewayAPI.enableAlpn=true",
    ]
    cert, key = self_signed([HOST])
    backend_cert, backend_key = self_signed([PASS_HOST])
    text = manifests(cert, key, backend_cert, backend_key)
    with installed(cluster, values, manifests=text):
        address = wait_for("Gateway pp Programmed", lambda: _programmed_address(cluster), 180)
        yield Setup(cluster, address, cert, backend_cert)


# --- clients ------------------------------------------------------------------------------


def proxy_v1(client: str, destination: str, port: int) -> bytes:
    return f"PROXY TCP4 {client} {destination} 40000 {port}\r\n".encode()


def proxy_v2(client: str, destination: str, port: int) -> bytes:
    signature = b"\r\n\r\n\x00\r\nQUIT\n"
    block = socket.inet_aton(client) + socket.inet_aton(destination)
    block += struct.pack("!HH", 40000, port)
    # version 2 + command PROXY, then TCP over IPv4, then the address block's length
    return signature + bytes([0x21, 0x11]) + struct.pack("!H", len(block)) + block


def _read_http1(sock: socket.socket | ssl.SSLSocket) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 answer (Connection: close); 0 without one."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (OSError, ssl.SSLError):
        pass
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 "):
        return 0, data
    return int(head.split()[1]), body


def http1_get(address: str, port: int, preamble: bytes, host: str = HOST) -> tuple[int, bytes]:
    """GET / over a new connection that starts with `preamble` (a PROXY header, or none)."""
    try:
        with socket.create_connection((address, port), timeout=5) as sock:
            sock.sendall(
                preamble + f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            )
            return _read_http1(sock)
    except OSError:
        return 0, b""


def echoed_headers(body: bytes) -> dict[str, str]:
    """X-Forwarded-For and X-Envoy-External-Address as the echo backend received them."""
    headers = json.loads(body)["headers"]
    wanted = ("X-Forwarded-For", "X-Envoy-External-Address")
    return {name: ",".join(headers[name]) for name in wanted if name in headers}


def _tls(
    address: str, port: int, preamble: bytes, server_name: str, ca: str, alpn: list[str]
) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cadata=ca)
    ctx.set_alpn_protocols(alpn)
    raw = socket.create_connection((address, port), timeout=5)
    try:
        raw.sendall(preamble)
        return ctx.wrap_socket(raw, server_hostname=server_name)
    except BaseException:
        raw.close()
        raise


def h2_get(tls: ssl.SSLSocket, host: str) -> tuple[int, bytes]:
    """One HTTP/2 GET / on a TLS connection that negotiated h2."""
    conn = h2.connection.H2Connection()
    conn.initiate_connection()
    conn.send_headers(
        1,
        [(":method", "GET"), (":scheme", "https"), (":authority", host), (":path", "/")],
        end_stream=True,
    )
    tls.sendall(conn.data_to_send())
    status, body = 0, b""
    while True:
        data = tls.recv(65536)
        if not data:
            return status, body
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                status = int(dict(event.headers)[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                return status, body
        tls.sendall(conn.data_to_send())


def _agent_logs(cluster: Any) -> str:
    return str(
        cluster.kubectl(
            "logs",
            "-n",
            "kube-system",
            "-l",
            "app.kubernetes.io/name=propylon-agent",
            "--tail=-1",
            check=False,
        )
    )


# --- tests --------------------------------------------------------------------------------


def test_proxy_protocol_v1_and_v2_through_the_load_balancer(setup: Setup) -> None:
    """The host's connections reach every node's Envoy through the LoadBalancer address;
    each names its client in a PROXY header, which is what the backend is told."""
    a = setup.address
    _, body = wait_for(
        "an answer through the PROXY protocol",
        lambda: (r := http1_get(a, 8080, proxy_v1(CLIENT_V1, a, 8080)))[0] == 200 and r,
        120,
    )
    assert echoed_headers(body) == {
        "X-Forwarded-For": CLIENT_V1,
        "X-Envoy-External-Address": CLIENT_V1,
    }
    # New connections spread over the three nodes (ECMP): each node's Envoy reads both.
    for _ in range(6):
        for client, header in ((CLIENT_V1, proxy_v1), (CLIENT_V2, proxy_v2)):
            status, body = http1_get(a, 8080, header(client, a, 8080))
            assert status == 200
            assert echoed_headers(body) == {
                "X-Forwarded-For": client,
                "X-Envoy-External-Address": client,
            }, f"PROXY {header.__name__}"
    # A connection without the header is closed unanswered: the listener expects one.
    assert [http1_get(a, 8080, b"")[0] for _ in range(3)] == [0, 0, 0]


def test_https_listener_negotiates_h2(setup: Setup) -> None:
    a = setup.address
    preamble = proxy_v2(CLIENT_V2, a, 8443)

    def h2_answer() -> tuple[str | None, int, bytes] | None:
        try:
            with _tls(a, 8443, preamble, HOST, setup.cert, ["h2", "http/1.1"]) as tls:
                protocol = tls.selected_alpn_protocol()
                status, body = h2_get(tls, HOST) if protocol == "h2" else (0, b"")
                return (protocol, status, body) if status == 200 else None
        except (OSError, ssl.SSLError):
            return None

    protocol, _, body = wait_for("HTTP/2 over TLS through the Gateway", h2_answer, 120)
    assert protocol == "h2"
    assert echoed_headers(body)["X-Forwarded-For"] == CLIENT_V2
    # A client that offers only http/1.1 gets it.
    with _tls(a, 8443, preamble, HOST, setup.cert, ["http/1.1"]) as tls:
        assert tls.selected_alpn_protocol() == "http/1.1"


def test_tls_passthrough_backend_sees_envoy_and_no_header(setup: Setup) -> None:
    """Envoy never sees HTTP on a passthrough listener: the backend's TLS connection comes
    from the node's Envoy, and nothing carries the client's address (neither the host's
    nor the one in the PROXY header)."""
    cluster, a = setup.cluster, setup.address
    preamble = proxy_v1(CLIENT_PASSTHROUGH, a, 9443)

    def through() -> tuple[str | None, int, bytes] | None:
        try:
            with _tls(a, 9443, preamble, PASS_HOST, setup.backend_cert, ["http/1.1"]) as tls:
                tls.sendall(
                    f"GET / HTTP/1.1\r\nHost: {PASS_HOST}\r\nConnection: close\r\n\r\n".encode()
                )
                status, body = _read_http1(tls)
                return (tls.selected_alpn_protocol(), status, body) if status == 200 else None
        except (OSError, ssl.SSLError):
            return None

    _, _, body = wait_for("the TLS backend through the passthrough listener", through, 120)
    answer = json.loads(body)
    # The backend ended the client's TLS itself: its certificate, our SNI.
    assert answer["tls"]["serverName"] == PASS_HOST
    assert echoed_headers(body) == {}, "no X-Forwarded-For / X-Envoy-External-Address"
    pod = answer["pod"]
    # echo-basic logs each request's peer: Envoy's address on a node, never a client's.
    nodes = network.nodes(len(cluster.nodes))
    node_side = {n.ip for n in nodes} | {n.pod_gateway for n in nodes}

    def peers() -> list[str] | None:
        log = cluster.kubectl("logs", "-n", "default", pod, check=False)
        found = [
            line.rsplit("(", 1)[1].rstrip(")").rsplit(":", 1)[0]
            for line in log.splitlines()
            if line.startswith("Echoing back request made to")
        ]
        return found or None

    seen = wait_for("the request in the TLS backend's log", peers, 30)
    assert set(seen) <= node_side, f"peers {seen}, node addresses {sorted(node_side)}"
    assert network.HOST_ADDRESS not in seen and CLIENT_PASSTHROUGH not in seen


def test_access_log_in_the_agent_pods_log(setup: Setup) -> None:
    """envoy.enabled=false: the agent runs Envoy, whose standard output (the access log's
    default target, as in Cilium) is the agent's, so `kubectl logs` of the agent pods
    shows the lines, with the PROXY header's client."""
    cluster, a = setup.cluster, setup.address
    wait_for(
        "an answer through the PROXY protocol",
        lambda: http1_get(a, 8080, proxy_v1(CLIENT_V1, a, 8080))[0] == 200,
        120,
    )
    line = f"{ACCESS} default/pp HTTP/1.1 200 {CLIENT_V1}"

    def logged() -> bool:
        http1_get(a, 8080, proxy_v1(CLIENT_V1, a, 8080))
        return line in _agent_logs(cluster)

    wait_for(f"{line!r} in an agent pod's log", logged, 60)
