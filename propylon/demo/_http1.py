"""A small asyncio HTTP/1.1 server core shared by the demo backends.

Only what the demo and echo backends need: keep-alive, HTTP/1.0 and 1.1,
``Content-Length`` and chunked request bodies, ``Expect: 100-continue``, HEAD,
and connection upgrades (the echo server's websocket endpoint). Responses are
always sent whole with a ``Content-Length``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus

MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 200
MAX_BODY_BYTES = 16 * 1024 * 1024


class ProtocolError(Exception):
    """The peer sent something this server cannot parse; answered with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TlsInfo:
    version: str | None
    cipher: str | None
    server_name: str | None
    negotiated_protocol: str | None
    peer_certificate: bytes | None


@dataclass(frozen=True)
class ConnectionInfo:
    peer: tuple[str, int]
    local: tuple[str, int]
    tls: TlsInfo | None = None


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    @property
    def path(self) -> str:
        """The request-target without its query (an absolute-form target keeps only the path)."""
        target = self.target
        if "://" in target:
            rest = target.split("://", 1)[1]
            slash = rest.find("/")
            target = rest[slash:] if slash >= 0 else "/"
        return target.split("?", 1)[0].split("#", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1].split("#", 1)[0] if "?" in self.target else ""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        lname = name.lower()
        return [value for key, value in self.headers if key.lower() == lname]

    def connection_tokens(self) -> set[str]:
        tokens: set[str] = set()
        for value in self.header_values("connection"):
            tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
        return tokens

    @property
    def keep_alive(self) -> bool:
        tokens = self.connection_tokens()
        if "close" in tokens:
            return False
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return True


UpgradeHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Response:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    # For status 101: called with the raw streams once the response head is sent.
    upgrade: UpgradeHandler | None = None


