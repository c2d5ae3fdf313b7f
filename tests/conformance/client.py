"""Requests and expectations, following conformance/utils/http and roundtripper (v1.4.1).

An ``Expect`` is upstream's ``ExpectedResponse``: a request, the status codes allowed, and for
a 200 what the echo backend must have seen (path, host, method, headers present/absent,
namespace, pod-name prefix); for a redirect, where it points. ``eventually`` is
``MakeRequestAndExpectEventuallyConsistentResponse``: the same answer 3 times in a row
within 30 s.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .harness import Failure

MAX_TIME_TO_CONSISTENCY = 30.0
REQUIRED_CONSECUTIVE_SUCCESSES = 3


@dataclass
class Captured:
    status: int
    headers: dict[str, list[str]]  # lower-case names
    body: bytes
    protocol: str = "HTTP/1.1"
    echo: dict[str, Any] | None = None

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return ",".join(values) if values else None


@dataclass
class Expect:
    # the request
    path: str = "/"
    host: str = ""
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    sni: str = ""
    # what the backend must have received (defaults: the request)
    expected_path: str | None = None
    expected_host: str | None = None
    expected_method: str | None = None
    expected_headers: dict[str, str] | None = None
    absent_headers: list[str] = field(default_factory=list)
    backend: str = ""
    namespace: str = ""
    # the response
    status: tuple[int, ...] = (200,)
    response_headers: dict[str, str] = field(default_factory=dict)
    response_absent_headers: list[str] = field(default_factory=list)
    backend_set_response_headers: dict[str, str] = field(default_factory=dict)
    # for a redirect: expected Location parts (None: as upstream's defaults)
    redirect_scheme: str | None = None
    redirect_host: str | None = None
    redirect_port: str | None = None
    redirect_path: str | None = None
    check_redirect: bool = False
    name: str = ""

    def describe(self) -> str:
        return self.name or f"{self.method} {self.host}{self.path} -> {self.backend or self.status}"


def split_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host, int(port)


def request(addr: str, e: Expect, *, scheme: str = "http", timeout: float = 10.0) -> Captured:
    """One request to the gateway at ``addr`` ("ip:port"), no redirects followed."""
    ip, port = split_addr(addr)
    conn: http.client.HTTPConnection
    if scheme == "https":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = _SniHTTPSConnection(ip, port, context=ctx, timeout=timeout, sni=e.sni or e.host)
    else:
        conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    headers = dict(e.headers)
    sets = ",".join(f"{k}:{v}" for k, v in e.backend_set_response_headers.items())
    headers["X-Echo-Set-Header"] = sets
    try:
        conn.putrequest(e.method, e.path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", e.host or (ip if port in (80, 443) else f"{ip}:{port}"))
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.putheader("User-Agent", "Go-http-client/1.1")
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        hdrs: dict[str, list[str]] = {}
        for k, v in resp.getheaders():
            hdrs.setdefault(k.lower(), []).append(v)
        echo = None
        if resp.status == 200:
            try:
                echo = json.loads(body)
            except ValueError:
                echo = None
        return Captured(resp.status, hdrs, body, f"HTTP/{resp.version / 10:.1f}", echo)
    finally:
        conn.close()


class _SniHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, sni: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sni = sni

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._sni or None)  # type: ignore[attr-defined]


def is_timeout(status: int) -> bool:
    """roundtripper.IsTimeoutError: 408 and 504 are a timeout, not an answer."""
    return status in (408, 504)


class Refuted(Failure):
    """A failure no later attempt can undo (MakeRequestAndExpectFailure stops at the
    first 200): await_convergence lets it through instead of retrying."""


def compare(addr: str, scheme: str, e: Expect, res: Captured) -> str | None:
    """None when ``res`` meets ``e``; otherwise why not (CompareRoundTrip)."""
    if is_timeout(res.status) and any(is_timeout(s) for s in e.status):
        return None
    if res.status not in e.status:
        return f"expected status one of {list(e.status)}, got {res.status}: {res.body[:200]!r}"
    if res.status == 200:
        echo = res.echo
        if echo is None:
            return f"no echo in the response: {res.body[:200]!r}"
        want_host = e.expected_host
        if want_host and want_host != echo.get("host"):
            return f"expected host {want_host}, got {echo.get('host')}"
        want_path = e.expected_path if e.expected_path is not None else e.path
        if want_path != echo.get("path"):
            return f"expected path {want_path}, got {echo.get('path')}"
        want_method = e.expected_method or e.method
        if want_method != echo.get("method"):
            return f"expected method {want_method}, got {echo.get('method')}"
        if e.namespace != echo.get("namespace"):
            return f"expected namespace {e.namespace!r}, got {echo.get('namespace')!r}"
        seen = {k.lower(): v for k, v in (echo.get("headers") or {}).items()}
        if e.expected_headers is not None:
            for name, value in e.expected_headers.items():
                got = seen.get(name.lower())
                if got is None:
                    return f"expected header {name} to be set, headers: {seen}"
                if ",".join(got) != value:
                    return f"expected {name} header to be {value!r}, got {got}"
        for name in e.absent_headers:
            if name.lower() in seen:
                return f"expected header {name} to be absent, got {seen[name.lower()]}"
        if not str(echo.get("pod", "")).startswith(e.backend):
            return f"expected pod name to start with {e.backend}, got {echo.get('pod')}"
        if e.sni and e.sni != (echo.get("tls") or {}).get("serverName"):
            return f"expected SNI {e.sni}"
    elif 300 <= res.status < 400 and e.check_redirect:
        location = res.header("location") or ""
        loc = urlsplit(location)
        got_host = loc.hostname or ""
        got_port = str(loc.port) if loc.port else ""
        got_scheme = loc.scheme
        want_host = e.redirect_host if e.redirect_host is not None else got_host
        if want_host != got_host:
            return f"expected redirect host {want_host!r}, got {got_host!r} ({location})"
        if e.redirect_port is None:
            if got_scheme.lower() == "http" and got_port not in ("80", ""):
                return f"http redirect port must be 80 or unset, got {got_port!r} ({location})"
            if got_scheme.lower() == "https" and got_port not in ("443", ""):
                return f"https redirect port must be 443 or unset, got {got_port!r} ({location})"
        elif e.redirect_port != got_port:
            return f"expected redirect port {e.redirect_port!r}, got {got_port!r} ({location})"
        want_scheme = e.redirect_scheme if e.redirect_scheme is not None else scheme
        if want_scheme != got_scheme:
            return f"expected redirect scheme {want_scheme!r}, got {got_scheme!r} ({location})"
        want_path = e.redirect_path if e.redirect_path is not None else e.path.split("?")[0]
        if want_path != loc.path:
            return f"expected redirect path {want_path!r}, got {loc.path!r} ({location})"
    for name, value in e.response_headers.items():
        got = res.header(name)
        if got is None:
            return f"expected response header {name}"
        if got != value:
            return f"expected response header {name}={value!r}, got {got!r}"
    for name in e.response_absent_headers:
        if res.header(name) is not None:
            return f"expected response header {name} absent, got {res.header(name)!r}"
    return None


def await_convergence(
    check: Any,
    *,
    what: str,
    threshold: int = REQUIRED_CONSECUTIVE_SUCCESSES,
    timeout: float = MAX_TIME_TO_CONSISTENCY,
    delay: float = 0.25,
) -> None:
    successes = 0
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            problem = check()
        except Refuted:
            raise
        except Exception as exc:  # connection refused etc.: not ready yet
            problem = f"request failed: {exc!r}"
        if problem is None:
            successes += 1
            if successes >= threshold:
                return
            continue
        last = str(problem)
        successes = 0
        if time.monotonic() > deadline:
            raise Failure(f"{what}: not consistent within {timeout:g}s: {last}")
        time.sleep(delay)


def eventually(addr: str, e: Expect, *, scheme: str = "http") -> None:
    await_convergence(
        lambda: compare(addr, scheme, e, request(addr, e, scheme=scheme)), what=e.describe()
    )


def eventually_fails(addr: str, e: Expect) -> None:
    """MakeRequestAndExpectFailure: 5 consecutive non-200 (non-timeout) responses."""

    def check() -> str | None:
        res = request(addr, e)
        if is_timeout(res.status):
            return "timeout"
        if res.status == 200:
            raise Refuted(f"{e.describe()}: should fail, got 200")
        return None

    await_convergence(check, what=e.describe(), threshold=5)
