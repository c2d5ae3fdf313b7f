"""Cleartext HTTP/2 with prior knowledge (h2c) for the echo backend, as upstream's port 3001.

Needs the ``h2`` package (the ``test`` extra); the rest of the echo backend does not.
Every stream is answered by the same handler as HTTP/1.1, so the echo JSON reports
``"proto": "HTTP/2.0"``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from propylon.demo._http1 import ConnectionInfo, Request
from propylon.demo.echo.server import EchoServer


class H2cEchoServer:
    """Serves ``echo`` over h2c on ``host:port`` (``port=0`` picks one; see ``.port``)."""

    def __init__(self, echo: EchoServer) -> None:
        self.echo = echo
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._connection, host, port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import h2.config
        import h2.connection
        import h2.events

        conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        peer = writer.get_extra_info("peername") or ("", 0)
        local = writer.get_extra_info("sockname") or ("", 0)
        info = ConnectionInfo(peer=(peer[0], peer[1]), local=(local[0], local[1]))
        streams: dict[int, tuple[list[tuple[str, str]], bytearray]] = {}
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        headers = [(str(k), str(v)) for k, v in event.headers]
                        streams[event.stream_id] = (headers, bytearray())
                    elif isinstance(event, h2.events.DataReceived):
                        if event.stream_id in streams:
                            streams[event.stream_id][1].extend(event.data)
                        conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    elif isinstance(event, h2.events.StreamEnded):
                        headers, body = streams.pop(event.stream_id, ([], bytearray()))
                        task = asyncio.create_task(
                            self._respond(conn, writer, event.stream_id, headers, bytes(body), info)
                        )
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        break
                writer.write(conn.data_to_send())
                await writer.drain()
        except Exception:  # a broken peer ends its own connection only
            pass
        finally:
            for task in tasks:
                task.cancel()
            writer.close()

    async def _respond(
        self,
        conn: Any,
        writer: asyncio.StreamWriter,
        stream_id: int,
        headers: list[tuple[str, str]],
        body: bytes,
        info: ConnectionInfo,
    ) -> None:
        pseudo = {k: v for k, v in headers if k.startswith(":")}
        regular = [(k, v) for k, v in headers if not k.startswith(":")]
        if ":authority" in pseudo:
            regular.insert(0, ("host", pseudo[":authority"]))
        request = Request(
            method=pseudo.get(":method", "GET"),
            target=pseudo.get(":path", "/"),
            version="HTTP/2.0",
            headers=regular,
            body=body,
        )
        response = await self.echo.respond(request, info)
        out = [(":status", str(response.status))]
        out += [(k.lower(), v) for k, v in response.headers]
        out.append(("content-length", str(len(response.body))))
        with contextlib.suppress(Exception):
            conn.send_headers(stream_id, out, end_stream=not response.body)
            if response.body:
                conn.send_data(stream_id, response.body, end_stream=True)
            writer.write(conn.data_to_send())
            await writer.drain()


async def serve_h2c(host: str, port: int, echo: EchoServer) -> H2cEchoServer:
    server = H2cEchoServer(echo)
    await server.start(host, port)
    return server
