"""ADS server (State of the World and Delta) over grpc.aio.

`AdsStream` is the per-stream protocol as a pure state machine; `AdsServer` is the thin
grpc.aio shell that feeds it and writes what it emits.
"""

from propylon.xds._server import AdsServer, XdsNackError
from propylon.xds._stream import ORDER, AdsStream, Request, Response

__all__ = ["ORDER", "AdsServer", "AdsStream", "Request", "Response", "XdsNackError"]
