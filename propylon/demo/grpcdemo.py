"""The walkthrough's gRPC backend (``test.v1.TestService/Ping``) and its client."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import grpc
import grpc.aio

from propylon.demo import testproto
from propylon.demo._http1 import join_host_port

DEFAULT_MESSAGE = "hello"
DEFAULT_TIMEOUT = 5.0

# The demo talks to local addresses; an http_proxy/grpc_proxy in the environment must not
# capture those calls.
_CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (("grpc.enable_http_proxy", 0),)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def _ping_handler(request: Any, _context: grpc.aio.ServicerContext) -> Any:
    return testproto.ping_response(testproto.request_message(request), now_ms())


def _generic_handler() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        testproto.SERVICE_FULL_NAME,
        {
            testproto.METHOD: grpc.unary_unary_rpc_method_handler(
                _ping_handler,
                request_deserializer=testproto.parse_request,
                response_serializer=testproto.serialize,
            )
        },
    )


class GrpcDemoServer:
    """A running gRPC demo backend; ``.host``/``.port`` are the bound address."""

    def __init__(self, server: grpc.aio.Server, host: str, port: int) -> None:
        self._server = server
        self.host = host
        self.port = port

    async def close(self, grace: float | None = 1.0) -> None:
        await self._server.stop(grace)

    async def __aenter__(self) -> GrpcDemoServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def serve_grpc(host: str = "127.0.0.1", port: int = 50051) -> GrpcDemoServer:
    """Start the plaintext (h2c) gRPC demo backend; ``port=0`` picks a free port."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((_generic_handler(),))
    address = join_host_port(host, port)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:  # newer grpcio raises instead of returning 0
        raise OSError(f"cannot listen on {address}: {exc}") from exc
    if bound == 0:
        raise OSError(f"cannot listen on {address}")
    await server.start()
    return GrpcDemoServer(server, host, bound)


def _channel_options(authority: str | None) -> Sequence[tuple[str, Any]]:
    options = list(_CHANNEL_OPTIONS)
    if authority:
        options.append(("grpc.default_authority", authority))
    return options


async def ping(
    addr: str,
    authority: str | None = None,
    message: str = DEFAULT_MESSAGE,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> tuple[str, int]:
    """Call Ping on ``addr`` (``host:port``) over h2c; returns ``(message, server_time_ms)``.

    ``authority`` sets the ``:authority`` the call carries (what a GRPCRoute hostname
    matches); by default it is ``addr``. Raises ``grpc.aio.AioRpcError`` on failure.
    """
    async with grpc.aio.insecure_channel(addr, options=_channel_options(authority)) as channel:
        call = channel.unary_unary(
            testproto.PING_PATH,
            request_serializer=testproto.serialize,
            response_deserializer=testproto.parse_response,
        )
        response = await call(testproto.ping_request(message), timeout=timeout)
    return testproto.response_fields(response)


def ping_blocking(
    addr: str,
    authority: str | None = None,
    message: str = DEFAULT_MESSAGE,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> tuple[str, int]:
    """Like :func:`ping`, with the synchronous gRPC API (no event loop needed)."""
    with grpc.insecure_channel(addr, options=_channel_options(authority)) as channel:
        call = channel.unary_unary(
            testproto.PING_PATH,
            request_serializer=testproto.serialize,
            response_deserializer=testproto.parse_response,
        )
        response = call(testproto.ping_request(message), timeout=timeout)
    return testproto.response_fields(response)


def go_quote(text: str) -> str:
    """Quote ``text`` the way Go's ``%q`` does, as the walkthrough's Go client prints it."""
    escapes = {
        '"': '\\"',
        "\\": "\\\\",
        "\a": "\\a",
        "\b": "\\b",
        "\f": "\\f",
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
        "\v": "\\v",
    }
    out = []
    for ch in text:
        code = ord(ch)
        if ch in escapes:
            out.append(escapes[ch])
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def format_response(message: str, server_time_ms: int) -> str:
    return f"response message={go_quote(message)} server_time_ms={server_time_ms}"
