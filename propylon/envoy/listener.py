"""Listener resources, and the route configurations (HTTP connection managers) each
listener's filter chains name."""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from google.protobuf.message import Message

from propylon import model as m
from propylon.envoy import _pb as pb
from propylon.envoy.cluster import INVALID_BACKEND_CLUSTER


def https_route_config_name(listener: str, term: m.TLSTermination) -> str:
    """`<listener>/https/<first server name or *>`: stable while the chain exists."""
    return f"{listener}/https/{term.server_names[0] if term.server_names else '*'}"


def owns(lst: m.Listener, rc_name: str) -> bool:
    return any(name == rc_name for name, _, _ in route_configs(lst))


def route_configs(
    lst: m.Listener,
) -> Iterable[tuple[str, m.VirtualHostSet, tuple[m.VirtualHost, ...]]]:
    """(route configuration name, the model's name for the set, its virtual hosts)."""
    if lst.http is not None:
        yield lst.name, (lst.name, None), lst.http
    for term in lst.https:
        yield (
            https_route_config_name(lst.name, term),
            (lst.name, term.server_names),
            term.virtual_hosts,
        )


def listener_shape(lst: m.Listener) -> Hashable:
    """What a Listener message depends on (not the routes: those travel by RDS)."""
    return (
        lst.name,
        lst.address,
        lst.port,
        lst.http is not None,
        tuple((t.server_names, t.certificates) for t in lst.https),
        lst.passthrough,
    )


def build_listener(lst: m.Listener, options: m.ProxyOptions, scoped: str | None = None) -> Message:
    """`scoped`: the route configuration name whose connection manager uses scoped RDS."""
    address = "0.0.0.0" if options.bind_all else lst.address
    chains: list[Message] = []

    def hcm(rc_name: str) -> Message:
        return pb.network_filter(
            pb.HCM_FILTER,
            pb.http_connection_manager(
                stat_prefix=rc_name,
                route_config_name=rc_name,
                xff_num_trusted_hops=options.xff_num_trusted_hops,
                scoped=rc_name == scoped,
            ),
        )

    if lst.http is not None:
        chains.append(pb.filter_chain(name=f"{lst.name}/http", filters=[hcm(lst.name)]))
    for term in lst.https:
        rc_name = https_route_config_name(lst.name, term)
        chains.append(
            pb.filter_chain(
                name=rc_name,
                filters=[hcm(rc_name)],
                server_names=term.server_names,
                transport_socket=pb.downstream_tls(term.certificates),
            )
        )
    for pt in lst.passthrough:
        shares = [(b.cluster, b.weight) for b in pt.backends if b.cluster and b.weight > 0]
        if not shares:
            shares = [(INVALID_BACKEND_CLUSTER, 1)]
        chains.append(
            pb.filter_chain(
                name=f"{lst.name}/passthrough/{pt.name}",
                filters=[pb.network_filter(pb.TCP_PROXY_FILTER, pb.tcp_proxy(pt.name, shares))],
                server_names=pt.server_names,
            )
        )
    if not chains:
        # A TLS listener with no usable route still listens (Envoy rejects a listener
        # without filter chains): every connection goes to the never-defined
        # invalid-backend cluster, i.e. is closed, as for a passthrough route whose
        # backends are all invalid.
        chains.append(
            pb.filter_chain(
                name=f"{lst.name}/no-routes",
                filters=[
                    pb.network_filter(
                        pb.TCP_PROXY_FILTER,
                        pb.tcp_proxy(f"{lst.name}/no-routes", [(INVALID_BACKEND_CLUSTER, 1)]),
                    )
                ],
            )
        )
    return pb.listener(
        name=lst.name,
        address=address,
        port=lst.port,
        chains=chains,
        tls_inspector=lst.http is None,
        node_port=None if options.bind_all else dict(options.node_ports).get(lst.name),
    )
