"""Conformance tests: GRPCRoute, backend protocols (h2c, websocket), CORS, request
mirroring and BackendTLSPolicy, transcribed from conformance/tests/*.go (v1.4.1).

Where upstream reads a Pod's logs (mirroring), these read the stood-in echo backend's
request log (one ``Echoing back request made to <path> to client ...`` line per request).
"""

from __future__ import annotations

import base64
import os
import random
import socket
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import checks
from .client import (
    Captured,
    Expect,
    await_convergence,
    compare,
    eventually,
    eventually_fails,
    request,
)
from .harness import Cluster, Failure, wait_for
from .runner import conformance
from .suites import (
    INFRA,
    SAME,
    E,
    expect_all,
    grpc_call,
    grpc_eventually,
    routes_ready,
)

# --- GRPCRoute ----------


def _grpc_ready(c: Cluster, gw: tuple[str, str], routes: Sequence[str], **kw: Any) -> str:
    return checks.gateway_and_routes_accepted(
        c, gw, [(INFRA, r) for r in routes], kind="GRPCRoute", **kw
    )


@conformance("GRPCRouteHeaderMatching", ["GRPCRoute"], ["grpcroute-header-matching.yaml"])
def grpc_header_matching(c: Cluster) -> None:
    addr = _grpc_ready(c, SAME, ["grpc-header-matching"])
    v1, v2 = "grpc-infra-backend-v1", "grpc-infra-backend-v2"
    cases: list[tuple[dict[str, str], str]] = [
        ({"Version": "one"}, v1),
        ({"Version": "two"}, v2),
        ({"Version": "two", "Color": "orange"}, v1),
        ({"Version": "two", "Color": "blue"}, v2),
        ({"Color": "orange"}, ""),
        ({"Some-Other-Header": "one"}, ""),
        ({"Color": "blue"}, v1),
        ({"Color": "green"}, v1),
        ({"Color": "red"}, v2),
        ({"Color": "yellow"}, v2),
        ({"Color": "purple"}, ""),
    ]
    for metadata, backend in cases:
        # gRPC metadata keys are lower-case on the wire
        md = {k.lower(): v for k, v in metadata.items()}
        if backend:
            grpc_eventually(addr, "Echo", backend=backend, metadata=md)
        else:
            grpc_eventually(addr, "Echo", code="UNIMPLEMENTED", metadata=md)


@conformance(
    "GRPCRouteListenerHostnameMatching",
    ["GRPCRoute"],
    ["grpcroute-listener-hostname-matching.yaml"],
)
def grpc_listener_hostname_matching(c: Cluster) -> None:
    gw = (INFRA, "grpcroute-listener-hostname-matching")
    _grpc_ready(c, gw, ["backend-v1"], listeners=["listener-1"])
    _grpc_ready(c, gw, ["backend-v2"], listeners=["listener-2"])
    addr = _grpc_ready(c, gw, ["backend-v3"], listeners=["listener-3", "listener-4"])
    cases = [
        ("bar.com", "grpc-infra-backend-v1"),
        ("foo.bar.com", "grpc-infra-backend-v2"),
        ("baz.bar.com", "grpc-infra-backend-v3"),
        ("boo.bar.com", "grpc-infra-backend-v3"),
        ("multiple.prefixes.bar.com", "grpc-infra-backend-v3"),
        ("multiple.prefixes.foo.com", "grpc-infra-backend-v3"),
        ("foo.com", ""),
        ("no.matching.host", ""),
    ]
    for authority, backend in cases:
        if backend:
            grpc_eventually(addr, "Echo", backend=backend, authority=authority)
        else:
            grpc_eventually(addr, "Echo", code="UNIMPLEMENTED", authority=authority)


