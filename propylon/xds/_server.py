"""The thin grpc.aio adapter around `AdsStream`, and `AdsServer`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2

from propylon.envoy import XdsResources
from propylon.metrics import Metrics
from propylon.xds._stream import SHORT, AdsStream, Request, Response

log = logging.getLogger("propylon.xds")

SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"
MAX_MESSAGE = 256 * 1024 * 1024
# Responses with more resources than this are encoded off the event loop (see `_serve`).
ENCODE_ON_THREAD_OVER = 1000


class XdsNackError(RuntimeError):
    """Envoy rejected the configuration being waited for."""


def _sotw_request(msg: Any) -> Request:
    return Request(
        type_url=msg.type_url,
        nonce=msg.response_nonce,
        error=msg.error_detail.message if msg.HasField("error_detail") else None,
        node_id=msg.node.id,
        names=tuple(msg.resource_names),
    )


def _delta_request(msg: Any) -> Request:
    return Request(
        type_url=msg.type_url,
        nonce=msg.response_nonce,
        error=msg.error_detail.message if msg.HasField("error_detail") else None,
        node_id=msg.node.id,
        subscribe=tuple(msg.resource_names_subscribe),
        unsubscribe=tuple(msg.resource_names_unsubscribe),
        initial_versions=dict(msg.initial_resource_versions),
    )


def _sotw_response(r: Response) -> Any:
    return discovery_pb2.DiscoveryResponse(
        version_info=r.version_info,
        type_url=r.type_url,
        nonce=r.nonce,
        resources=[any_pb2.Any(type_url=r.type_url, value=e.data) for e in r.resources.values()],
    )


def _delta_response(r: Response) -> Any:
    return discovery_pb2.DeltaDiscoveryResponse(
        system_version_info=r.version_info,
        type_url=r.type_url,
        nonce=r.nonce,
        resources=[
            discovery_pb2.Resource(
                name=name,
                version=e.version,
                resource=any_pb2.Any(type_url=r.type_url, value=e.data),
            )
            for name, e in r.resources.items()
        ],
        removed_resources=list(r.removed),
    )


class AdsServer:
    """Aggregated Discovery Service (SotW and Delta) serving one desired state to every
    connected Envoy. `update` is synchronous and must be called from the event loop."""

    def __init__(
        self,
        metrics: Metrics | None = None,
        *,
        after_large_push: Callable[[], None] | None = None,
    ) -> None:
        """`after_large_push` runs on a thread once a response of more than
        `ENCODE_ON_THREAD_OVER` resources is written and dropped (the runtime returns
        the freed memory to the system there)."""
        self._metrics = metrics
        self._after_large_push = after_large_push
        self._server: grpc.aio.Server | None = None
        self._resources: XdsResources | None = None
        self.version = 0
        self._streams: set[AdsStream] = set()
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- lifecycle --------------------------------------------------------------------

    async def start(self, address: str) -> str:
        """Listen on `host:port` (port 0 picks one) or `unix:/path`; return the address."""
        server = grpc.aio.server(
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE),
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 5000),
            ]
        )
        handlers = {
            "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
                self._sotw,
                request_deserializer=discovery_pb2.DiscoveryRequest.FromString,
                response_serializer=discovery_pb2.DiscoveryResponse.SerializeToString,
            ),
            "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
                self._delta,
                request_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
                response_serializer=discovery_pb2.DeltaDiscoveryResponse.SerializeToString,
            ),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        port = server.add_insecure_port(address)
        if not address.startswith("unix:"):
            host = address.rsplit(":", 1)[0]
            address = f"{host}:{port}"
        await server.start()
        self._server = server
        return address

    async def stop(self, grace: float | None = 0.5) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    # --- desired state ----------------------------------------------------------------

    def update(self, resources: XdsResources) -> int:
        """Make `resources` the desired state of every node; returns its version."""
        self.version += 1
        self._resources = resources
        for stream in list(self._streams):
            stream.set_snapshot(resources, self.version)
        self._notify(None)
        return self.version

    # --- observation ------------------------------------------------------------------

    def nodes(self) -> dict[str, int]:
        """Connected node id -> the latest version it has fully acknowledged."""
        out: dict[str, int] = {}
        for s in self._streams:
            out[s.node_id] = max(out.get(s.node_id, 0), s.acked_version)
        return out

    async def wait_acked(
        self, version: int | None = None, *, node_id: str | None = None, timeout: float = 10.0
    ) -> None:
        """Wait until every connected Envoy (or, with `node_id`, that node, which must be
        connected) acknowledged `version` (default: the latest) of every resource type.
        Raises `XdsNackError` if one rejected it, `TimeoutError` after `timeout`."""
        want = self.version if version is None else version
        deadline = time.monotonic() + timeout
        while True:
            streams = [s for s in self._streams if node_id is None or s.node_id == node_id]
            for s in streams:
                if s.nacked_version >= want and s.acked_version < want:
                    raise XdsNackError(f"node {s.node_id!r} rejected version {want}: {s.last_nack}")
            if (streams or node_id is None) and all(s.acked_version >= want for s in streams):
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"xDS version {want} not acknowledged: {[s.describe() for s in streams]}"
                )
            event = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await event.wait()

    def rejections(self) -> list[dict[str, object]]:
        """Nodes whose latest rejected version is newer than what they acknowledged:
        {node, version, message} (Envoy's error detail)."""
        return [
            {"node": s.node_id, "version": s.nacked_version, "message": s.last_nack}
            for s in sorted(self._streams, key=lambda s: s.node_id)
            if s.nacked_version > s.acked_version
        ]

    async def wait_rejected(self, after: int) -> tuple[int, str]:
        """Wait until a node rejects a version newer than `after`; (version, message)."""
        while True:
            for s in self._streams:
                if s.nacked_version > max(after, s.acked_version):
                    return s.nacked_version, s.last_nack or "rejected"
            await self._changed.wait()

    def _notify(self, _stream: AdsStream | None) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # --- streams ----------------------------------------------------------------------

    async def _sotw(self, requests: AsyncIterator[Any], context: Any) -> None:
        await self._serve(requests, context, delta=False)

    async def _delta(self, requests: AsyncIterator[Any], context: Any) -> None:
        await self._serve(requests, context, delta=True)

    async def _push(self, item: Response, context: Any, encode: Callable[[Response], Any]) -> None:
        began = time.perf_counter()
        large = len(item.resources) > ENCODE_ON_THREAD_OVER
        if large:
            # The first push's responses (a message per resource: 0.03-0.08 s for
            # 10 000 clusters, 0.3 s for 50 000) on a thread, which hands the
            # interpreter back between messages: the loop keeps serving.
            message = await asyncio.to_thread(encode, item)
        else:
            message = encode(item)
        encoded = time.perf_counter()
        await context.write(message)
        log.debug(
            "sent %s: %d resources, %d removed (encoded in %.3f s, written in %.3f s)",
            SHORT.get(item.type_url, item.type_url),
            len(item.resources),
            len(item.removed),
            encoded - began,
            time.perf_counter() - encoded,
        )
        if self._metrics is not None:
            self._metrics.xds_pushed(item.type_url)
        if large and self._after_large_push is not None:
            # grpc has serialized the message: its megabytes are garbage now (10 MiB
            # at 5000 routes, in the encode thread's malloc arena).
            del message
            await asyncio.to_thread(self._after_large_push)

    async def _serve(self, requests: AsyncIterator[Any], context: Any, *, delta: bool) -> None:
        queue: asyncio.Queue[Response | None] = asyncio.Queue()
        stream = AdsStream(delta=delta, send=queue.put_nowait, on_change=self._notify)
        decode = _delta_request if delta else _sotw_request
        encode = _delta_response if delta else _sotw_response

        metrics = self._metrics

        async def read() -> None:
            try:
                async for msg in requests:
                    answered = stream.on_request(decode(msg))
                    if answered is not None:
                        log.debug("%s %s", SHORT.get(msg.type_url, msg.type_url), answered)
                    if metrics is not None and answered is not None:
                        metrics.xds_answered(msg.type_url, accepted=answered == "ack")
            except (asyncio.CancelledError, grpc.aio.AioRpcError):
                pass
            except Exception:
                log.exception("xDS stream from %s failed", stream.node_id or "?")
            finally:
                queue.put_nowait(None)

        self._streams.add(stream)
        if self._resources is not None:
            stream.set_snapshot(self._resources, self.version)
        reader = asyncio.create_task(read())
        log.info("%s ADS stream opened", "delta" if delta else "sotw")
        if metrics is not None:
            metrics.xds_streams.inc()
        try:
            while (item := await queue.get()) is not None:
                await self._push(item, context, encode)
                # The response (a protobuf message holding a copy of every resource's
                # bytes: megabytes at start-up) must not live on in this frame until
                # the next push.
                del item
        finally:
            if metrics is not None:
                metrics.xds_streams.dec()
            reader.cancel()
            self._streams.discard(stream)
            self._notify(stream)
            log.info("ADS stream from %s closed", stream.node_id or "?")
