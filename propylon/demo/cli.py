"""``propylon demo ...``: the walkthrough's demo backends and gRPC client.

``add_demo_parser`` plugs the commands into the ``propylon`` command line;
``main`` runs them on their own (``python -m propylon.demo ...``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol

import grpc

from propylon.demo import grpcdemo, httpdemo, testproto
from propylon.demo._http1 import join_host_port
from propylon.demo.echo import EchoContext, serve_echo, server_tls_context


class _Closable(Protocol):
    host: str
    port: int

    async def close(self) -> None: ...


def add_demo_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``demo`` with its sub-commands; each sets ``func(args) -> exit code``."""
    demo = subparsers.add_parser(
        "demo",
        help="run the walkthrough's demo backends and gRPC client",
        description="The demo applications of the Cilium Gateway API walkthrough.",
    )
    commands = demo.add_subparsers(dest="demo_command", metavar="COMMAND", required=True)
    add_demo_commands(commands)


def add_demo_commands(commands: argparse._SubParsersAction) -> None:
    walk = commands.add_parser(
        "walkthrough",
        help="the whole walkthrough: both demo backends and the gateway on examples/walkthrough",
    )
    walk.add_argument("--state-dir", type=Path, help="state directory (as for `propylon run`)")
    walk.add_argument("--envoy-binary", type=Path, help="Envoy executable (default: bundled)")
    walk.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    walk.set_defaults(func=run_walkthrough)

    http = commands.add_parser(
        "http-server",
        help="HTTP backend answering 'hello from http server' (the http-test Service)",
    )
    http.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    http.add_argument("--port", type=int, default=8080, help="port to listen on (8080)")
    http.set_defaults(func=run_http_server)

    grpc_server = commands.add_parser(
        "grpc-server",
        help="plaintext gRPC backend serving test.v1.TestService/Ping (the grpc-test Service)",
    )
    grpc_server.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    grpc_server.add_argument("--port", type=int, default=50051, help="port to listen on (50051)")
    grpc_server.set_defaults(func=run_grpc_server)

    client = commands.add_parser(
        "grpc-client",
        help="call test.v1.TestService/Ping over h2c and print the response",
    )
    client.add_argument("--addr", required=True, help="HOST:PORT to connect to")
    client.add_argument(
        "--authority",
        default=None,
        help="the :authority of the call, e.g. grpc-test.mynetwork.local (default: --addr)",
    )
    client.add_argument(
        "--message", default=grpcdemo.DEFAULT_MESSAGE, help="message to send (hello)"
    )
    client.add_argument(
        "--timeout",
        type=float,
        default=grpcdemo.DEFAULT_TIMEOUT,
        help="deadline of the call in seconds (5)",
    )
    client.set_defaults(func=run_grpc_client)

    echo = commands.add_parser(
        "echo-server",
        help="the Gateway API conformance echo backend (answers with a JSON echo)",
        description="Echo backend compatible with the Gateway API conformance suite's "
        "echo server. Defaults come from the environment variables in brackets.",
    )
    env = os.environ.get
    echo.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    echo.add_argument(
        "--port",
        type=int,
        default=int(env("HTTP_PORT", "3000")),
        help="HTTP port [HTTP_PORT] (3000)",
    )
    echo.add_argument(
        "--https-port",
        type=int,
        default=int(env("HTTPS_PORT", "8443")),
        help="HTTPS port, served when --tls-cert and --tls-key are given [HTTPS_PORT] (8443)",
    )
    echo.add_argument("--tls-cert", default=env("TLS_SERVER_CERT"), help="[TLS_SERVER_CERT]")
    echo.add_argument("--tls-key", default=env("TLS_SERVER_PRIVKEY"), help="[TLS_SERVER_PRIVKEY]")
    echo.add_argument(
        "--tls-client-ca",
        default=env("TLS_CLIENT_CACERTS"),
        help="verify client certificates with these CAs, when sent [TLS_CLIENT_CACERTS]",
    )
    echo.add_argument("--namespace", default=env("NAMESPACE", ""), help="[NAMESPACE]")
    echo.add_argument("--pod", default=env("POD_NAME", ""), help="[POD_NAME]")
    echo.add_argument("--service", default=env("SERVICE_NAME", ""), help="[SERVICE_NAME]")
    echo.add_argument("--ingress", default=env("INGRESS_NAME", ""), help="[INGRESS_NAME]")
    echo.set_defaults(func=run_echo_server)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m propylon.demo",
        description="The demo applications of the Cilium Gateway API walkthrough.",
    )
    commands = parser.add_subparsers(dest="demo_command", metavar="COMMAND", required=True)
    add_demo_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