@conformance("GRPCRouteWeight", ["GRPCRoute"], ["grpcroute-weight.yaml"])
def grpc_weight(c: Cluster) -> None:
    from .suites import weighted_distribution

    addr = _grpc_ready(c, SAME, ["weighted-backends"])
    grpc_eventually(addr, "Echo")

    def send() -> str:
        code, response = grpc_call(addr, "Echo", metadata={"x-jitter": str(random.random())})
        if code != "OK":
            raise AssertionError(f"expected OK response, got {code}")
        ctx = response.assertions.context
        if ctx.namespace != INFRA:
            raise AssertionError(f"namespace {ctx.namespace}")
        return str(ctx.pod)

    weighted_distribution(
        send,
        {"grpc-infra-backend-v1": 0.7, "grpc-infra-backend-v2": 0.3, "grpc-infra-backend-v3": 0.0},
    )


@conformance(
    "GRPCRouteNamedRule",
    ["GRPCRoute", "GRPCRouteNamedRouteRule"],
    ["grpcroute-named-rule.yaml"],
    provisional=True,
)
def grpc_named_rule(c: Cluster) -> None:
    addr = _grpc_ready(c, SAME, ["grpc-named-rules"])
    grpc_eventually(addr, "Echo", backend="grpc-infra-backend-v1")
    grpc_eventually(addr, "EchoTwo", backend="grpc-infra-backend-v2")


# --- backend protocols ----------


def _h2c_request(addr: str, e: Expect) -> Captured:
    """HTTP/2 with prior knowledge over cleartext (roundtripper.H2CPriorKnowledgeProtocol)."""
    import json

    import httpx

    with httpx.Client(http1=False, http2=True, timeout=10) as client:
        resp = client.request(e.method, f"http://{addr}{e.path}", headers=e.headers)
    headers: dict[str, list[str]] = {}
    for k, v in resp.headers.multi_items():
        headers.setdefault(k.lower(), []).append(v)
    echo = None
    if resp.status_code == 200:
        try:
            echo = json.loads(resp.content)
        except ValueError:
            echo = None
    if resp.http_version != "HTTP/2":
        raise Failure(f"expected HTTP/2, got {resp.http_version}")
    return Captured(resp.status_code, headers, resp.content, resp.http_version, echo)


@conformance(
    "HTTPRouteBackendProtocolH2C",
    ["HTTPRoute", "HTTPRouteBackendProtocolH2C"],
    ["httproute-backend-protocol-h2c.yaml"],
)
def backend_protocol_h2c(c: Cluster) -> None:
    addr = checks.gateway_and_routes_accepted(c, SAME, [(INFRA, "backend-protocol-h2c")])
    e = E("/", "infra-backend-v1")
    await_convergence(
        lambda: compare(addr, "http", e, _h2c_request(addr, e)), what="h2c prior knowledge"
    )


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def _ws_read(sock: socket.socket) -> tuple[int, bytes]:
    b0, b1 = _recv_exact(sock, 2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(_recv_exact(sock, 2), "big")
    elif n == 127:
        n = int.from_bytes(_recv_exact(sock, 8), "big")
    mask = _recv_exact(sock, 4) if b1 & 0x80 else b""
    payload = _recv_exact(sock, n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return b0 & 0x0F, payload


def _websocket_roundtrip(addr: str, origin: str) -> str | None:
    """Dial ws://addr/ws, echo a text and a binary frame (golang.org/x/net/websocket)."""
    from propylon.demo.echo.websocket import OP_BINARY, OP_TEXT, accept_key, encode_frame

    host, _, port = addr.rpartition(":")
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Origin: {origin}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)
            if not chunk:
                return f"connection closed during handshake: {head!r}"
            head += chunk
        status_line, *lines = head.decode("latin-1").split("\r\n")
        if " 101 " not in status_line + " ":
            return f"handshake answered {status_line!r}"
        hdrs = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)}
        if hdrs.get("sec-websocket-accept") != accept_key(key):
            return f"bad Sec-WebSocket-Accept {hdrs.get('sec-websocket-accept')!r}"
        text = "Websocket Support!"
        sock.sendall(encode_frame(OP_TEXT, text.encode(), mask=os.urandom(4)))
        op, payload = _ws_read(sock)
        if op != OP_TEXT or payload.decode() != text:
            return f"unexpected text reply {op} {payload!r}"
        binary = bytes([1, 2, 3, 4, 5, 6, 7])
        sock.sendall(encode_frame(OP_BINARY, binary, mask=os.urandom(4)))
        op, payload = _ws_read(sock)
        if op != OP_BINARY or payload != binary:
            return f"unexpected binary reply {op} {payload!r}"
    return None


