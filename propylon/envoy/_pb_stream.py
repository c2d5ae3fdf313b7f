"""Typed builders of the Envoy messages for TCP and UDP listeners (TCPRoute, UDPRoute)
and for clusters of weighted endpoint groups (a UDPRoute's several backends)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2, udp_listener_config_pb2
from envoy.extensions.filters.udp.udp_proxy.v3 import route_pb2 as udp_route_pb2
from envoy.extensions.filters.udp.udp_proxy.v3 import udp_proxy_pb2
from envoy.extensions.matching.common_inputs.network.v3 import network_inputs_pb2
from google.protobuf import wrappers_pb2
from google.protobuf.message import Message
from xds.core.v3 import cidr_pb2, extension_pb2
from xds.type.matcher.v3 import ip_pb2, matcher_pb2

from propylon.envoy._pb import pack, socket_address

UDP_PROXY_FILTER = "envoy.filters.udp_listener.udp_proxy"


def udp_address(address: str, port: int) -> Message:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(
            protocol=address_pb2.SocketAddress.Protocol.UDP, address=address, port_value=port
        )
    )


def _route_action(cluster: str) -> Message:
    return matcher_pb2.Matcher.OnMatch(
        action=extension_pb2.TypedExtensionConfig(
            name="route", typed_config=pack(udp_route_pb2.Route(cluster=cluster))
        )
    )


def udp_proxy(
    stat_prefix: str,
    cluster: str,
    *,
    source_ranges: tuple[Iterable[str], bool] | None = None,
    closed: str = "",
) -> Message:
    """Every datagram session to `cluster` (the matcher's no-match action: the UDP
    proxy's current form; its `cluster` field is deprecated). `source_ranges` (cidrs,
    deny): the class config's loadBalancerSourceRanges, matched on the client's address
    (UDP has no RBAC filter); a refused client's datagrams go to `closed`, a cluster
    that never exists, i.e. are dropped."""
    if source_ranges is None:
        return udp_proxy_pb2.UdpProxyConfig(
            stat_prefix=stat_prefix, matcher=matcher_pb2.Matcher(on_no_match=_route_action(cluster))
        )
    cidrs, deny = source_ranges
    ranges = []
    for cidr in cidrs:
        net = ipaddress.ip_network(cidr, strict=False)
        ranges.append(
            cidr_pb2.CidrRange(
                address_prefix=str(net.network_address),
                prefix_len=wrappers_pb2.UInt32Value(value=net.prefixlen),
            )
        )
    inside, outside = (closed, cluster) if deny else (cluster, closed)
    matched = ip_pb2.IPMatcher.IPRangeMatcher(ranges=ranges, on_match=_route_action(inside))
    ip_matcher = ip_pb2.IPMatcher(range_matchers=[matched])
    tree = matcher_pb2.Matcher.MatcherTree(
        input=extension_pb2.TypedExtensionConfig(
            name="source-ip", typed_config=pack(network_inputs_pb2.SourceIPInput())
        ),
        custom_match=extension_pb2.TypedExtensionConfig(
            name="source-ranges", typed_config=pack(ip_matcher)
        ),
    )
    return udp_proxy_pb2.UdpProxyConfig(
        stat_prefix=stat_prefix,
        matcher=matcher_pb2.Matcher(matcher_tree=tree, on_no_match=_route_action(outside)),
    )


def udp_listener(
    *, name: str, address: str, port: int, proxy: Message, node_port: int | None = None
) -> Message:
    lst = listener_pb2.Listener(
        name=name,
        address=udp_address(address, port),
        udp_listener_config=udp_listener_config_pb2.UdpListenerConfig(),
        listener_filters=[
            listener_components_pb2.ListenerFilter(name=UDP_PROXY_FILTER, typed_config=pack(proxy))
        ],
        stat_prefix=name,
    )
    if node_port is not None:
        lst.additional_addresses.append(
            listener_pb2.AdditionalAddress(address=udp_address("0.0.0.0", node_port))
        )
    return lst


def locality_weighted(cluster: Message) -> None:
    """A session picks a locality (an endpoint group) by its weight first."""
    assert isinstance(cluster, cluster_pb2.Cluster)
    cluster.common_lb_config.locality_weighted_lb_config.SetInParent()


def weighted_load_assignment(
    name: str, groups: Iterable[tuple[int, Iterable[tuple[str, int]]]]
) -> Message:
    """One locality per group (`sub_zone` its index), weighted."""
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=name,
        endpoints=[
            endpoint_components_pb2.LocalityLbEndpoints(
                locality=base_pb2.Locality(sub_zone=f"backend-{i}"),
                load_balancing_weight=wrappers_pb2.UInt32Value(value=weight),
                lb_endpoints=[
                    endpoint_components_pb2.LbEndpoint(
                        endpoint=endpoint_components_pb2.Endpoint(
                            address=socket_address(address, port)
                        )
                    )
                    for address, port in endpoints
                ],
            )
            for i, (weight, endpoints) in enumerate(groups)
        ],
    )
