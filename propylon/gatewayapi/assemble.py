"""Accepted Gateways, listeners and attached routes -> model Listeners.

One model Listener per (Gateway, port). Listener isolation: a request goes only to the
routes of the most specific Gateway listener whose hostname matches it, so a route
hostname that a more specific listener on the same port covers is dropped from the less
specific one, and each such listener gets a virtual host of its own (404 when empty)."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Mapping, Sequence

from propylon.gatewayapi.gateway import GatewayState
from propylon.gatewayapi.hostnames import covers, specificity
from propylon.gatewayapi.index import age_key
from propylon.gatewayapi.listeneroptions import listener_options
from propylon.gatewayapi.listeners import ListenerState, transport
from propylon.gatewayapi.names import name_part
from propylon.gatewayapi.routes import Attachment
from propylon.gatewayapi.rules import OrderedRoute
from propylon.model import (
    DirectResponse,
    Listener,
    Route,
    RouteMatch,
    Secret,
    StreamForward,
    TLSPassthrough,
    TLSTermination,
    VirtualHost,
    VirtualHostChanges,
    VirtualHostSet,
    WeightedBackend,
)
from propylon.resources import ObjectKey, TLSRoute


class PeerHostnames:
    """The hostnames of the listeners sharing a port, for listener isolation: does a
    more specific peer take a host away from a listener? Looked up by the few hostnames
    that can cover a host (any, the host itself, its wildcard suffixes), not by scanning
    the peers: a port may carry thousands of ListenerSet listeners."""

    def __init__(self, peers: Sequence[ListenerState]) -> None:
        self.hostnames = {li.spec.hostname for li in peers}

    def covering(self, host: str | None) -> list[str | None]:
        """The peers' hostnames that cover `host` (exact, wildcard, or None: any)."""
        candidates: list[str | None] = [None, "*"]
        if host is not None and host != "*":
            candidates.append(host)
            labels = host.split(".")
            # "*.b.c" and "*.c" cover "a.b.c" and "*.b.c"; a wildcard covers itself
            start = 2 if host.startswith("*.") else 1
            candidates += ["*." + ".".join(labels[i:]) for i in range(start, len(labels))]
        return [h for h in candidates if h in self.hostnames and covers(h, host)]

    def shadowed(self, host: str, owner: ListenerState) -> bool:
        """A peer with another hostname, covered by `owner`'s, covers `host`: the
        request belongs to that more specific listener."""
        mine = owner.spec.hostname
        return any(
            theirs != mine and covers(mine, theirs)
            for theirs in self.covering(None if host == "*" else host)
        )

    def covered_by_another(self, hostname: str) -> bool:
        return any(theirs != hostname for theirs in self.covering(hostname))


def _host_order(host: str) -> tuple[tuple[int, int], str]:
    return (specificity(host), host)


def _order_entry(host: str) -> tuple[int, int, str]:
    """`_host_order` flat: one tuple per host kept in a host table, not three."""
    rank, length = specificity(host)
    return (rank, length, host)


def _virtual_hosts(
    name: str,
    owners: Sequence[ListenerState],
    peers: Sequence[ListenerState],
    attachments: Sequence[Attachment],
    routes: Mapping[ObjectKey, list[OrderedRoute]],
) -> tuple[VirtualHost, ...]:
    table = HostTable(name, owners, peers)
    for att in attachments:
        if att.route.key in routes:
            table.count(att, 1)
    return table.virtual_hosts(routes)


