"""The gRPC demo backend and client: round trips, the CLI's output and failures."""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from propylon.demo import ping, ping_blocking, serve_grpc, testproto
from propylon.demo.cli import add_demo_parser, build_parser, main, run_grpc_client
from propylon.demo.grpcdemo import format_response, go_quote

LINE_RE = re.compile(r'response message="(?P<message>[^"]*)" server_time_ms=(?P<ms>\d+)\n')


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def test_ping_round_trip() -> None:
    server = await serve_grpc("127.0.0.1", 0)
    try:
        before = _now_ms()
        message, server_ms = await ping(f"127.0.0.1:{server.port}", "grpc-test.mynetwork.local")
        after = _now_ms()
        assert message == "hello"
        assert before <= server_ms <= after
        assert (await ping(f"127.0.0.1:{server.port}", message="héllo 🙂"))[0] == "héllo 🙂"
    finally:
        await server.close()


async def test_ping_blocking_round_trip() -> None:
    async with await serve_grpc("127.0.0.1", 0) as server:
        message, _ = await asyncio.to_thread(
            ping_blocking, f"127.0.0.1:{server.port}", None, "sync"
        )
        assert message == "sync"


async def test_unknown_method_is_unimplemented() -> None:
    async with await serve_grpc("127.0.0.1", 0) as server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            call = channel.unary_unary("/test.v1.TestService/Nope")
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(b"", timeout=10)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_cli_client_prints_the_walkthrough_line(capsys: pytest.CaptureFixture[str]) -> None:
    async with await serve_grpc("127.0.0.1", 0) as server:
        args = build_parser().parse_args(
            [
                "grpc-client",
                "--addr",
                f"127.0.0.1:{server.port}",
                "--authority",
                "grpc-test.mynetwork.local",
            ]
        )
        before = _now_ms()
        assert await asyncio.to_thread(run_grpc_client, args) == 0
        after = _now_ms()
    out = capsys.readouterr().out
    m = LINE_RE.fullmatch(out)
    assert m, out
    assert m["message"] == "hello"
    assert before <= int(m["ms"]) <= after


async def test_cli_client_custom_message_is_go_quoted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with await serve_grpc("127.0.0.1", 0) as server:
        argv = ["grpc-client", "--addr", f"127.0.0.1:{server.port}", "--message", 'say "hi"\n']
        assert await asyncio.to_thread(main, argv) == 0
    out = capsys.readouterr().out
    assert out.startswith('response message="say \\"hi\\"\\n" server_time_ms=')


async def test_cli_client_fails_clearly_when_nothing_listens(
    refused_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["grpc-client", "--addr", f"127.0.0.1:{refused_port}", "--timeout", "10"]
    assert await asyncio.to_thread(main, argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "/test.v1.TestService/Ping" in captured.err
    assert f"127.0.0.1:{refused_port}" in captured.err
    assert "UNAVAILABLE" in captured.err


async def test_cli_client_deadline_exceeded(capsys: pytest.CaptureFixture[str]) -> None:
    # A listener that accepts but never speaks HTTP/2: the call runs into its deadline.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        argv = ["grpc-client", "--addr", f"127.0.0.1:{port}", "--timeout", "0.5"]
        assert await asyncio.to_thread(main, argv) == 1
    finally:
        server.close()
    err = capsys.readouterr().err
    assert "DEADLINE_EXCEEDED" in err or "UNAVAILABLE" in err


async def test_grpc_listen_collision_is_an_error() -> None:
    async with await serve_grpc("127.0.0.1", 0) as server:
        with pytest.raises(OSError):
            await serve_grpc("127.0.0.1", server.port)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_cli_grpc_server_listens_and_stops_on_signal(
    demo_cli: Any, sig: signal.Signals
) -> None:
    proc = await demo_cli.start("grpc-server", "--port", "0")
    line = await proc.readline()
    m = re.fullmatch(r"grpc-server listening on 127\.0\.0\.1:(\d+)\n", line)
    assert m, line
    assert (await ping(f"127.0.0.1:{m[1]}", message="from-test"))[0] == "from-test"
    assert await proc.stop(sig) == 0


async def test_cli_grpc_client_subprocess(demo_cli: Any) -> None:
    async with await serve_grpc("127.0.0.1", 0) as server:
        proc = await demo_cli.start("grpc-client", "--addr", f"127.0.0.1:{server.port}")
        out, _ = await asyncio.wait_for(proc.proc.communicate(), 20)
    assert proc.proc.returncode == 0
    assert LINE_RE.fullmatch(out.decode())


def test_add_demo_parser_registers_three_commands() -> None:
    parser = argparse.ArgumentParser(prog="propylon")
    add_demo_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["demo", "http-server"])
    assert (args.host, args.port, callable(args.func)) == ("127.0.0.1", 8080, True)
    args = parser.parse_args(["demo", "grpc-server", "--host", "0.0.0.0", "--port", "1"])
    assert (args.host, args.port) == ("0.0.0.0", 1)
    args = parser.parse_args(["demo", "grpc-client", "--addr", "a:1"])
    assert (args.addr, args.authority, args.message, args.timeout) == ("a:1", None, "hello", 5.0)
    assert args.func is run_grpc_client
    with pytest.raises(SystemExit):
        parser.parse_args(["demo"])


def test_go_quote() -> None:
    assert go_quote("hello") == '"hello"'
    assert go_quote('a"b\\c\td\x01é') == '"a\\"b\\\\c\\td\\x01é"'
    assert format_response("hello", 1773805113280) == (
        'response message="hello" server_time_ms=1773805113280'
    )


def test_shipped_proto_matches_runtime_descriptor() -> None:
    proto = Path(testproto.__file__).parent / "proto" / "test" / "v1" / "test.proto"
    text = re.sub(r"//[^\n]*", "", proto.read_text())
    fdp = testproto.file_descriptor_proto()
    assert re.search(rf"\bpackage\s+{re.escape(fdp.package)}\s*;", text)
    assert 'syntax = "proto3";' in text
    for service in fdp.service:
        body = re.search(rf"service\s+{service.name}\s*\{{([^}}]*)\}}", text)
        assert body, service.name
        for method in service.method:
            rpc = rf"rpc\s+{method.name}\s*\(\s*{method.input_type.rsplit('.', 1)[1]}\s*\)"
            rpc += rf"\s*returns\s*\(\s*{method.output_type.rsplit('.', 1)[1]}\s*\)"
            assert re.search(rpc, body[1]), method.name
    type_names = {9: "string", 3: "int64"}
    for message in fdp.message_type:
        body = re.search(rf"message\s+{message.name}\s*\{{([^}}]*)\}}", text)
        assert body, message.name
        declared = re.findall(r"(\w+)\s+(\w+)\s*=\s*(\d+)\s*;", body[1])
        expected = [(type_names[f.type], f.name, str(f.number)) for f in message.field]
        assert declared == expected
