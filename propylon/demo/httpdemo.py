"""The walkthrough's HTTP backend: ``hello from http server`` plus method, path and time."""

from __future__ import annotations

from propylon.clock import timestamp_now
from propylon.demo._http1 import ConnectionInfo, HttpServer, Request, Response

GREETING = "hello from http server"


def rfc3339_now() -> str:
    """Current UTC time in RFC 3339 with whole seconds and a ``Z``: ``2026-03-18T03:38:35Z``."""
    return timestamp_now()


def hello_body(method: str, path: str, now: str | None = None) -> str:
    return f"{GREETING}\nmethod={method} path={path} time={now or rfc3339_now()}\n"


async def _handle(request: Request, _conn: ConnectionInfo) -> Response:
    body = hello_body(request.method, request.path).encode()
    return Response(200, [("Content-Type", "text/plain")], body)


class HttpDemoServer(HttpServer):
    """The running HTTP demo backend; ``.host``/``.port`` are the bound address."""

    def __init__(self) -> None:
        super().__init__(_handle)


async def serve_http(host: str = "127.0.0.1", port: int = 8080) -> HttpDemoServer:
    """Start the HTTP demo backend (``port=0`` picks a free port) and return it."""
    server = HttpDemoServer()
    await server.start(host, port)
    return server
