"""The Gateway API conformance echo backend (``propylon demo echo-server``)."""

from propylon.demo.echo.server import (
    EchoContext,
    EchoServer,
    canonical_header_name,
    parse_go_duration,
    serve_echo,
    server_tls_context,
)

__all__ = [
    "EchoContext",
    "EchoServer",
    "canonical_header_name",
    "parse_go_duration",
    "serve_echo",
    "server_tls_context",
]
