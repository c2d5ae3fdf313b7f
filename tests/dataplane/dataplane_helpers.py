"""Shared pieces of the end-to-end tests: backends, addresses, a running data plane."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from propylon import model as m
from propylon.dataplane import EnvoySupervisor
from propylon.xds import AdsServer

T = TypeVar("T")
_next = itertools.count(1)


def free_address() -> tuple[str, int]:
    """A loopback address of our own (127.x.y.z) and a port free on it."""
    n = (os.getpid() * 97 + next(_next)) % 60000 + 2
    host = f"127.{100 + n // 65536 % 100}.{n // 256 % 256}.{n % 256 or 1}"
    with socket.socket() as s:
        s.bind((host, 0))
        return host, s.getsockname()[1]


@dataclass
class Plane:
    """An ADS server and the Envoy it programs (the `plane` fixture, conftest.py)."""

    xds: AdsServer
    envoy: EnvoySupervisor
    # One entry per `after_large_push` call of `xds`.
    large_pushes: list[None] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Backend

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        headers: dict[str, str] = {}
        for k, v in self.headers.items():  # repeated headers joined, as HTTP allows
            headers[k.lower()] = f"{headers[k.lower()]},{v}" if k.lower() in headers else v
        self.server.requests.append((self.path, headers))
        body = json.dumps(
            {
                "backend": self.server.name,
                "path": self.path,
                "method": self.command,
                "headers": headers,
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Backend(ThreadingHTTPServer):
    daemon_threads = True
    name = ""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.requests: list[tuple[str, dict[str, str]]] = []


@dataclass
class Backend:
    name: str
    host: str
    port: int
    server: _Backend

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_backend(name: str) -> Backend:
    srv = _Backend(("127.0.0.1", 0), _Handler)
    srv.name = name
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    host, port = srv.server_address[:2]
    return Backend(name, str(host), int(port), srv)


async def eventually(
    probe: Callable[[], Awaitable[T]], *, timeout: float = 5.0, what: str = "condition"
) -> T:
    """Retry `probe` until it returns without raising, within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            return await probe()
        except (AssertionError, OSError, Exception) as e:
            last = e
        await asyncio.sleep(0.02)  # poll interval while waiting for a condition
    raise TimeoutError(f"{what} not met within {timeout}s: {last!r}")


def http_model(
    listener: tuple[str, int],
    clusters: dict[str, tuple[str, int]],
    routes: tuple[m.Route, ...],
    hostnames: tuple[str, ...] = ("*",),
    protocol: m.AppProtocol = m.AppProtocol.HTTP1,
) -> m.Model:
    name = f"default/gw/{listener[1]}"
    return m.Model(
        listeners=(
            m.Listener(
                name,
                listener[0],
                listener[1],
                http=(m.VirtualHost(f"{name}/{hostnames[0]}", hostnames, routes),),
            ),
        ),
        clusters=tuple(
            m.Cluster(c, (m.Endpoint(h, p),), protocol=protocol)
            for c, (h, p) in sorted(clusters.items())
        ),
    )


def forward(name: str, cluster: str, prefix: str = "/", **kw: Any) -> m.Route:
    return m.Route(
        name,
        m.RouteMatch(path=m.PathMatch(m.PathMatchType.PREFIX, prefix)),
        m.Forward((m.WeightedBackend(cluster),)),
        **kw,
    )


@dataclass
class CA:
    cert_pem: str
    key: Any
    cert: Any

    def issue(self, *names: str) -> tuple[str, str]:
        """A leaf certificate for `names`: (chain PEM, key PEM)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
            .sign(self.key, hashes.SHA256())
        )
        return (
            cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
        )

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cadata=self.cert_pem)
        return ctx


def make_ca() -> CA:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "propylon test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return CA(cert.public_bytes(serialization.Encoding.PEM).decode(), key, cert)


def start_tls_backend(name: str, cert_pem: str, key_pem: str, workdir: Path) -> Backend:
    """Like `start_backend`, but the backend itself speaks TLS."""
    (workdir / f"{name}.crt").write_text(cert_pem)
    (workdir / f"{name}.key").write_text(key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(workdir / f"{name}.crt", workdir / f"{name}.key")
    srv = _Backend(("127.0.0.1", 0), _Handler)
    srv.name = name
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    host, port = srv.server_address[:2]
    return Backend(name, str(host), int(port), srv)