@conformance(
    "HTTPRouteBackendProtocolWebSocket",
    ["HTTPRoute", "HTTPRouteBackendProtocolWebSocket"],
    ["httproute-backend-protocol-websocket.yaml"],
)
def backend_protocol_websocket(c: Cluster) -> None:
    addr = checks.gateway_and_routes_accepted(c, SAME, [(INFRA, "backend-protocol-ws")])
    await_convergence(
        lambda: _websocket_roundtrip(addr, "ws://gateway/HTTPRouteBackendProtocolWebSocket"),
        what="websocket echo through the gateway",
    )


# --- CORS ----------


@conformance(
    "HTTPRouteCORSAllowCredentialsBehavior",
    ["HTTPRoute", "HTTPRouteCORS"],
    ["httproute-cors-allow-credentials-behavior.yaml"],
    fast=True,
)
def cors_allow_credentials(c: Cluster) -> None:
    addr = routes_ready(c, SAME, [(INFRA, "cors-allow-credentials")])
    origin = "https://app.example"
    creds = {"Cookie": "sid=abc123", "Authorization": "Bearer test"}
    acac = "Access-Control-Allow-Credentials"
    expect_all(
        addr,
        [
            E(
                "/cors-behavior-creds-false",
                ns=INFRA,
                headers={"Origin": origin, **creds},
                response_absent_headers=[acac],
            ),
            E(
                "/cors-behavior-creds-true",
                ns=INFRA,
                headers={"Origin": "http://not-app.example", **creds},
                response_absent_headers=[acac],
            ),
            E(
                "/cors-behavior-creds-true",
                ns=INFRA,
                headers={"Origin": origin, **creds},
                response_headers={acac: "true", "Access-Control-Allow-Origin": origin},
            ),
        ],
    )


# --- request mirroring ----------


def _log_offsets(c: Cluster, deployment: str) -> dict[str, int]:
    return {p.name: len(p.log.getvalue()) for p in c.backends.pods_of(INFRA, deployment)}


def _mirrored_lines(c: Cluster, deployment: str, since: dict[str, int], path: str) -> int:
    """Lines ``Echoing back request made to <path> to client`` logged after ``since``."""
    needle = f"Echoing back request made to {path} to client"
    count = 0
    for pod in c.backends.pods_of(INFRA, deployment):
        text = pod.log.getvalue()[since.get(pod.name, 0) :]
        count += sum(needle in line for line in text.splitlines())
    return count


def _mirror_cases(
    path: str, modify_path: str, mirrors: Sequence[str]
) -> list[tuple[Expect, Sequence[str]]]:
    """The plain case and the one with a RequestHeaderModifier, as upstream's."""
    return [
        (E(path, "infra-backend-v1"), mirrors),
        (
            E(
                modify_path,
                "infra-backend-v1",
                headers={"X-Header-Remove": "remove-val", "X-Header-Add-Append": "append-val-1"},
                expected_headers={
                    "X-Header-Add": "header-val-1",
                    "X-Header-Add-Append": "append-val-1,header-val-2",
                    "X-Header-Set": "set-overwrites-values",
                },
                absent_headers=["X-Header-Remove"],
            ),
            mirrors,
        ),
    ]


def _expect_mirrored(c: Cluster, addr: str, cases: list[tuple[Expect, Sequence[str]]]) -> None:
    for e, mirrors in cases:
        since = {m: _log_offsets(c, m) for m in mirrors}
        eventually(addr, e)
        for m in mirrors:
            wait_for(
                lambda m=m, since=since, path=e.path: _mirrored_lines(c, m, since[m], path) > 0,
                timeout=60,
                what=f"mirrored request {e.path} in {INFRA}/{m} logs",
            )


