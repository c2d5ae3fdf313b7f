"""One ADS stream as a pure state machine (no I/O, no asyncio).

Feed it events (`on_request`, `set_snapshot`); it emits `Response`s through the injected
`send`. The same machine serves State-of-the-World and Delta streams; only what a
response carries differs (full sets vs. changes plus removals).

Ordering (make before break), per stream:

1. Clusters, then endpoints, then secrets, then listeners, then scoped routes, then
   routes.
2. A listener or route (scoped or not) is sent only when clusters and endpoints are
   *settled*: the last response of that type was acknowledged, there is nothing new to
   send, and Envoy subscribed to the endpoints of every cluster (so it has warmed them).
   Delta streams take a shortcut for clusters that are *new* to Envoy (not updates,
   not removals): their endpoints go right behind them, before Envoy subscribes, and
   routes may follow at once, on the same stream, without waiting for ACKs. Envoy
   handles one stream's responses in order: the cluster (and its endpoint watch) is
   created, its endpoints warm it, then the route that uses it arrives.
3. Clusters (and their endpoints) that listeners/routes sent earlier may still
   reference are kept in the cluster set until the new listeners and routes are
   acknowledged; then a cluster update removes them.
4. One response per type in flight: while it is unacknowledged, changes accumulate and
   go out together as soon as the ACK arrives (no fixed debounce).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter

from propylon.envoy import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SCOPED_ROUTE_TYPE,
    SECRET_TYPE,
    Encoded,
    XdsResources,
)

log = logging.getLogger("propylon.xds")
_VERSION = attrgetter("version")

ORDER = (CLUSTER_TYPE, ENDPOINT_TYPE, SECRET_TYPE, LISTENER_TYPE, SCOPED_ROUTE_TYPE, ROUTE_TYPE)
# Envoy subscribes to scoped routes as a wildcard (all of them), like listeners, clusters.
WILDCARD_TYPES = frozenset({CLUSTER_TYPE, LISTENER_TYPE, SCOPED_ROUTE_TYPE})
# What references clusters: sent only once clusters and endpoints are settled.
ROUTING_TYPES = frozenset({LISTENER_TYPE, SCOPED_ROUTE_TYPE, ROUTE_TYPE})
SHORT = {
    CLUSTER_TYPE: "CDS",
    ENDPOINT_TYPE: "EDS",
    SECRET_TYPE: "SDS",
    LISTENER_TYPE: "LDS",
    SCOPED_ROUTE_TYPE: "SRDS",
    ROUTE_TYPE: "RDS",
}


@dataclass(frozen=True)
class Request:
    """A DiscoveryRequest or DeltaDiscoveryRequest, protocol-neutral."""

    type_url: str
    nonce: str = ""
    error: str | None = None
    node_id: str = ""
    # SotW: the complete list of names wanted (empty = wildcard for LDS/CDS).
    names: tuple[str, ...] = ()
    # Delta:
    subscribe: tuple[str, ...] = ()
    unsubscribe: tuple[str, ...] = ()
    initial_versions: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Response:
    type_url: str
    version_info: str
    nonce: str
    resources: Mapping[str, Encoded]  # SotW: the full set; Delta: the changed ones
    removed: tuple[str, ...] = ()  # Delta only
    snapshot_version: int = 0


@dataclass
class _TypeState:
    requested: bool = False
    wildcard: bool = False
    names: set[str] = field(default_factory=set)
    pending: str | None = None  # nonce of the unacknowledged response
    last_nonce: str | None = None
    sent: dict[str, str] = field(default_factory=dict)  # name -> version Envoy has
    must_respond: bool = False
    nack: str | None = None
    sent_version: int = 0  # snapshot version of the last response
    # Delta: the unacknowledged response only added resources Envoy never had (CDS), or
    # only carried endpoints pushed ahead of their subscription (EDS).
    pending_fresh: bool = False


class AdsStream:
    def __init__(
        self,
        *,
        delta: bool,
        send: Callable[[Response], None],
        on_change: Callable[[AdsStream], None] | None = None,
    ) -> None:
        self.delta = delta
        self.node_id = ""
        self._send = send
        self._on_change = on_change
        self._types = {t: _TypeState() for t in ORDER}
        self._desired: Mapping[str, Mapping[str, Encoded]] | None = None
        self._version = 0
        # Snapshots whose listeners/routes Envoy may be using; their clusters stay.
        self._live: list[Mapping[str, Mapping[str, Encoded]]] = []
        # `_content` per type, until the snapshot, a subscription or `_live` changes:
        # with thousands of resources a type, recomputing it per decision was most of
        # the stream's time.
        self._contents: dict[str, dict[str, Encoded]] = {}
        # Delta: endpoint names pushed with their new cluster, before Envoy subscribed.
        self._ahead: set[str] = set()
        self._counter = 0
        self.acked_version = 0
        self.nacked_version = 0
        self.last_nack: str | None = None

    def describe(self) -> dict[str, object]:
        """What this stream waits for, per type (for errors and debugging)."""
        out: dict[str, object] = {"node": self.node_id, "acked": self.acked_version}
        for t, ts in self._types.items():
            out[SHORT[t]] = {
                "requested": ts.requested,
                "wildcard": ts.wildcard,
                "names": len(ts.names),
                "pending": ts.pending,
                "sent": len(ts.sent),
                "nack": ts.nack,
                "settled": self._settled(t) if self._desired is not None else None,
            }
        return out

    # --- events -----------------------------------------------------------------------

    def set_snapshot(self, resources: XdsResources, version: int) -> None:
        self._contents.clear()
        self._desired = resources.by_type()
        self._version = version
        self._pump()

    def on_request(self, req: Request) -> None:
        ts = self._types.get(req.type_url)
        if ts is None:
            log.debug("ignoring request for unknown type %s", req.type_url)
            return
        self._contents.clear()
        if req.node_id and not self.node_id:
            self.node_id = req.node_id
        if req.nonce:
            if req.nonce == ts.pending:
                ts.pending = None
                if req.error:
                    ts.nack = req.error
                    self.nacked_version = max(self.nacked_version, ts.sent_version)
                    self.last_nack = req.error
                    log.warning(
                        "node %s rejected %s (nonce %s, version %s): %s",
                        self.node_id,
                        SHORT[req.type_url],
                        req.nonce,
                        ts.sent_version,
                        req.error,
                    )
                else:
                    ts.nack = None
            elif req.nonce != ts.last_nonce and not self.delta:
                return  # stale SotW request: superseded by a response Envoy hasn't seen
        elif not self.delta or not ts.requested:
            # An initial request: it must be answered, even with nothing. (Later Delta
            # requests without a nonce only change the subscription.)
            ts.must_respond = True
            if self.delta:
                ts.sent = dict(req.initial_versions)
        first = not ts.requested
        ts.requested = True
        if self.delta:
            self._delta_subscribe(req, ts, first)
        else:
            names = set(req.names)
            if req.type_url in WILDCARD_TYPES:
                ts.wildcard = not names or "*" in names
            ts.names = names - {"*"}
            if not ts.wildcard:
                for gone in [n for n in ts.sent if n not in ts.names]:
                    del ts.sent[gone]
        self._pump()

    def _delta_subscribe(self, req: Request, ts: _TypeState, first: bool) -> None:
        if first and req.type_url in WILDCARD_TYPES and not req.subscribe:
            ts.wildcard = True
        ahead = self._ahead if req.type_url == ENDPOINT_TYPE else set()
        for n in req.subscribe:
            if n == "*":
                ts.wildcard = True
            else:
                ts.names.add(n)
                ahead.discard(n)
        for n in req.unsubscribe:
            if n == "*":
                ts.wildcard = False
            else:
                ts.names.discard(n)
                ahead.discard(n)
                if not ts.wildcard:
                    ts.sent.pop(n, None)

    # --- decisions --------------------------------------------------------------------

    def _content(self, type_url: str) -> dict[str, Encoded]:
        """What Envoy should have of this type, by name, sorted (desired resources are
        sorted by name already)."""
        content = self._contents.get(type_url)
        if content is not None:
            return content
        assert self._desired is not None
        ts = self._types[type_url]
        out = dict(self._desired.get(type_url, {}))
        merged = False
        if type_url in (CLUSTER_TYPE, ENDPOINT_TYPE):
            for snap in self._live:
                if snap is self._desired:
                    continue
                for name, enc in snap.get(type_url, {}).items():
                    if name not in out:
                        out[name] = enc
                        merged = True
        if not ts.wildcard:
            wanted = ts.names
            if type_url == ENDPOINT_TYPE and self._ahead:
                self._ahead.intersection_update(out)  # clusters gone before a subscription
                wanted = wanted | self._ahead
            out = {n: e for n, e in out.items() if n in wanted}
        if merged:
            out = dict(sorted(out.items()))
        self._contents[type_url] = out
        return out

    def _changed(self, type_url: str, content: Mapping[str, Encoded]) -> bool:
        sent = self._types[type_url].sent
        return len(sent) != len(content) or sent != dict(
            zip(content, map(_VERSION, content.values()), strict=True)
        )

    def _settled(self, type_url: str) -> bool:
        assert self._desired is not None
        ts = self._types[type_url]
        desired = self._desired.get(type_url, {})
        if not ts.requested:
            return not desired
        if ts.pending is not None or ts.must_respond:
            return False
        if self._changed(type_url, self._content(type_url)):
            return False
        return ts.wildcard or ts.names.issuperset(desired)

    def _routable(self) -> bool:
        """May listeners and routes go out? When clusters and endpoints are settled; on
        a Delta stream also when the only thing not settled is clusters new to Envoy
        whose endpoints were pushed right behind them (unacknowledged, unsubscribed)."""
        if self._settled(CLUSTER_TYPE) and self._settled(ENDPOINT_TYPE):
            return True
        if not self.delta:
            return False
        assert self._desired is not None
        for type_url in (CLUSTER_TYPE, ENDPOINT_TYPE):
            ts = self._types[type_url]
            if not ts.requested or ts.must_respond:
                return False
            if ts.pending is not None and not ts.pending_fresh:
                return False
            if self._changed(type_url, self._content(type_url)):
                return False
        eds = self._types[ENDPOINT_TYPE]
        desired = self._desired.get(ENDPOINT_TYPE, {})
        return eds.wildcard or all(n in eds.names or n in self._ahead for n in desired)

    def _push_ahead(self, added: list[str]) -> None:
        """Delta: endpoints of clusters new to Envoy go right behind them. Only while
        Envoy watches some endpoints (it drops responses of a type it has no watch for:
        they would never be resent)."""
        eds = self._types[ENDPOINT_TYPE]
        if not self.delta or not eds.requested or not (eds.wildcard or eds.names):
            return
        have = self._desired.get(ENDPOINT_TYPE, {}) if self._desired is not None else {}
        new = [n for n in added if n in have and n not in eds.names]
        if new:
            self._ahead.update(new)
            self._contents.pop(ENDPOINT_TYPE, None)

    def _pump(self) -> None:
        if self._desired is None:
            return
        for _ in range(3):  # a second pass sends the cluster removals, if any
            sent_any = False
            for type_url in ORDER:
                ts = self._types[type_url]
                if not ts.requested or ts.pending is not None:
                    continue
                if type_url in ROUTING_TYPES and not self._routable():
                    continue
                content = self._content(type_url)
                if ts.must_respond or self._changed(type_url, content):
                    self._respond(type_url, content)
                    sent_any = True
            if all(self._settled(t) and self._types[t].nack is None for t in ROUTING_TYPES) and (
                len(self._live) != 1 or self._live[0] is not self._desired
            ):
                self._live = [self._desired]
                self._contents.clear()
                continue  # retained clusters may go now
            if not sent_any:
                break
        if all(self._settled(t) and self._types[t].nack is None for t in ORDER) and (
            not self._live or (len(self._live) == 1 and self._live[0] is self._desired)
        ):
            self.acked_version = max(self.acked_version, self._version)
        if self._on_change is not None:
            self._on_change(self)

    def _respond(self, type_url: str, content: dict[str, Encoded]) -> None:
        ts = self._types[type_url]
        self._counter += 1
        nonce = str(self._counter)
        if self.delta:
            resources = {n: e for n, e in content.items() if ts.sent.get(n) != e.version}
            removed = tuple(sorted(n for n in ts.sent if n not in content))
        else:
            resources, removed = content, ()
        fresh = False
        if self.delta and not removed:
            if type_url == CLUSTER_TYPE:
                fresh = not any(n in ts.sent for n in resources)
                if fresh:
                    self._push_ahead(list(resources))
            elif type_url == ENDPOINT_TYPE:
                fresh = all(n in self._ahead for n in resources)
        ts.pending_fresh = fresh
        if type_url == CLUSTER_TYPE:
            # An updated cluster warms again and waits for its endpoints: resend them
            # even if they did not change.
            eds_sent = self._types[ENDPOINT_TYPE].sent
            for n, e in content.items():
                if n in ts.sent and ts.sent[n] != e.version:
                    eds_sent.pop(n, None)
        ts.sent = {n: e.version for n, e in content.items()}
        ts.pending = ts.last_nonce = nonce
        ts.must_respond = False
        ts.sent_version = self._version
        if type_url in ROUTING_TYPES and (not self._live or self._live[-1] is not self._desired):
            assert self._desired is not None
            self._live.append(self._desired)
            self._contents.clear()
        self._send(
            Response(
                type_url=type_url,
                version_info=f"{self._version}.{nonce}",
                nonce=nonce,
                resources=resources,
                removed=removed,
                snapshot_version=self._version,
            )
        )