class HostTable:
    """The virtual hosts of one route configuration (the HTTP listeners of a port, or
    one HTTPS listener), kept from build to build: which routes feed each host, and the
    VirtualHost made for it. Attachments come and go (`count`); only the hosts they
    touch are made again, the others keep their VirtualHost object."""

    def __init__(
        self,
        name: str,
        owners: Sequence[ListenerState],
        peers: Sequence[ListenerState],
        *,
        misdirected: bool = False,
    ) -> None:
        """`misdirected`: one HTTPS listener's table (chosen by SNI), which answers 421
        for the hosts that belong to its peers (`misdirected_hosts`)."""
        self.name = name
        self.owners = owners
        self.owner_ids = {id(li) for li in owners}  # dataclass equality compares specs
        self.peer_hosts = PeerHostnames(peers)
        self.peers = peers
        # host -> route key -> how many of the route's attachments bring it the host; a
        # (key, count) pair while one route feeds the host (the common case: a dict per
        # host was 1.2 MiB at 5000 routes)
        self.feeds: dict[str, tuple[ObjectKey, int] | dict[ObjectKey, int]] = {}
        self.made: dict[str, VirtualHost] = {}
        # The hosts made, in output order: sort keys, and their VirtualHosts alongside.
        self.order: list[tuple[int, int, str]] = []
        self.hosts: list[VirtualHost] = []
        self.dirty: set[str] = set()
        self.result: tuple[VirtualHost, ...] | None = None
        # host -> (VirtualHost in the last result taken by `take_changes`, now): the
        # model's hint (`Delta.virtual_hosts`), so its consumer need not diff the tuple.
        self.changes: dict[str, tuple[VirtualHost | None, VirtualHost | None]] = {}
        # A listener hostname that a less specific peer also covers gets a host of its
        # own even without routes (404 there instead of the peer's routes).
        self.own_hosts = {
            h for li in owners if (h := li.spec.hostname) and self.peer_hosts.covered_by_another(h)
        }
        self.misdirected = misdirected_hosts(owners[0], peers) if misdirected else frozenset()
        if self.misdirected and owners[0].spec.hostname:
            # Its own hosts without a route answer 404 here, not a peer's 421.
            self.own_hosts.add(owners[0].spec.hostname)

    def count(self, att: Attachment, delta: int, key: ObjectKey | None = None) -> None:
        """Add (+1) or take away (-1) an attachment of a route with model routes. `key`:
        the route's key as the caller holds it (kept here: no second ObjectKey)."""
        if id(att.listener) not in self.owner_ids:
            return
        if key is None:
            key = att.route.key
        for host in att.hostnames:
            if self.peer_hosts.shadowed(host, att.listener):
                continue
            self._feed(host, key, delta)
            self.dirty.add(host)

    def _feed(self, host: str, key: ObjectKey, delta: int) -> None:
        feeds = self.feeds.get(host)
        if feeds is None:
            if delta > 0:
                self.feeds[host] = (key, delta)
        elif isinstance(feeds, tuple):
            one, n = feeds
            if one == key:
                if n + delta > 0:
                    self.feeds[host] = (key, n + delta)
                else:
                    del self.feeds[host]
            elif delta > 0:
                self.feeds[host] = {one: n, key: delta}
        else:
            n = feeds.get(key, 0) + delta
            if n > 0:
                feeds[key] = n
            else:
                feeds.pop(key, None)
                if len(feeds) == 1:
                    self.feeds[host] = next(iter(feeds.items()))
                elif not feeds:
                    del self.feeds[host]

    def virtual_hosts(
        self, routes: Mapping[ObjectKey, list[OrderedRoute]]
    ) -> tuple[VirtualHost, ...]:
        if self.result is not None and not self.dirty:
            return self.result
        fixed = self.own_hosts | self.misdirected
        for host in self.dirty | {h for h in fixed if h not in self.made}:
            feeds = self.feeds.get(host)
            if feeds is None and host in self.misdirected and host not in self.own_hosts:
                before = self.made.get(host)
                made = self.made[host] = _misdirected_host(self.name, host)
                self._changed(host, before, made)
                self._place(host, made)
                continue
            if feeds is None and host not in self.own_hosts:
                gone = self.made.pop(host, None)
                if gone is not None:
                    at = bisect_left(self.order, _order_entry(host))
                    del self.order[at], self.hosts[at]
                    self._changed(host, gone, None)
                continue
            # Routes in attachment order (route key order), one per name, then by
            # precedence (a stable sort, as the whole-build assembly does).
            keys = (feeds[0],) if isinstance(feeds, tuple) else sorted(feeds or ())
            chosen = {r.route.name: r for key in keys for r in routes[key]}
            before = self.made.get(host)
            made = self.made[host] = VirtualHost(
                name=f"{self.name}/{host}",
                hostnames=(host,),
                routes=tuple(r.route for r in sorted(chosen.values(), key=lambda r: r.key)),
            )
            self._changed(host, before, made)
            self._place(host, made)
        self.dirty.clear()
        self.result = tuple(self.hosts)
        return self.result

    def _place(self, host: str, made: VirtualHost) -> None:
        entry = _order_entry(host)
        at = bisect_left(self.order, entry)
        if at < len(self.order) and self.order[at] == entry:
            self.hosts[at] = made
        else:
            self.order.insert(at, entry)
            self.hosts.insert(at, made)

    def _changed(self, host: str, before: VirtualHost | None, after: VirtualHost | None) -> None:
        first = self.changes.get(host)
        if first is not None:
            before = first[0]  # relative to the last result taken
        if before is None and after is None:
            self.changes.pop(host, None)  # made and dropped in between
        else:
            self.changes[host] = (before, after)

    def take_changes(self) -> VirtualHostChanges:
        out = tuple(self.changes.values())
        self.changes.clear()
        return out