@conformance(
    "HTTPRouteRequestMirror",
    ["HTTPRoute", "HTTPRouteRequestMirror"],
    ["httproute-request-mirror.yaml"],
)
def request_mirror(c: Cluster) -> None:
    addr = checks.gateway_and_routes_accepted(c, SAME, [(INFRA, "request-mirror")])
    _expect_mirrored(
        c, addr, _mirror_cases("/mirror", "/mirror-and-modify-headers", ["infra-backend-v2"])
    )


@conformance(
    "HTTPRouteRequestMultipleMirrors",
    ["HTTPRoute", "HTTPRouteRequestMirror", "HTTPRouteRequestMultipleMirrors"],
    ["httproute-request-multiple-mirrors.yaml"],
)
def request_multiple_mirrors(c: Cluster) -> None:
    addr = checks.gateway_and_routes_accepted(c, SAME, [(INFRA, "request-multiple-mirrors")])
    _expect_mirrored(
        c,
        addr,
        _mirror_cases(
            "/multi-mirror",
            "/multi-mirror-and-modify-request-headers",
            ["infra-backend-v2", "infra-backend-v3"],
        ),
    )


@conformance(
    "HTTPRouteRequestPercentageMirror",
    ["HTTPRoute", "HTTPRouteRequestPercentageMirror"],
    ["httproute-request-percentage-mirror.yaml"],
    provisional=True,
)
def request_percentage_mirror(c: Cluster) -> None:
    addr = routes_ready(c, SAME, [(INFRA, "request-percentage-mirror")])
    total, tolerance = 500, 0.15
    modify = _mirror_cases("/percent-mirror", "/percent-mirror-and-modify-headers", [])[1][0]
    cases = [
        (E("/percent-mirror", "infra-backend-v1"), 20),
        (E("/percent-mirror-fraction", "infra-backend-v1"), 50),
        (modify, 35),
    ]
    for e, percent in cases:
        eventually(addr, e)
        problem = ""
        for _attempt in range(5):  # numDistributionChecks
            since = _log_offsets(c, "infra-backend-v2")

            def one(_i: int, e: Expect = e) -> None:
                # RequiredConsecutiveSuccesses = 1: each request eventually right once
                await_convergence(
                    lambda: compare(addr, "http", e, request(addr, e)),
                    what=e.describe(),
                    threshold=1,
                )

            with ThreadPoolExecutor(10) as pool:
                list(pool.map(one, range(total)))
            time.sleep(0.5)  # let the last mirrored requests land in the log
            got = _mirrored_lines(c, "infra-backend-v2", since, e.path)
            want = total * percent / 100
            if want * (1 - tolerance) <= got <= want * (1 + tolerance):
                problem = ""
                break
            problem = f"{e.path}: mirrored {got}, want {want:g} +-{tolerance:.0%}"
            time.sleep(2)
        if problem:
            raise Failure(problem)


# --- BackendTLSPolicy ----------


def policy_condition(
    c: Cluster, policy: str, gw: tuple[str, str], type_: str, status: str, reason: str = ""
) -> None:
    """BackendTLSPolicyMustHaveCondition: an ancestor naming ``gw`` has the condition, and
    every ancestor's conditions are at the latest generation."""

    def ok() -> bool | str:
        obj = c.get("BackendTLSPolicy", INFRA, policy)
        if obj is None:
            return False
        ancestors = obj.get("status", {}).get("ancestors") or []
        for anc in ancestors:
            conds = anc.get("conditions", [])
            stale = checks.latest_generation(obj, conds)
            if stale:
                return stale
            ref = anc.get("ancestorRef", {})
            same = ref.get("name") == gw[1] and ref.get("namespace", gw[0]) == gw[0]
            if same and checks.condition_matches(conds, type_, status, reason):
                return True
        return f"ancestors: {ancestors}"

    checks._wait_true(ok, f"BackendTLSPolicy {policy} {type_}={status} ({reason}) for {gw}")


ACCEPTED = ("Accepted", "True", "Accepted")
RESOLVED = ("ResolvedRefs", "True", "ResolvedRefs")


