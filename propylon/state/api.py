"""The local API of a running instance: HTTP/1.1 + JSON on `<state-dir>/api.sock`.

    GET /v1/healthz                          {"status": "ok", "pid": ..., ...}
                                             ("degraded": Envoy rejected something;
                                             "rejected" and "withheld" say what)
    GET /v1/objects[?kind=K&namespace=N&name=X]
                                             a Kubernetes-style List of objects
                                             (spec + metadata + merged status)
    GET /v1/diagnostics                      {"items": [diagnostic, ...]}: file errors

Only the owner can use the socket (mode 0600). One request per connection
(`Connection: close`). The data comes from injected providers, so the runtime decides
what "current" means and this module stays free of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from http import HTTPStatus
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from propylon.state.documents import object_list
from propylon.store import Diagnostic


class ObjectQuery(NamedTuple):
    """What `/v1/objects` asks for (None: any). A provider may use it to skip building
    the documents of objects that cannot match (at thousands of routes, building every
    document for a question about one Gateway blocked the loop for seconds); the
    server filters what it gets in any case."""

    kind: str | None = None
    namespace: str | None = None
    name: str | None = None

    def matches(self, kind: str, namespace: str, name: str) -> bool:
        return (
            (not self.kind or kind == self.kind)
            and (self.namespace is None or namespace == self.namespace)
            and (self.name is None or name == self.name)
        )


ObjectsProvider = Callable[[ObjectQuery], Iterable[Mapping[str, Any]]]
DiagnosticsProvider = Callable[[], Iterable[Diagnostic]]
HealthProvider = Callable[[], Mapping[str, Any]]

MAX_REQUEST_HEAD = 64 * 1024


# sun_path is 108 bytes on Linux (104 on macOS), including the terminating NUL.
MAX_SOCKET_PATH = 107


def check_socket_path(path: Path) -> None:
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise ValueError(
            f"the API socket path {path} is longer than {MAX_SOCKET_PATH} bytes, "
            f"which unix sockets do not allow: choose a shorter --state-dir"
        )


class InstanceRunningError(RuntimeError):
    """Another instance already serves the API socket of this state directory."""


def diagnostic_to_json(diagnostic: Diagnostic) -> dict[str, Any]:
    data = asdict(diagnostic)
    data["severity"] = str(diagnostic.severity)
    data["text"] = str(diagnostic)
    return data


def _sort_key(doc: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = doc.get("metadata") or {}
    return (str(doc.get("kind", "")), str(meta.get("namespace", "")), str(meta.get("name", "")))


def _socket_in_use(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError:
        return False
    else:
        return True
    finally:
        probe.close()


class ApiServer:
    def __init__(
        self,
        socket_path: Path | str,
        *,
        objects: ObjectsProvider,
        diagnostics: DiagnosticsProvider = lambda: (),
        health: HealthProvider | None = None,
    ) -> None:
        self.socket_path = Path(socket_path)
        self._objects = objects
        self._diagnostics = diagnostics
        self._health = health
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Bind the socket. A stale socket file is replaced; a live one raises
        `InstanceRunningError`."""
        check_socket_path(self.socket_path)
        self.socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.socket_path.exists() or self.socket_path.is_symlink():
            if _socket_in_use(self.socket_path):
                raise InstanceRunningError(
                    f"another propylon is already running with state directory "
                    f"{self.socket_path.parent} (its API answers at {self.socket_path})"
                )
            self.socket_path.unlink()
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._handle, path=str(self.socket_path))
        finally:
            os.umask(old_umask)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()

    async def __aenter__(self) -> ApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- HTTP -----------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                await self._send(writer, HTTPStatus.BAD_REQUEST, {"error": "bad request"})
                return
            if len(head) > MAX_REQUEST_HEAD:
                await self._send(writer, HTTPStatus.BAD_REQUEST, {"error": "request too large"})
                return
            status, body = self.respond(head.decode("latin-1"))
            await self._send(writer, status, body, head_only=head.startswith(b"HEAD "))
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def respond(self, head: str) -> tuple[HTTPStatus, Any]:
        """The answer to one request head (request line + headers)."""
        request_line = head.split("\r\n", 1)[0]
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return HTTPStatus.BAD_REQUEST, {"error": f"malformed request line {request_line!r}"}
        method, target, _ = parts
        if method not in ("GET", "HEAD"):
            return HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"method {method} not allowed"}
        url = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            if url.path == "/v1/healthz":
                health = {"status": "ok", "pid": os.getpid()}
                if self._health is not None:
                    health.update(self._health())
                return HTTPStatus.OK, health
            if url.path == "/v1/objects":
                return HTTPStatus.OK, self._list_objects(query)
            if url.path == "/v1/diagnostics":
                items = [diagnostic_to_json(d) for d in self._diagnostics()]
                return HTTPStatus.OK, {"items": items}
        except Exception as exc:
            return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(exc).__name__}: {exc}"}
        return HTTPStatus.NOT_FOUND, {"error": f"no such endpoint {url.path}"}

    def _list_objects(self, query: Mapping[str, str]) -> dict[str, Any]:
        kind = query.get("kind")
        namespace = query.get("namespace")
        name = query.get("name")
        items = []
        asked = ObjectQuery(kind or None, namespace, name)
        for doc in self._objects(asked):
            meta = doc.get("metadata") or {}
            if asked.matches(
                str(doc.get("kind")), str(meta.get("namespace", "")), str(meta.get("name"))
            ):
                items.append(doc)
        items.sort(key=_sort_key)
        return object_list(items)

    @staticmethod
    async def _send(
        writer: asyncio.StreamWriter, status: HTTPStatus, body: Any, *, head_only: bool = False
    ) -> None:
        payload = json.dumps(body, separators=(",", ":")).encode()
        head = (
            f"HTTP/1.1 {status.value} {status.phrase}\r\n"
            f"Content-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n"
            f"Connection: close\r\n\r\n"
        ).encode()
        writer.write(head if head_only else head + payload)
        await writer.drain()