MISDIRECTED = 421


def misdirected_hosts(owner: ListenerState, peers: Sequence[ListenerState]) -> frozenset[str]:
    """The hostnames of the other listeners on `owner`'s port (`*` for one without a
    hostname): a request whose host is theirs came over a connection whose SNI chose
    `owner`, so it is misdirected (RFC 9110 421; the Gateway API's
    GatewayHTTPSListenerDetectMisdirectedRequests). Envoy picks the most specific
    virtual host, so `owner`'s own hosts (and routes) still win over a less specific
    peer's name."""
    mine = owner.spec.hostname or "*"
    return frozenset(
        h for li in peers if li is not owner and (h := li.spec.hostname or "*") != mine
    )


def _misdirected_host(table: str, host: str) -> VirtualHost:
    return VirtualHost(
        name=f"{table}/{host}",
        hostnames=(host,),
        routes=(
            Route(
                name=f"{table}/{host}/misdirected",
                match=RouteMatch(),
                action=DirectResponse(MISDIRECTED, "Misdirected Request\n"),
            ),
        ),
    )


def _passthrough(
    name: str,
    owners: Sequence[ListenerState],
    peers: Sequence[ListenerState],
    attachments: Sequence[Attachment],
    backends: Mapping[ObjectKey, tuple[WeightedBackend, ...]],
) -> tuple[TLSPassthrough, ...]:
    """The TLS listeners' chains, one per hostname (the oldest route's). A host of a
    `mode: Terminate` listener carries that listener's certificates: Envoy terminates
    TLS there and forwards the decrypted stream."""
    chosen: dict[str, tuple[TLSRoute, ListenerState]] = {}
    owner_ids = {id(li) for li in owners}
    peer_hosts = PeerHostnames(peers)
    for att in sorted(attachments, key=lambda a: age_key(a.route)):
        if id(att.listener) not in owner_ids or not isinstance(att.route, TLSRoute):
            continue
        for host in att.hostnames:
            if host not in chosen and not peer_hosts.shadowed(host, att.listener):
                chosen[host] = (att.route, att.listener)  # oldest route wins a hostname
    out: list[TLSPassthrough] = []
    for host in sorted(chosen, key=_host_order):
        route, listener = chosen[host]
        usable = tuple(b for b in backends.get(route.key, ()) if b.cluster is not None)
        if usable:
            out.append(
                TLSPassthrough(
                    name=f"{name}/{host}",
                    server_names=() if host == "*" else (host,),
                    backends=usable,
                    certificates=tuple(s.name for s in listener.certificates)
                    if listener.terminates
                    else (),
                )
            )
    return tuple(out)


def _stream(
    owner: ListenerState,
    attachments: Sequence[Attachment],
    backends: Mapping[ObjectKey, tuple[WeightedBackend, ...]],
) -> StreamForward:
    """A TCP or UDP listener forwards to one route: the oldest attached one (the Gateway
    API's conflict rule; the others stay Accepted and counted in attachedRoutes)."""
    mine = [a.route for a in attachments if a.listener is owner]
    if not mine:
        return StreamForward(route=None)
    route = min(mine, key=age_key)
    usable = tuple(b for b in backends.get(route.key, ()) if b.weight > 0)
    meta = route.metadata
    return StreamForward(route=f"{route.kind}/{meta.namespace}/{meta.name}", backends=usable)