# --- servers -------------------------------------------------------------------------------


async def _serve_until_signalled(
    label: str, *starts: tuple[Callable[[], Awaitable[_Closable]], str]
) -> int:
    """Start the servers, print one line per listener, run until SIGINT/SIGTERM."""
    servers: list[tuple[_Closable, str]] = []
    try:
        for start, note in starts:
            servers.append((await start(), note))
    except (OSError, ssl.SSLError) as exc:
        print(f"{label}: cannot listen: {exc}", file=sys.stderr, flush=True)
        for server, _ in servers:
            await server.close()
        return 1
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        for server, note in servers:
            address = join_host_port(server.host, server.port)
            print(f"{label} listening on {address}{note}", flush=True)
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        for server, _ in servers:
            await server.close()
    print(f"{label} stopped", flush=True)
    return 0


def run_http_server(args: argparse.Namespace) -> int:
    host, port = str(args.host), int(args.port)
    return asyncio.run(
        _serve_until_signalled("http-server", (lambda: httpdemo.serve_http(host, port), ""))
    )


def run_grpc_server(args: argparse.Namespace) -> int:
    host, port = str(args.host), int(args.port)
    return asyncio.run(
        _serve_until_signalled("grpc-server", (lambda: grpcdemo.serve_grpc(host, port), ""))
    )


def run_echo_server(args: argparse.Namespace) -> int:
    host = str(args.host)
    context = EchoContext(
        namespace=str(args.namespace),
        ingress=str(args.ingress),
        service=str(args.service),
        pod=str(args.pod),
    )
    starts: list[tuple[Callable[[], Awaitable[_Closable]], str]] = [
        (lambda: serve_echo(host, int(args.port), context), " (http)")
    ]
    if args.tls_cert and args.tls_key:

        async def start_https() -> _Closable:
            tls = server_tls_context(str(args.tls_cert), str(args.tls_key), args.tls_client_ca)
            return await serve_echo(host, int(args.https_port), context, ssl_context=tls)

        starts.append((start_https, " (https)"))
    return asyncio.run(_serve_until_signalled("echo-server", *starts))


# --- client --------------------------------------------------------------------------------


def run_grpc_client(args: argparse.Namespace) -> int:
    addr = str(args.addr)
    try:
        message, server_time_ms = grpcdemo.ping_blocking(
            addr, args.authority, str(args.message), timeout=float(args.timeout)
        )
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
        name = code.name if code is not None else "UNKNOWN"
        reason = f"{name}: {details}" if details else name
        print(f"grpc-client: {testproto.PING_PATH} on {addr} failed: {reason}", file=sys.stderr)
        return 1
    except ValueError as exc:  # e.g. an address grpc cannot parse
        print(f"grpc-client: {exc}", file=sys.stderr)
        return 1
    print(grpcdemo.format_response(message, server_time_ms), flush=True)
    return 0


def run_walkthrough(args: argparse.Namespace) -> int:
    import logging

    from propylon.runtime.options import RunOptions
    from propylon.runtime.walkthrough import find_examples, walkthrough
    from propylon.state import default_state_dir

    logging.basicConfig(
        level=str(args.log_level).upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    options = RunOptions(
        paths=(find_examples(),),
        state_dir=args.state_dir or default_state_dir(),
        envoy_binary=args.envoy_binary,
        log_level=str(args.log_level),
    )
    try:
        return asyncio.run(walkthrough(options))
    except KeyboardInterrupt:
        return 130