def _policy_ok(c: Cluster, policy: str, gw: tuple[str, str], *conds: tuple[str, str, str]) -> None:
    for type_, status, reason in conds:
        policy_condition(c, policy, gw, type_, status, reason)


@conformance(
    "BackendTLSPolicy",
    ["HTTPRoute", "BackendTLSPolicy"],
    ["backendtlspolicy.yaml"],
)
def backend_tls_policy(c: Cluster) -> None:
    # Re-encrypt: HTTPS listener -> TLS to the backend.
    https_gw = (INFRA, "same-namespace-with-https-listener")
    addr = routes_ready(c, https_gw, [(INFRA, "backendtlspolicy-reencrypt")])
    _policy_ok(c, "normative-test", https_gw, ACCEPTED, RESOLVED)
    e = E(
        "/backendtlspolicy",
        ns=INFRA,
        host="https-listener.org",
        sni="https-listener.org",
    )

    def reencrypt() -> str | None:
        res = request(addr, e, scheme="https")
        problem = compare(addr, "https", Expect(**{**e.__dict__, "sni": ""}), res)
        if problem:
            return problem
        assert res.echo is not None
        seen = (res.echo.get("tls") or {}).get("serverName")
        return None if seen == "abc.example.com" else f"backend saw SNI {seen!r}"

    await_convergence(reencrypt, what="re-encrypt to tls-backend with SNI abc.example.com")

    addr = routes_ready(c, SAME, [(INFRA, "backendtlspolicy")])
    _policy_ok(c, "normative-test", SAME, ACCEPTED, RESOLVED)
    eventually(
        addr, E("/backendtlspolicy", ns=INFRA, host="abc.example.com", sni="abc.example.com")
    )
    _policy_ok(c, "host-mismatch", SAME, ACCEPTED, RESOLVED)
    eventually_fails(addr, E("/backendtlspolicy-host-mismatch", ns=INFRA, host="abc.example.org"))
    _policy_ok(c, "cert-mismatch", SAME, ACCEPTED, RESOLVED)
    eventually_fails(addr, E("/backendtlspolicy-cert-mismatch", ns=INFRA, host="abc.example.com"))


@conformance(
    "BackendTLSPolicyConflictResolution",
    ["HTTPRoute", "BackendTLSPolicy"],
    ["backendtlspolicy-conflict-resolution.yaml"],
)
def backend_tls_policy_conflict(c: Cluster) -> None:
    addr = routes_ready(c, SAME, [(INFRA, "backendtlspolicy-conflict-resolution")])
    conflicted = ("Accepted", "False", "Conflicted")
    host = "abc.example.com"
    for kind in ("without-section-name", "with-section-name"):
        _policy_ok(c, f"conflicted-{kind}-1", SAME, ACCEPTED)
        _policy_ok(c, f"conflicted-{kind}-2", SAME, conflicted)
        eventually(
            addr,
            E(f"/backendtlspolicy-conflicted-{kind}", ns=INFRA, host=host, sni="other.example.com"),
        )
    _policy_ok(c, "not-conflicted-with-section-name", SAME, ACCEPTED)
    _policy_ok(c, "not-conflicted-without-section-name", SAME, ACCEPTED)
    eventually(
        addr,
        E(
            "/backendtlspolicy-not-conflicted-with-section-name",
            ns=INFRA,
            host=host,
            sni="other.example.com",
        ),
    )
    eventually(
        addr,
        E(
            "/backendtlspolicy-not-conflicted-without-section-name",
            ns=INFRA,
            host=host,
            sni="abc.example.com",
        ),
    )


