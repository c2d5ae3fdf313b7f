"""The HTTP demo backend: body format, keep-alive, concurrency, CLI and signals."""

from __future__ import annotations

import asyncio
import re
import signal
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from propylon.demo import serve_http
from propylon.demo.httpdemo import hello_body

BODY_RE = re.compile(
    r"\Ahello from http server\n"
    r"method=(?P<method>[A-Z]+) path=(?P<path>\S+) "
    r"time=(?P<time>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)\n\Z"
)


def _check_time(text: str) -> None:
    stamp = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - stamp) < timedelta(seconds=5)


async def test_body_format() -> None:
    server = await serve_http("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(trust_env=False) as client:
            r = await client.get(
                f"http://127.0.0.1:{server.port}/",
                headers={"Host": "http-test.mynetwork.local"},
            )
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/plain"
        m = BODY_RE.match(r.text)
        assert m, r.text
        assert (m["method"], m["path"]) == ("GET", "/")
        _check_time(m["time"])
    finally:
        await server.close()


async def test_method_and_path_without_query() -> None:
    server = await serve_http("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(trust_env=False) as client:
            r = await client.post(
                f"http://127.0.0.1:{server.port}/a/b?x=1&y=2", content=b"z" * 5000
            )
            head = await client.head(f"http://127.0.0.1:{server.port}/h")
        m = BODY_RE.match(r.text)
        assert m, r.text
        assert (m["method"], m["path"]) == ("POST", "/a/b")
        assert head.status_code == 200
        assert head.content == b""
        assert int(head.headers["content-length"]) == len(hello_body("HEAD", "/h"))
    finally:
        await server.close()


async def _read_response(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10)
    return lines[0], headers, body


async def test_keep_alive_several_requests_on_one_connection() -> None:
    server = await serve_http("127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        # Sequential requests, then two pipelined ones, all on the same connection.
        for path in ("/one", "/two"):
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            await writer.drain()
            status, headers, body = await _read_response(reader)
            assert status == "HTTP/1.1 200 OK"
            assert "connection" not in headers
            m = BODY_RE.match(body.decode())
            assert m and m["path"] == path
        writer.write(
            b"POST /three HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n"
            b"GET /four HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        _, _, body3 = await _read_response(reader)
        _, headers4, body4 = await _read_response(reader)
        assert BODY_RE.match(body3.decode())["path"] == "/three"  # type: ignore[index]
        assert BODY_RE.match(body4.decode())["path"] == "/four"  # type: ignore[index]
        assert headers4["connection"] == "close"
        assert await asyncio.wait_for(reader.read(), 10) == b""  # server closed it
        writer.close()
        await writer.wait_closed()
    finally:
        await server.close()


async def test_http10_closes_unless_keep_alive_asked() -> None:
    server = await serve_http("127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        _, headers, _ = await _read_response(reader)
        assert headers["connection"] == "keep-alive"
        writer.write(b"GET /b HTTP/1.0\r\n\r\n")
        _, headers, body = await _read_response(reader)
        assert headers["connection"] == "close"
        assert BODY_RE.match(body.decode())
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
    finally:
        await server.close()


async def test_malformed_request_gets_400() -> None:
    server = await serve_http("127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"NONSENSE\r\n\r\n")
        status, _, _ = await _read_response(reader)
        assert status.startswith("HTTP/1.1 400")
        writer.close()
    finally:
        await server.close()


async def test_concurrent_clients() -> None:
    server = await serve_http("127.0.0.1", 0)
    try:
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(trust_env=False, limits=limits) as client:
            responses = await asyncio.gather(
                *(client.get(f"http://127.0.0.1:{server.port}/c{i}") for i in range(100))
            )
        assert [BODY_RE.match(r.text)["path"] for r in responses] == [  # type: ignore[index]
            f"/c{i}" for i in range(100)
        ]
    finally:
        await server.close()


async def test_close_drops_idle_keep_alive_connections() -> None:
    server = await serve_http("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await _read_response(reader)
    await asyncio.wait_for(server.close(), 10)
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()


async def test_listen_collision_is_an_error() -> None:
    server = await serve_http("127.0.0.1", 0)
    try:
        with pytest.raises(OSError):
            await serve_http("127.0.0.1", server.port)
    finally:
        await server.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_cli_http_server_listens_and_stops_on_signal(
    demo_cli: Any, sig: signal.Signals
) -> None:
    proc = await demo_cli.start("http-server", "--host", "127.0.0.1", "--port", "0")
    line = await proc.readline()
    m = re.fullmatch(r"http-server listening on 127\.0\.0\.1:(\d+)\n", line)
    assert m, line
    async with httpx.AsyncClient(trust_env=False) as client:
        r = await client.get(f"http://127.0.0.1:{m[1]}/x")
    assert BODY_RE.match(r.text)
    assert await proc.stop(sig) == 0


async def test_cli_http_server_port_in_use(demo_cli: Any) -> None:
    server = await serve_http("127.0.0.1", 0)
    try:
        proc = await demo_cli.start("http-server", "--port", str(server.port))
        assert await asyncio.wait_for(proc.proc.wait(), 15) == 1
        assert proc.proc.stderr is not None
        assert "cannot listen" in (await proc.proc.stderr.read()).decode()
    finally:
        await server.close()
