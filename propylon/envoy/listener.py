"""Listener resources, and the route configurations (HTTP connection managers) each
listener's filter chains name."""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from google.protobuf.message import Message

from propylon import model as m
from propylon.envoy import _pb as pb
from propylon.envoy import _pb_options as pbo
from propylon.envoy import _pb_stream as pbs
from propylon.envoy.access import NO_POLICY, ListenerPolicy, add_listener_access, passthrough_access
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
        tuple((t.server_names, t.certificates, t.client_validation) for t in lst.https),
        lst.passthrough,
        lst.options,
        lst.tcp,
        lst.udp,
    )


def _shares(forward: m.StreamForward) -> list[tuple[str, int]]:
    """Weighted clusters; an unresolved backend's share goes to the never-defined
    invalid-backend cluster (its connections are closed), as does everything when
    there is no backend."""
    shares = [(b.cluster or INVALID_BACKEND_CLUSTER, b.weight) for b in forward.backends]
    return shares or [(INVALID_BACKEND_CLUSTER, 1)]


def _stream_listener(lst: m.Listener, options: m.ProxyOptions, address: str) -> Message:
    node_port = None if options.bind_all else dict(options.node_ports).get(lst.name)
    if lst.udp is not None:
        # The UDP proxy forwards to one cluster (several backends arrive as one cluster
        # of weighted endpoint groups): datagrams of a route without one are dropped.
        # Of the listener-wide knobs, only the source ranges apply (as the UDP proxy's
        # matcher on the client address); PROXY protocol and the TCP access logs are
        # TCP's.
        cluster = _shares(lst.udp)[0][0]
        ranges = lst.options.source_ranges
        proxy = pbs.udp_proxy(
            lst.name,
            cluster,
            source_ranges=None if ranges is None else (ranges.cidrs, ranges.deny),
            closed=INVALID_BACKEND_CLUSTER,
        )
        return pbs.udp_listener(
            name=lst.name, address=address, port=lst.port, proxy=proxy, node_port=node_port
        )
    assert lst.tcp is not None
    proxy = pb.tcp_proxy(lst.name, _shares(lst.tcp))
    apply_tcp_options(proxy, lst.options)
    chain = pb.filter_chain(
        name=f"{lst.name}/tcp",
        filters=[*guard_filters(lst), pb.network_filter(pb.TCP_PROXY_FILTER, proxy)],
    )
    listener = pb.listener(
        name=lst.name,
        address=address,
        port=lst.port,
        chains=[chain],
        tls_inspector=False,
        node_port=node_port,
    )
    apply_listener_options(listener, options)
    return listener


def build_listener(
    lst: m.Listener,
    options: m.ProxyOptions,
    scoped: str | None = None,
    policy: ListenerPolicy = NO_POLICY,
) -> Message:
    """`scoped`: the route configuration name whose connection manager uses scoped RDS.
    `policy`: network policy's client -> `ingress` verdict (hook: `access.py`)."""
    address = "0.0.0.0" if options.bind_all else lst.address
    if lst.tcp is not None or lst.udp is not None:
        return _stream_listener(lst, options, address)
    chains: list[Message] = []

    def hcm(rc_name: str) -> list[Message]:
        manager = pb.http_connection_manager(
            stat_prefix=rc_name,
            route_config_name=rc_name,
            xff_num_trusted_hops=options.xff_num_trusted_hops,
            scoped=rc_name == scoped,
        )
        apply_http_options(manager, lst.options)
        add_listener_access(manager, policy)
        return [*guard_filters(lst), pb.network_filter(pb.HCM_FILTER, manager)]

    def tcp(stat_prefix: str, shares: list[tuple[str, int]]) -> list[Message]:
        proxy = pb.tcp_proxy(stat_prefix, shares)
        apply_tcp_options(proxy, lst.options)
        return [*guard_filters(lst), pb.network_filter(pb.TCP_PROXY_FILTER, proxy)]

    if lst.http is not None:
        chains.append(pb.filter_chain(name=f"{lst.name}/http", filters=hcm(lst.name)))
    for term in lst.https:
        rc_name = https_route_config_name(lst.name, term)
        chains.append(
            pb.filter_chain(
                name=rc_name,
                filters=hcm(rc_name),
                server_names=term.server_names,
                transport_socket=pb.downstream_tls(
                    term.certificates,
                    alpn=options.alpn,
                    client_ca_pem=term.client_validation.ca_pem if term.client_validation else None,
                    client_optional=bool(
                        term.client_validation and term.client_validation.insecure_fallback
                    ),
                ),
            )
        )
    for pt in lst.passthrough:
        shares = [(b.cluster, b.weight) for b in pt.backends if b.cluster and b.weight > 0]
        if not shares:
            shares = [(INVALID_BACKEND_CLUSTER, 1)]
        # tls.mode Terminate: the same TCP proxy behind a TLS server with the listener's
        # certificates, offering no application protocol (the stream is opaque).
        terminate = bool(pt.certificates)
        chains.append(
            pb.filter_chain(
                name=f"{lst.name}/{'terminate' if terminate else 'passthrough'}/{pt.name}",
                filters=[*passthrough_access(policy, pt.name), *tcp(pt.name, shares)],
                server_names=pt.server_names,
                transport_socket=pb.downstream_tls(pt.certificates, alpn=False)
                if terminate
                else None,
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
    listener = pb.listener(
        name=lst.name,
        address=address,
        port=lst.port,
        chains=chains,
        tls_inspector=lst.http is None,
        node_port=None if options.bind_all else dict(options.node_ports).get(lst.name),
    )
    apply_listener_options(listener, options)
    return listener


# --- the listener-wide knobs (gatewayAPI.* values, CiliumGatewayClassConfig) -------------


def apply_listener_options(listener: Message, options: m.ProxyOptions) -> None:
    """gatewayAPI.enableProxyProtocol: the PROXY header is read before anything else
    (the TLS inspector included), so every later filter sees the client's address."""
    if options.proxy_protocol:
        listener.listener_filters.insert(0, pbo.proxy_protocol_listener_filter())


def guard_filters(lst: m.Listener) -> list[Message]:
    """Network filters every chain starts with: the class config's
    loadBalancerSourceRanges, enforced on the client's address."""
    ranges = lst.options.source_ranges
    if ranges is None:
        return []
    return [pbo.source_ranges_filter(f"{lst.name}/source-ranges", ranges.cidrs, deny=ranges.deny)]


def apply_http_options(manager: Message, options: m.ListenerOptions) -> None:
    """gRPC-Web translation (first, so later filters see gRPC), the Server header and
    the HTTP access logs."""
    if options.grpc_web:
        filters = manager.http_filters
        # After the scoped configuration's authority filter, if any; before the rest.
        at = 1 if filters and filters[0].name == pb.LUA_FILTER else 0
        filters.insert(at, pbo.grpc_web_http_filter())
    manager.server_header_transformation = pbo.SERVER_HEADER[options.server_header.value]
    for log in options.access_logs:
        if m.AccessLogTarget.HTTP in log.targets:
            manager.access_log.append(pbo.stdout_access_log(text=log.text, json=log.json))


def apply_tcp_options(proxy: Message, options: m.ListenerOptions) -> None:
    """The access logs whose targets include TCP (TLS passthrough)."""
    for log in options.access_logs:
        if m.AccessLogTarget.TCP in log.targets:
            proxy.access_log.append(pbo.stdout_access_log(text=log.text, json=log.json))
