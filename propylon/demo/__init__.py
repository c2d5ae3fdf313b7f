"""The walkthrough's demo applications: an HTTP backend, a gRPC backend and a gRPC client.

Programmatic use (tests, the runtime)::

    server = await serve_http("127.0.0.1", 0)      # .host, .port, await .close()
    grpc_server = await serve_grpc("127.0.0.1", 0)  # .host, .port, await .close()
    message, server_time_ms = await ping(
        f"127.0.0.1:{grpc_server.port}", authority="grpc-test.mynetwork.local"
    )
"""

from propylon.demo.grpcdemo import GrpcDemoServer, ping, ping_blocking, serve_grpc
from propylon.demo.httpdemo import HttpDemoServer, serve_http

__all__ = [
    "GrpcDemoServer",
    "HttpDemoServer",
    "ping",
    "ping_blocking",
    "serve_grpc",
    "serve_http",
]
