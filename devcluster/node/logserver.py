"""The one part of the kubelet's HTTPS API the dev cluster serves: container logs.

`kubectl logs` (and the Gateway API conformance suite's mirror tests) read a pod's logs
through the API server, which proxies `pods/<name>/log` to
`https://<node InternalIP>:<kubeletEndpoint port>/containerLogs/<ns>/<pod>/<container>`
with its kubelet client certificate. The node agent answers from the files its
containers write (`state-dir/pods/<uid>/logs/<container>.log`).

Those files carry no per-line times, so `sinceTime`/`sinceSeconds` are answered from a
record of each file's size taken every second: the answer starts where the file ended
at the last record at or before the asked time (a superset by at most a second, never
a line missed). `tailLines` and `limitBytes` are honoured; `timestamps` and `follow` are
not (the answer is what the file holds now, then the connection closes).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import datetime
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("devcluster.node.logs")

KUBELET_PORT = 10250
SAMPLE_SECONDS = 1.0
KEEP_SECONDS = 15 * 60.0
MAX_REQUEST_BYTES = 16 * 1024

# (namespace, pod name) -> the pod's folder in the state dir, None when not on this node
FindPod = Callable[[str, str], Path | None]


@dataclass
class SizeHistory:
    """(wall time, size) of one log file, oldest first."""

    times: deque[float] = field(default_factory=deque)
    sizes: deque[int] = field(default_factory=deque)

    def record(self, at: float, size: int) -> None:
        self.times.append(at)
        self.sizes.append(size)
        while self.times and self.times[0] < at - KEEP_SECONDS:
            self.times.popleft()
            self.sizes.popleft()

    def offset_since(self, since: float) -> int:
        """Where the content written at or after `since` starts, at the latest."""
        index = bisect.bisect_right(self.times, since) - 1
        return self.sizes[index] if index >= 0 else 0


@dataclass(frozen=True)
class LogQuery:
    since: float | None = None  # wall-clock seconds
    tail_lines: int | None = None
    limit_bytes: int | None = None


def parse_query(query: str, now: float) -> LogQuery:
    """The kubelet's log options from a query string; ValueError on a malformed one."""
    values = {k: v[-1] for k, v in parse_qs(query).items()}
    since: float | None = None
    if "sinceTime" in values:
        text = values["sinceTime"].replace("Z", "+00:00")
        since = datetime.datetime.fromisoformat(text).timestamp()
    elif "sinceSeconds" in values:
        since = now - int(values["sinceSeconds"])
    tail = int(values["tailLines"]) if "tailLines" in values else None
    limit = int(values["limitBytes"]) if "limitBytes" in values else None
    return LogQuery(since, tail, limit)


def select(content: bytes, query: LogQuery) -> bytes:
    """Apply tailLines then limitBytes to what the time window left."""
    if query.tail_lines is not None:
        lines = content.splitlines(keepends=True)
        content = b"".join(lines[-query.tail_lines :]) if query.tail_lines > 0 else b""
    if query.limit_bytes is not None:
        content = content[: query.limit_bytes]
    return content


class LogServer:
    def __init__(self, pods_dir: Path, find_pod: FindPod, clock: Callable[[], float] = time.time):
        self._pods_dir = pods_dir
        self._find_pod = find_pod
        self._clock = clock
        self._history: dict[Path, SizeHistory] = {}

    def sample(self) -> None:
        """Record every container log file's size now; forget files that went."""
        now = self._clock()
        seen: set[Path] = set()
        for path in self._pods_dir.glob("*/logs/*.log"):
            with contextlib.suppress(OSError):
                size = path.stat().st_size
                self._history.setdefault(path, SizeHistory()).record(now, size)
                seen.add(path)
        for gone in set(self._history) - seen:
            del self._history[gone]

    def read(self, namespace: str, pod: str, container: str, query: LogQuery) -> bytes | None:
        folder = self._find_pod(namespace, pod)
        if folder is None:
            return None
        path = folder / "logs" / f"{container}.log"
        try:
            with path.open("rb") as file:
                if query.since is not None:
                    history = self._history.get(path)
                    file.seek(history.offset_since(query.since) if history else 0)
                content = file.read()
        except FileNotFoundError:
            return b""  # the container has not written yet (or has not started)
        return select(content, query)

    async def serve(self, host: str, port: int, context: ssl.SSLContext) -> None:
        server = await asyncio.start_server(self._handle, host, port, ssl=context)
        log.info("serving container logs on https://%s:%d", host, port)
        async with server:
            while True:
                self.sample()
                await asyncio.sleep(SAMPLE_SECONDS)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
            status, body = self._answer(head[:MAX_REQUEST_BYTES].decode("latin-1"))
            reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
            writer.write(
                f"HTTP/1.1 {status} {reason[status]}\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    def _answer(self, head: str) -> tuple[int, bytes]:
        method, _, rest = head.partition(" ")
        target = rest.partition(" ")[0]
        if method != "GET":
            return 405, b"only GET is served\n"
        url = urlsplit(target)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if len(parts) != 4 or parts[0] != "containerLogs":
            return 404, b"this node agent serves only /containerLogs/<ns>/<pod>/<container>\n"
        try:
            query = parse_query(url.query, self._clock())
        except ValueError as error:
            return 400, f"bad log options: {error}\n".encode()
        content = self.read(parts[1], parts[2], parts[3], query)
        if content is None:
            return 404, f"pod {parts[1]}/{parts[2]} is not on this node\n".encode()
        return 200, content


def server_context(cert: Path, key: Path, client_ca: Path) -> ssl.SSLContext:
    """TLS as the kubelet's: our serving certificate, clients with a cluster certificate
    (the API server's kubelet client)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    context.load_verify_locations(str(client_ca))
    context.verify_mode = ssl.CERT_REQUIRED
    return context
