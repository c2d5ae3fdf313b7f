"""An in-process stand-in for Envoy's side of one Delta ADS stream, for measuring the
control plane's own cost per change (no gRPC, no Envoy process): it acknowledges every
response at once and subscribes to the endpoints of clusters as they come and go, the
way Envoy does."""

from __future__ import annotations

from collections import deque

from propylon.envoy import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SCOPED_ROUTE_TYPE,
)
from propylon.xds import AdsServer, AdsStream, Request, Response


class SimulatedEnvoy:
    def __init__(self) -> None:
        self.server = AdsServer()
        self._queue: deque[Response] = deque()
        self.stream = AdsStream(delta=True, send=self._queue.append)
        self.server._streams.add(self.stream)  # as a connected Envoy's stream would be
        self._routes: set[str] = set()

    def start(self) -> None:
        """The initial requests, then everything answered."""
        for type_url in (CLUSTER_TYPE, LISTENER_TYPE, SCOPED_ROUTE_TYPE):
            self.stream.on_request(Request(type_url, node_id="bench"))
        self.stream.on_request(Request(ENDPOINT_TYPE, node_id="bench"))
        self.stream.on_request(Request(ROUTE_TYPE, node_id="bench"))
        self.answer_all()

    def answer_all(self) -> int:
        answered = 0
        while self._queue:
            r = self._queue.popleft()
            answered += 1
            if r.type_url == CLUSTER_TYPE and (r.resources or r.removed):
                new = tuple(
                    n for n in r.resources if n not in self.stream._types[ENDPOINT_TYPE].names
                )
                if new or r.removed:
                    self.stream.on_request(
                        Request(ENDPOINT_TYPE, subscribe=new, unsubscribe=r.removed)
                    )
            if r.type_url == LISTENER_TYPE:
                wanted = set(self.stream._want(ROUTE_TYPE))
                add, drop = wanted - self._routes, self._routes - wanted
                self._routes = wanted
                if add or drop:
                    self.stream.on_request(
                        Request(
                            ROUTE_TYPE,
                            subscribe=tuple(sorted(add)),
                            unsubscribe=tuple(sorted(drop)),
                        )
                    )
            self.stream.on_request(Request(r.type_url, nonce=r.nonce))
        return answered
