"""An echo backend compatible with the Gateway API conformance suite's echo server.

Every request is answered with a JSON description of itself (``path``, ``host``,
``method``, ``proto``, ``headers``, the ``namespace``/``ingress``/``service``/``pod`` it
was served by, ``tls`` on HTTPS, ``sni``), which the conformance tests compare with what
they expect the gateway to have forwarded. Also served, as upstream: ``/health``,
``/status/NNN``, ``?delay=<Go duration>``, the ``X-Echo-Set-Header`` request header and a
websocket echo at ``/ws``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import parse_qs

from propylon.demo._http1 import (
    ConnectionInfo,
    HttpServer,
    Request,
    Response,
    join_host_port,
    record_sni,
)
from propylon.demo.echo import websocket


@dataclass(frozen=True)
class EchoContext:
    """Who is answering: reported in every echo."""

    namespace: str = ""
    ingress: str = ""
    service: str = ""
    pod: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EchoContext:
        env = os.environ if env is None else env
        return cls(
            namespace=env.get("NAMESPACE", ""),
            ingress=env.get("INGRESS_NAME", ""),
            service=env.get("SERVICE_NAME", ""),
            pod=env.get("POD_NAME", ""),
        )


# --- helpers ---------------------------------------------------------------------------------

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign; Go accepts it and the Greek mu
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(
    r"(\d+(?:\.\d*)?|\.\d+)("
    + "|".join(sorted(map(re.escape, _DURATION_UNITS), key=len, reverse=True))
    + ")"
)


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string (``1s``, ``250ms``, ``1m30s``, ``-1.5h``, ``0``)."""
    s = text
    sign = 1.0
    if s[:1] in "+-" and s:
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m:
            break
        total += float(m[1]) * _DURATION_UNITS[m[2]]
        pos = m.end()
    if not s or pos != len(s):
        raise ValueError(f"time: invalid duration {json.dumps(text)}")
    return sign * total


_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def canonical_header_name(name: str) -> str:
    """Go's canonical MIME header key: ``x-forwarded-for`` -> ``X-Forwarded-For``."""
    if not _TOKEN.match(name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def echo_set_headers(request: Request) -> list[tuple[str, str]]:
    """Response headers asked for with ``X-Echo-Set-Header: Name:Value, Other:Value``.

    A name given twice gets its values joined with a comma, like upstream.
    """
    merged: dict[str, str] = {}
    for value in request.header_values("x-echo-set-header"):
        for item in value.split(","):
            name, _, item_value = item.strip().partition(":")
            item_value = item_value.strip()
            if not name:
                continue
            merged[name] = f"{merged[name]},{item_value}" if name in merged else item_value
    return list(merged.items())


def _json_response(
    status: int, payload: Any, extra: list[tuple[str, str]] | None = None
) -> Response:
    headers = [
        *(extra or []),
        ("Content-Type", "application/json"),
        ("X-Content-Type-Options", "nosniff"),
    ]
    return Response(status, headers, json.dumps(payload, indent=1, ensure_ascii=False).encode())


_STATUS_URI = re.compile(r"^/status/(\d\d\d)$")


# --- the server --------------------------------------------------------------------------------


class EchoServer(HttpServer):
    """The echo backend; ``.host``/``.port`` are the bound address."""

    def __init__(self, context: EchoContext, *, log: TextIO | None = None) -> None:
        super().__init__(self._handle)
        self.context = context
        self._log = log

    def _log_line(self, line: str) -> None:
        out = self._log if self._log is not None else sys.stdout
        print(line, file=out, flush=True)

    async def respond(self, request: Request, conn: ConnectionInfo) -> Response:
        """The response to ``request`` (any transport: HTTP/1.1 here, h2c in ``h2c``)."""
        return await self._handle(request, conn)

    async def _handle(self, request: Request, conn: ConnectionInfo) -> Response:
        path = request.path.replace("//", "/")
        if path == "/health":
            return Response(200, [("Content-Type", "text/plain; charset=utf-8")], b"OK")
        if path.startswith("/status/"):
            m = _STATUS_URI.match(request.target)
            status = int(m[1]) if m and 100 <= int(m[1]) <= 999 else 400
            return Response(status, [], b"")
        if path == "/ws":
            self._log_line(f"established websocket connection {join_host_port(*conn.peer)}")
            return websocket.handshake(request)
        return await self._echo(request, conn)

    async def _echo(self, request: Request, conn: ConnectionInfo) -> Response:
        self._log_line(
            f"Echoing back request made to {request.target} to client "
            f"({join_host_port(*conn.peer)})"
        )
        delays = parse_qs(request.query).get("delay")
        if delays and delays[0]:
            try:
                seconds = parse_go_duration(delays[0])
            except ValueError as exc:
                return _json_response(500, {"message": str(exc)})
            if seconds > 0:
                await asyncio.sleep(seconds)
        return _json_response(200, self.describe(request, conn), echo_set_headers(request))

    def describe(self, request: Request, conn: ConnectionInfo) -> dict[str, Any]:
        """The echo JSON for ``request``."""
        headers: dict[str, list[str]] = {}
        for name, value in request.headers:
            if name.lower() in ("host", "transfer-encoding"):
                continue
            headers.setdefault(canonical_header_name(name), []).append(value)
        body: dict[str, Any] = {
            "path": request.target,
            "host": request.header("host") or "",
            "method": request.method,
            "proto": request.version,
            "headers": headers,
            "namespace": self.context.namespace,
            "ingress": self.context.ingress,
            "service": self.context.service,
            "pod": self.context.pod,
        }
        sni = ""
        if conn.tls is not None:
            tls: dict[str, Any] = {"version": conn.tls.version or ""}
            if conn.tls.peer_certificate:
                tls["peerCertificates"] = [ssl.DER_cert_to_PEM_cert(conn.tls.peer_certificate)]
            tls["serverName"] = conn.tls.server_name or ""
            if conn.tls.negotiated_protocol:
                tls["negotiatedProtocol"] = conn.tls.negotiated_protocol
            tls["cipherSuite"] = conn.tls.cipher or ""
            body["tls"] = tls
            if "backendTLS" in request.target:
                sni = conn.tls.server_name or ""
        body["sni"] = sni
        return body


def server_tls_context(cert: str, key: str, client_ca: str | None = None) -> ssl.SSLContext:
    """TLS for the HTTPS listener; with ``client_ca``, client certificates are verified if sent."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["http/1.1"])
    record_sni(ctx)
    return ctx


async def serve_echo(
    host: str = "127.0.0.1",
    port: int = 3000,
    context: EchoContext | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    log: TextIO | None = None,
) -> EchoServer:
    """Start the echo backend (``port=0`` picks a free one); HTTPS when ``ssl_context``."""
    server = EchoServer(context or EchoContext.from_env(), log=log)
    await server.start(host, port, ssl_context=ssl_context)
    return server