@conformance(
    "BackendTLSPolicyInvalidCACertificateRef",
    ["HTTPRoute", "BackendTLSPolicy"],
    ["backendtlspolicy-invalid-ca-certificate-ref.yaml"],
    fast=True,
)
def backend_tls_policy_invalid_ca_ref(c: Cluster) -> None:
    addr = checks.gateway_and_routes_accepted(
        c, SAME, [(INFRA, "backendtlspolicy-invalid-ca-certificate-ref")]
    )
    for name in ("nonexistent-ca-certificate-ref", "malformed-ca-certificate-ref"):
        _policy_ok(
            c,
            name,
            SAME,
            ("Accepted", "False", "NoValidCACertificate"),
            ("ResolvedRefs", "False", "InvalidCACertificateRef"),
        )
        eventually(
            addr,
            E(
                f"/backendtlspolicy-{name}",
                ns=INFRA,
                host="abc.example.com",
                status=(500, 502, 503),
            ),
        )


@conformance(
    "BackendTLSPolicyInvalidKind",
    ["HTTPRoute", "BackendTLSPolicy"],
    ["backendtlspolicy-invalid-kind.yaml"],
)
def backend_tls_policy_invalid_kind(c: Cluster) -> None:
    addr = checks.gateway_and_routes_accepted(
        c, SAME, [(INFRA, "backendtlspolicy-invalid-kind-test")]
    )
    _policy_ok(
        c,
        "invalid-kind",
        SAME,
        ("Accepted", "False", "NoValidCACertificate"),
        ("ResolvedRefs", "False", "InvalidKind"),
    )
    eventually(
        addr,
        E(
            "/backendtlspolicy-invalid-kind",
            ns=INFRA,
            host="abc.example.com",
            status=(500, 502, 503),
        ),
    )


@conformance(
    "BackendTLSPolicyObservedGenerationBump",
    ["HTTPRoute", "BackendTLSPolicy"],
    ["backendtlspolicy-observed-generation-bump.yaml"],
)
def backend_tls_policy_generation_bump(c: Cluster) -> None:
    name = "observed-generation-bump"
    manifest = "backendtlspolicy-observed-generation-bump"
    # the controller has seen the policy (upstream reads it after NamespacesMustBeReady)
    policy_condition(c, name, SAME, "Accepted", "True")
    original = c.must_get("BackendTLSPolicy", INFRA, name)
    checks.must_have_latest_conditions(c, "BackendTLSPolicy", (INFRA, name))
    docs = []
    for doc in c.applied(manifest):
        if doc["kind"] == "BackendTLSPolicy" and doc["metadata"]["name"] == name:
            doc = {**doc, "spec": {**doc["spec"]}}
            doc["spec"]["validation"] = {**doc["spec"]["validation"], "hostname": "foo.example.com"}
        docs.append(doc)
    c.apply(manifest, docs)
    wait_for(
        lambda: (
            c.must_get("BackendTLSPolicy", INFRA, name)["metadata"]["generation"]
            != original["metadata"]["generation"]
        ),
        what="BackendTLSPolicy generation to change",
    )
    policy_condition(c, name, SAME, "Accepted", "True")
    updated = c.must_get("BackendTLSPolicy", INFRA, name)
    for anc in updated.get("status", {}).get("ancestors") or []:
        stale = checks.latest_generation(updated, anc.get("conditions", []))
        if stale:
            raise Failure(f"ancestor {anc.get('ancestorRef')}: {stale}")


@conformance(
    "BackendTLSPolicySANValidation",
    ["HTTPRoute", "BackendTLSPolicy", "BackendTLSPolicySANValidation"],
    ["backendtlspolicy-san.yaml"],
)
def backend_tls_policy_san(c: Cluster) -> None:
    addr = routes_ready(c, SAME, [(INFRA, "backendtlspolicy-san-test")])
    host = "abc.example.com"
    for good, bad in (
        ("san-dns", "san-dns-mismatch"),
        ("san-uri", "san-uri-mismatch"),
        ("multiple-sans", "multiple-mismatch-sans"),
    ):
        _policy_ok(c, good, SAME, ACCEPTED)
        eventually(addr, E(f"/backendtlspolicy-{good}", ns=INFRA, host=host, sni=host))
        _policy_ok(c, bad, SAME, ACCEPTED)
        eventually_fails(addr, E(f"/backendtlspolicy-{bad}", ns=INFRA, host=host))
