"""Accepted Gateways, listeners and attached routes -> model Listeners.

One model Listener per (Gateway, port). Listener isolation: a request goes only to the
routes of the most specific Gateway listener whose hostname matches it, so a route
hostname that a more specific listener on the same port covers is dropped from the less
specific one, and each such listener gets a virtual host of its own (404 when empty)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from propylon.gatewayapi.gateway import GatewayState
from propylon.gatewayapi.hostnames import covers, specificity
from propylon.gatewayapi.index import age_key
from propylon.gatewayapi.listeners import ListenerState
from propylon.gatewayapi.routes import Attachment
from propylon.gatewayapi.rules import OrderedRoute
from propylon.model import (
    Listener,
    Secret,
    TLSPassthrough,
    TLSTermination,
    VirtualHost,
    WeightedBackend,
)
from propylon.resources import ObjectKey, TLSRoute


def _shadowed(host: str, owner: ListenerState, peers: Sequence[ListenerState]) -> bool:
    mine = owner.spec.hostname
    for other in peers:
        theirs = other.spec.hostname
        if other is owner or theirs == mine:
            continue
        if covers(mine, theirs) and covers(theirs, None if host == "*" else host):
            return True
    return False


def _host_order(host: str) -> tuple[tuple[int, int], str]:
    return (specificity(host), host)


def _virtual_hosts(
    name: str,
    owners: Sequence[ListenerState],
    peers: Sequence[ListenerState],
    attachments: Sequence[Attachment],
    routes: Mapping[ObjectKey, list[OrderedRoute]],
) -> tuple[VirtualHost, ...]:
    hosts: dict[str, dict[str, OrderedRoute]] = defaultdict(dict)
    for att in attachments:
        if att.listener not in owners or att.route.key not in routes:
            continue
        for host in att.hostnames:
            if _shadowed(host, att.listener, peers):
                continue
            for r in routes[att.route.key]:
                hosts[host][r.route.name] = r
    for li in owners:
        h = li.spec.hostname
        if (
            h
            and h not in hosts
            and any(
                o is not li and o.spec.hostname != h and covers(o.spec.hostname, h) for o in peers
            )
        ):
            hosts[h] = {}
    return tuple(
        VirtualHost(
            name=f"{name}/{host}",
            hostnames=(host,),
            routes=tuple(r.route for r in sorted(hosts[host].values(), key=lambda r: r.key)),
        )
        for host in sorted(hosts, key=_host_order)
    )


def _passthrough(
    name: str,
    owners: Sequence[ListenerState],
    peers: Sequence[ListenerState],
    attachments: Sequence[Attachment],
    backends: Mapping[ObjectKey, tuple[WeightedBackend, ...]],
) -> tuple[TLSPassthrough, ...]:
    chosen: dict[str, TLSRoute] = {}
    for att in sorted(attachments, key=lambda a: age_key(a.route)):
        if att.listener not in owners or not isinstance(att.route, TLSRoute):
            continue
        for host in att.hostnames:
            if host not in chosen and not _shadowed(host, att.listener, peers):
                chosen[host] = att.route  # oldest route wins a hostname
    out: list[TLSPassthrough] = []
    for host in sorted(chosen, key=_host_order):
        usable = tuple(b for b in backends.get(chosen[host].key, ()) if b.cluster is not None)
        if usable:
            out.append(
                TLSPassthrough(
                    name=f"{name}/{host}",
                    server_names=() if host == "*" else (host,),
                    backends=usable,
                )
            )
    return tuple(out)


def assemble_listeners(
    state: GatewayState,
    attachments: Sequence[Attachment],
    http_routes: Mapping[ObjectKey, list[OrderedRoute]],
    tls_backends: Mapping[ObjectKey, tuple[WeightedBackend, ...]],
) -> tuple[tuple[Listener, ...], tuple[Secret, ...]]:
    address = state.address
    if address is None:
        return (), ()
    gw = state.gateway
    by_port: dict[int, list[ListenerState]] = defaultdict(list)
    for li in state.listeners:
        if li.programmable:
            by_port[li.spec.port].append(li)
    listeners: list[Listener] = []
    secrets: list[Secret] = []
    for port in sorted(by_port):
        group = by_port[port]
        name = f"{gw.metadata.namespace}/{gw.metadata.name}/{port}"
        if all(li.spec.protocol == "HTTP" for li in group):
            vhosts = _virtual_hosts(name, group, group, attachments, http_routes)
            listeners.append(Listener(name=name, address=address, port=port, http=vhosts))
            continue
        chains: list[TLSTermination] = []
        for li in sorted(
            (li for li in group if li.spec.protocol == "HTTPS"),
            key=lambda li: _host_order(li.spec.hostname or "*"),
        ):
            secrets.extend(li.certificates)
            chains.append(
                TLSTermination(
                    server_names=(li.spec.hostname,) if li.spec.hostname else (),
                    certificates=tuple(s.name for s in li.certificates),
                    virtual_hosts=_virtual_hosts(name, [li], group, attachments, http_routes),
                )
            )
        passthrough = _passthrough(
            name,
            [li for li in group if li.spec.protocol == "TLS"],
            group,
            attachments,
            tls_backends,
        )
        listeners.append(
            Listener(
                name=name, address=address, port=port, https=tuple(chains), passthrough=passthrough
            )
        )
    return tuple(listeners), tuple(secrets)