class GatewayAssembly:
    """One Gateway's model Listeners, with a `HostTable` per route configuration kept
    from build to build (valid while the Gateway's `GatewayState` is)."""

    def __init__(self, state: GatewayState) -> None:
        self.state = state
        gw = state.gateway
        by_port: dict[tuple[int, str], list[ListenerState]] = defaultdict(list)
        for li in state.listeners:
            if li.programmable:
                by_port[(li.spec.port, transport(li.spec.protocol))].append(li)
        self.ports: list[tuple[int, str, list[ListenerState]]] = []
        self.tables: dict[tuple[int, int], HostTable] = {}  # (port, HTTPS listener or -1)
        for port, socket in sorted(by_port):
            group = by_port[(port, socket)]
            name = f"{name_part(gw.metadata.namespace)}/{name_part(gw.metadata.name)}/{port}"
            if socket == "udp":
                name += "/udp"
            self.ports.append((port, name, group))
            if group[0].spec.protocol in ("TCP", "UDP"):
                continue  # one listener per port (others conflict): no route tables
            if all(li.spec.protocol == "HTTP" for li in group):
                self.tables[(port, -1)] = HostTable(name, group, group)
                continue
            for i, li in enumerate(group):
                if li.spec.protocol == "HTTPS":
                    self.tables[(port, i)] = HostTable(name, [li], group, misdirected=True)
        self.has_tls = any(li.spec.protocol == "TLS" for _, _, group in self.ports for li in group)
        self.options = listener_options(gw, state.class_state.config)

    def count(self, att: Attachment, delta: int, key: ObjectKey | None = None) -> None:
        for table in self.tables.values():
            table.count(att, delta, key)

    def listeners(
        self,
        attachments: Sequence[Attachment],
        http_routes: Mapping[ObjectKey, list[OrderedRoute]],
        tls_backends: Mapping[ObjectKey, tuple[WeightedBackend, ...]],
        changes: VirtualHostDelta | None = None,
    ) -> tuple[tuple[Listener, ...], tuple[Secret, ...]]:
        """`attachments` are read only for TLS passthrough, TCP and UDP listeners (the
        attachments of TLSRoutes, TCPRoutes and UDPRoutes do).
        `changes` collects each virtual host set's changes since the previous call."""
        address = self.state.address
        if address is None:
            return (), ()
        listeners: list[Listener] = []
        secrets: list[Secret] = []
        for port, name, group in self.ports:
            protocol = group[0].spec.protocol
            if protocol in ("TCP", "UDP"):
                forward = _stream(group[0], attachments, tls_backends)
                listeners.append(
                    Listener(
                        name=name,
                        address=address,
                        port=port,
                        tcp=forward if protocol == "TCP" else None,
                        udp=forward if protocol == "UDP" else None,
                        options=self.options,
                    )
                )
                continue
            http = self.tables.get((port, -1))
            if http is not None:
                vhosts = http.virtual_hosts(http_routes)
                if changes is not None:
                    changes.take((name, None), http)
                listeners.append(
                    Listener(
                        name=name, address=address, port=port, http=vhosts, options=self.options
                    )
                )
                continue
            chains: list[TLSTermination] = []
            for i, li in sorted(
                ((i, li) for i, li in enumerate(group) if li.spec.protocol == "HTTPS"),
                key=lambda p: _host_order(p[1].spec.hostname or "*"),
            ):
                secrets.extend(li.certificates)
                server_names = (li.spec.hostname,) if li.spec.hostname else ()
                table = self.tables[(port, i)]
                chains.append(
                    TLSTermination(
                        server_names=server_names,
                        certificates=tuple(s.name for s in li.certificates),
                        virtual_hosts=table.virtual_hosts(http_routes),
                        client_validation=li.client_validation,
                    )
                )
                if changes is not None:
                    changes.take((name, server_names), table)
            tls = [li for li in group if li.spec.protocol == "TLS"]
            for li in tls:
                secrets.extend(li.certificates)
            passthrough = _passthrough(
                name,
                tls,
                group,
                attachments,
                tls_backends,
            )
            listeners.append(
                Listener(
                    name=name,
                    address=address,
                    port=port,
                    https=tuple(chains),
                    passthrough=passthrough,
                    options=self.options,
                )
            )
        return tuple(listeners), tuple(secrets)


class VirtualHostDelta:
    """What `GatewayAssembly.listeners` collects for the model's `Delta.virtual_hosts`:
    every set's changes since its previous call (empty when the set did not change)."""

    def __init__(self) -> None:
        self.sets: dict[VirtualHostSet, VirtualHostChanges] = {}
        self.ambiguous = False  # two sets by one key: the hint could not tell them apart

    def take(self, key: VirtualHostSet, table: HostTable) -> None:
        if key in self.sets:
            self.ambiguous = True
        self.sets[key] = table.take_changes()