Handler = Callable[[Request, ConnectionInfo], Awaitable[Response]]


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def encode_response_head(
    status: int, headers: Iterable[tuple[str, str]], *, version: str = "HTTP/1.1"
) -> bytes:
    lines = [f"{version} {status} {reason_phrase(status)}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


def _body_allowed(status: int) -> bool:
    return not (100 <= status < 200 or status in (204, 304))


async def _read_line(reader: asyncio.StreamReader, budget: list[int]) -> bytes:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError as exc:
        raise ProtocolError(431, "header line too long") from exc
    budget[0] -= len(line)
    if budget[0] < 0:
        raise ProtocolError(431, "request head too large")
    return line.rstrip(b"\r\n")


async def read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> Request | None:
    """Read one request; None when the peer closed the connection between requests."""
    budget = [MAX_HEAD_BYTES]
    # Tolerate empty lines before a request line (RFC 9112 section 2.2).
    while True:
        try:
            line = await _read_line(reader, budget)
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                raise ProtocolError(400, "connection closed inside the request line") from exc
            return None
        if line:
            break
    parts = line.decode("latin-1").split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise ProtocolError(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise ProtocolError(505, f"unsupported version {version!r}")

    headers: list[tuple[str, str]] = []
    while True:
        try:
            line = await _read_line(reader, budget)
        except asyncio.IncompleteReadError as exc:
            raise ProtocolError(400, "connection closed inside the request head") from exc
        if not line:
            break
        if line[:1] in (b" ", b"\t"):
            raise ProtocolError(400, "obsolete header folding")
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or not name or name != name.strip():
            raise ProtocolError(400, "malformed header line")
        headers.append((name, value.strip(" \t")))
        if len(headers) > MAX_HEADERS:
            raise ProtocolError(431, "too many headers")

    request = Request(method=method, target=target, version=version, headers=headers)
    request.body = await _read_body(request, reader, writer)
    return request


async def _read_body(
    request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> bytes:
    transfer_encoding = ",".join(request.header_values("transfer-encoding")).lower()
    lengths = request.header_values("content-length")
    chunked = "chunked" in transfer_encoding
    if not chunked and not lengths:
        return b""
    if transfer_encoding and not chunked:
        raise ProtocolError(501, "unsupported transfer-encoding")
    length = 0
    if not chunked:
        if len(set(lengths)) != 1 or not lengths[0].isdigit():
            raise ProtocolError(400, "invalid content-length")
        length = int(lengths[0])
        if length > MAX_BODY_BYTES:
            raise ProtocolError(413, "request body too large")
    if (request.header("expect") or "").lower() == "100-continue" and request.version == "HTTP/1.1":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
    try:
        if not chunked:
            return await reader.readexactly(length)
        return await _read_chunked(reader)
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError(400, "connection closed inside the request body") from exc


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    budget = [MAX_HEAD_BYTES]
    while True:
        size_line = (await _read_line(reader, budget)).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError as exc:
            raise ProtocolError(400, "malformed chunk size") from exc
        if size == 0:
            break
        if len(body) + size > MAX_BODY_BYTES:
            raise ProtocolError(413, "request body too large")
        body += await reader.readexactly(size)
        if await _read_line(reader, budget):
            raise ProtocolError(400, "missing CRLF after chunk")
    while await _read_line(reader, budget):  # trailers, ignored
        pass
    return bytes(body)


def _address(sockname: object) -> tuple[str, int]:
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return str(sockname[0]), int(sockname[1])
    return str(sockname), 0


_SNI_ATTRIBUTE = "propylon_server_name"


def record_sni(context: ssl.SSLContext) -> None:
    """Make the client's SNI visible in ``ConnectionInfo.tls.server_name``.

    The server side of Python's ``ssl`` only reveals SNI to an ``sni_callback``; this one
    stores it on the connection's SSLObject.
    """

    def callback(
        obj: ssl.SSLSocket | ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext
    ) -> None:
        setattr(obj, _SNI_ATTRIBUTE, name)

    context.sni_callback = callback


def _tls_info(writer: asyncio.StreamWriter) -> TlsInfo | None:
    obj = writer.get_extra_info("ssl_object")
    if not isinstance(obj, ssl.SSLObject):
        return None
    cipher = obj.cipher()
    return TlsInfo(
        version=obj.version(),
        cipher=cipher[0] if cipher else None,
        server_name=getattr(obj, _SNI_ATTRIBUTE, None),
        negotiated_protocol=obj.selected_alpn_protocol(),
        peer_certificate=obj.getpeercert(binary_form=True),
    )


class HttpServer:
    """An asyncio HTTP/1.1 server running ``handler`` for every request."""

    def __init__(self, handler: Handler, *, server_header: str | None = None) -> None:
        self._handler = handler
        self._server_header = server_header
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.host = ""
        self.port = 0

    async def start(
        self, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._server = await asyncio.start_server(
            self._on_connection, host, port, ssl=ssl_context, limit=MAX_HEAD_BYTES
        )
        sockets = self._server.sockets
        self.host, self.port = _address(sockets[0].getsockname()) if sockets else (host, port)

    async def close(self) -> None:
        """Stop listening and close every open connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> HttpServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        # close() cancels connection tasks; they must still end normally, because asyncio
        # (3.11) logs an error for a client_connected_cb task that ends cancelled.
        try:
            await self._serve_connection(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await writer.wait_closed()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        info = ConnectionInfo(
            peer=_address(writer.get_extra_info("peername")),
            local=_address(writer.get_extra_info("sockname")),
            tls=_tls_info(writer),
        )
        while True:
            try:
                request = await read_request(reader, writer)
            except ProtocolError as exc:
                body = f"{exc}\n".encode()
                await self._send(
                    writer,
                    Response(exc.status, [("Content-Type", "text/plain")], body),
                    head_only=False,
                    keep_alive=False,
                )
                return
            if request is None:
                return
            try:
                response = await self._handler(request, info)
            except Exception as exc:  # a handler bug must not kill the server
                body = f"internal error: {exc!r}\n".encode()
                response = Response(500, [("Content-Type", "text/plain")], body)
            if response.status == 101 and response.upgrade is not None:
                writer.write(encode_response_head(101, response.headers))
                await writer.drain()
                await response.upgrade(reader, writer)
                return
            keep_alive = request.keep_alive and not any(
                k.lower() == "connection" and v.lower() == "close" for k, v in response.headers
            )
            await self._send(
                writer,
                response,
                head_only=request.method == "HEAD",
                keep_alive=keep_alive,
                http10=request.version == "HTTP/1.0",
            )
            if not keep_alive:
                return

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        response: Response,
        *,
        head_only: bool,
        keep_alive: bool,
        http10: bool = False,
    ) -> None:
        drop = {"content-length", "connection", "transfer-encoding", "date"}
        headers = [(k, v) for k, v in response.headers if k.lower() not in drop]
        headers.append(("Date", email.utils.formatdate(usegmt=True)))
        if self._server_header and not any(k.lower() == "server" for k, _ in headers):
            headers.append(("Server", self._server_header))
        if _body_allowed(response.status):
            headers.append(("Content-Length", str(len(response.body))))
        if not keep_alive:
            headers.append(("Connection", "close"))
        elif http10:
            headers.append(("Connection", "keep-alive"))
        data = encode_response_head(response.status, headers)
        if not head_only and _body_allowed(response.status):
            data += response.body
        writer.write(data)
        await writer.drain()


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
