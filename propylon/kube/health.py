"""/healthz and /readyz for the kubelet's probes (plain HTTP/1.1 on asyncio)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


class HealthServer:
    def __init__(self, address: str, *, ready: Callable[[], bool]) -> None:
        self.address = address
        self._ready = ready
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        host, port = split_address(self.address)
        self._server = await asyncio.start_server(self._handle, host, port)
        sock = self._server.sockets[0].getsockname()
        return f"{sock[0]}:{sock[1]}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ValueError):
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            path = request.split(b" ", 2)[1].decode()
            if path.startswith("/healthz"):
                code, body = 200, "ok"
            elif path.startswith("/readyz"):
                ok = self._ready()
                code, body = (200, "ok") if ok else (503, "not ready")
            else:
                code, body = 404, "not found"
            reason = {200: "OK", 503: "Service Unavailable", 404: "Not Found"}[code]
            writer.write(
                f"HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}".encode()
            )
            await writer.drain()
        writer.close()
