"""The conformance echo backend: the echo JSON, /status, delays, headers, websocket, TLS."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from selfsigned_cert import self_signed

from propylon.demo.echo import (
    EchoContext,
    canonical_header_name,
    parse_go_duration,
    serve_echo,
    server_tls_context,
)
from propylon.demo.echo.websocket import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    encode_frame,
    read_frame,
)

CONTEXT = EchoContext(
    namespace="gateway-conformance-infra", service="infra-backend-v1", pod="pod-1"
)


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False, timeout=10)


async def test_echo_json() -> None:
    log = io.StringIO()
    server = await serve_echo("127.0.0.1", 0, CONTEXT, log=log)
    try:
        async with _client() as client:
            r = await client.get(
                f"http://127.0.0.1:{server.port}/foo/bar?x=1",
                headers=[("Host", "echo.example"), ("x-custom", "a"), ("X-CUSTOM", "b")],
            )
    finally:
        await server.close()
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert list(body) == [
        "path", "host", "method", "proto", "headers",
        "namespace", "ingress", "service", "pod", "sni",
    ]  # fmt: skip
    assert body["path"] == "/foo/bar?x=1"
    assert body["host"] == "echo.example"
    assert (body["method"], body["proto"]) == ("GET", "HTTP/1.1")
    assert body["headers"]["X-Custom"] == ["a", "b"]
    assert "Host" not in body["headers"]
    assert body["headers"]["User-Agent"][0].startswith("python-httpx")
    assert (body["namespace"], body["service"], body["pod"], body["ingress"]) == (
        "gateway-conformance-infra", "infra-backend-v1", "pod-1", "",
    )  # fmt: skip
    assert body["sni"] == ""
    assert re.fullmatch(
        r"Echoing back request made to /foo/bar\?x=1 to client \(127\.0\.0\.1:\d+\)\n",
        log.getvalue(),
    )


def test_context_from_env() -> None:
    env = {"NAMESPACE": "ns", "POD_NAME": "p", "SERVICE_NAME": "s", "INGRESS_NAME": "i"}
    assert EchoContext.from_env(env) == EchoContext(
        namespace="ns", ingress="i", service="s", pod="p"
    )


async def test_status_and_health() -> None:
    async with await serve_echo("127.0.0.1", 0, CONTEXT, log=io.StringIO()) as server:
        base = f"http://127.0.0.1:{server.port}"
        async with _client() as client:
            assert (await client.get(f"{base}/status/404")).status_code == 404
            assert (await client.get(f"{base}/status/503")).status_code == 503
            assert (await client.get(f"{base}/status/abc")).status_code == 400
            assert (await client.get(f"{base}/status/404?x=1")).status_code == 400
            health = await client.get(f"{base}/health")
            assert (health.status_code, health.text) == (200, "OK")


async def test_delay() -> None:
    async with await serve_echo("127.0.0.1", 0, CONTEXT, log=io.StringIO()) as server:
        base = f"http://127.0.0.1:{server.port}"
        async with _client() as client:
            started = time.monotonic()
            r = await client.get(f"{base}/?delay=300ms")
            assert r.status_code == 200
            assert time.monotonic() - started >= 0.3
            bad = await client.get(f"{base}/?delay=soon")
            assert bad.status_code == 500
            assert bad.json() == {"message": 'time: invalid duration "soon"'}


async def test_echo_set_header() -> None:
    server = await serve_echo("127.0.0.1", 0, CONTEXT, log=io.StringIO())
    async with server, _client() as client:
        r = await client.get(
            f"http://127.0.0.1:{server.port}/",
            headers={"X-Echo-Set-Header": "X-Foo: bar, X-Bar:baz,X-Foo:qux"},
        )
    assert r.headers["x-foo"] == "bar,qux"
    assert r.headers["x-bar"] == "baz"


def test_helpers() -> None:
    assert canonical_header_name("x-forwarded-for") == "X-Forwarded-For"
    assert canonical_header_name("CONTENT-type") == "Content-Type"
    assert canonical_header_name("bad header") == "bad header"
    assert parse_go_duration("1m30s") == 90
    assert parse_go_duration("250ms") == 0.25
    with pytest.raises(ValueError):
        parse_go_duration("10")


async def test_websocket_echo() -> None:
    log = io.StringIO()
    async with await serve_echo("127.0.0.1", 0, CONTEXT, log=log) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"GET /ws HTTP/1.1\r\nHost: echo\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101 ")
        # The accept key of RFC 6455's own example.
        assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
        mask = b"\x01\x02\x03\x04"
        writer.write(encode_frame(OP_TEXT, b"hello websocket", mask=mask))
        assert await asyncio.wait_for(read_frame(reader), 10) == (True, OP_TEXT, b"hello websocket")
        writer.write(encode_frame(OP_PING, b"p", mask=mask))
        assert await asyncio.wait_for(read_frame(reader), 10) == (True, OP_PONG, b"p")
        big = os.urandom(70000)
        writer.write(encode_frame(0x2, big, mask=mask))
        assert (await asyncio.wait_for(read_frame(reader), 10))[2] == big
        writer.write(encode_frame(OP_CLOSE, b"\x03\xe8", mask=mask))
        assert await asyncio.wait_for(read_frame(reader), 10) == (True, OP_CLOSE, b"\x03\xe8")
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
    assert "established websocket connection 127.0.0.1:" in log.getvalue()


def _self_signed(tmp: Path, name: str) -> tuple[str, str]:
    cert, key = self_signed([name, "127.0.0.1"])
    cert_path, key_path = tmp / "tls.crt", tmp / "tls.key"
    cert_path.write_text(cert)
    key_path.write_text(key)
    return str(cert_path), str(key_path)


async def test_https_reports_tls_and_sni(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path, "backend.example")
    tls = server_tls_context(cert, key)
    async with await serve_echo(
        "127.0.0.1", 0, CONTEXT, ssl_context=tls, log=io.StringIO()
    ) as server:
        client_ctx = ssl.create_default_context(cafile=cert)
        client_ctx.set_alpn_protocols(["http/1.1"])
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=client_ctx, server_hostname="backend.example"
        )
        writer.write(
            b"GET /backendTLS HTTP/1.1\r\nHost: backend.example\r\nConnection: close\r\n\r\n"
        )
        raw = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    body: dict[str, Any] = json.loads(raw.split(b"\r\n\r\n", 1)[1])
    assert body["tls"]["serverName"] == "backend.example"
    assert body["tls"]["version"].startswith("TLSv1.")
    assert body["tls"]["cipherSuite"]
    assert body["tls"]["negotiatedProtocol"] == "http/1.1"
    assert "peerCertificates" not in body["tls"]
    assert body["sni"] == "backend.example"


async def test_cli_echo_server(demo_cli: Any) -> None:
    proc = await demo_cli.start("echo-server", "--port", "0", "--pod", "p-cli", "--namespace", "n")
    line = await proc.readline()
    m = re.fullmatch(r"echo-server listening on 127\.0\.0\.1:(\d+) \(http\)\n", line)
    assert m, line
    async with _client() as client:
        body = (await client.get(f"http://127.0.0.1:{m[1]}/hi")).json()
    assert (body["pod"], body["namespace"], body["path"]) == ("p-cli", "n", "/hi")
    assert (await proc.readline()).startswith("Echoing back request made to /hi to client")
    assert await proc.stop() == 0


async def test_cli_echo_server_https(demo_cli: Any, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path, "backend.example")
    proc = await demo_cli.start(
        "echo-server", "--port", "0", "--https-port", "0", "--tls-cert", cert, "--tls-key", key
    )
    assert re.fullmatch(
        r"echo-server listening on 127\.0\.0\.1:\d+ \(http\)\n", await proc.readline()
    )
    m = re.fullmatch(
        r"echo-server listening on 127\.0\.0\.1:(\d+) \(https\)\n", await proc.readline()
    )
    assert m
    async with httpx.AsyncClient(
        trust_env=False, verify=ssl.create_default_context(cafile=cert)
    ) as c:
        r = await c.get(f"https://127.0.0.1:{m[1]}/", headers={"Host": "backend.example"})
    assert r.json()["tls"]["version"].startswith("TLSv1.")
    assert await proc.stop() == 0
