"""Typed helpers for the RBAC messages that enforce network policy (`access.py`)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.http.upstream_codec.v3 import upstream_codec_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import wrappers_pb2
from google.protobuf.message import Message

from propylon.envoy._pb import pack, string_regex

RBAC_FILTER = "envoy.filters.http.rbac"
NETWORK_RBAC_FILTER = "envoy.filters.network.rbac"
UPSTREAM_CODEC = "envoy.filters.http.upstream_codec"
ALLOW = rbac_pb2.RBAC.Action.ALLOW
DENY = rbac_pb2.RBAC.Action.DENY
#: Cilium's Envoy answers a policy denial with this body (cilium/proxy l7policy).
ACCESS_DENIED_BODY = "Access denied\r\n"


def _cidr(text: str) -> Message:
    net = ipaddress.ip_network(text)
    return address_pb2.CidrRange(
        address_prefix=str(net.network_address),
        prefix_len=wrappers_pb2.UInt32Value(value=net.prefixlen),
    )


def _any_of_ips(cidrs: Sequence[str]) -> Message:
    ids = [rbac_pb2.Principal(direct_remote_ip=_cidr(c)) for c in cidrs]
    if len(ids) == 1:
        return ids[0]
    return rbac_pb2.Principal(or_ids=rbac_pb2.Principal.Set(ids=ids))


def principal(cidrs: Sequence[str], excluded: Sequence[str]) -> Message:
    """The peer address is in one of `cidrs` and in none of `excluded`."""
    inside = _any_of_ips(cidrs)
    if not excluded:
        return inside
    return rbac_pb2.Principal(
        and_ids=rbac_pb2.Principal.Set(
            ids=[inside, rbac_pb2.Principal(not_id=_any_of_ips(excluded))]
        )
    )


def header_regex(name: str, pattern: str) -> Message:
    return rbac_pb2.Permission(
        header=route_components_pb2.HeaderMatcher(name=name, string_match=string_regex(pattern))
    )


def header_present(name: str) -> Message:
    return rbac_pb2.Permission(
        header=route_components_pb2.HeaderMatcher(name=name, present_match=True)
    )


def header_exact(name: str, value: str) -> Message:
    return rbac_pb2.Permission(
        header=route_components_pb2.HeaderMatcher(
            name=name, string_match=string_pb2.StringMatcher(exact=value)
        )
    )


def any_permission() -> Message:
    return rbac_pb2.Permission(any=True)


def all_of(perms: Sequence[Message]) -> Message:
    if not perms:
        return any_permission()
    if len(perms) == 1:
        return perms[0]
    return rbac_pb2.Permission(and_rules=rbac_pb2.Permission.Set(rules=list(perms)))


def one_of(perms: Sequence[Message]) -> Message:
    if len(perms) == 1:
        return perms[0]
    return rbac_pb2.Permission(or_rules=rbac_pb2.Permission.Set(rules=list(perms)))


def policy(permission: Message, principals: Sequence[Message]) -> Message:
    return rbac_pb2.Policy(permissions=[permission], principals=list(principals))


def any_principal() -> Message:
    return rbac_pb2.Principal(any=True)


def rules(action: int, policies: Iterable[tuple[str, Message]]) -> Message:
    return rbac_pb2.RBAC(action=action, policies=dict(policies))


def http_rbac_filter(name: str, rbac: Message) -> Message:
    return hcm_pb2.HttpFilter(name=name, typed_config=pack(http_rbac_pb2.RBAC(rules=rbac)))


def network_rbac_filter(stat_prefix: str, rbac: Message) -> Message:
    return listener_components_pb2.Filter(
        name=NETWORK_RBAC_FILTER,
        typed_config=pack(network_rbac_pb2.RBAC(rules=rbac, stat_prefix=stat_prefix)),
    )


def access_denied_reply() -> Message:
    """Local replies with status 403 carry Cilium's body (RBAC's own is different)."""
    return hcm_pb2.LocalReplyConfig(
        mappers=[
            hcm_pb2.ResponseMapper(
                filter=accesslog_pb2.AccessLogFilter(
                    status_code_filter=accesslog_pb2.StatusCodeFilter(
                        comparison=accesslog_pb2.ComparisonFilter(
                            op=accesslog_pb2.ComparisonFilter.Op.EQ,
                            value=base_pb2.RuntimeUInt32(
                                default_value=403, runtime_key="propylon.access_denied"
                            ),
                        )
                    )
                ),
                body=base_pb2.DataSource(inline_string=ACCESS_DENIED_BODY),
            )
        ]
    )


def add_upstream_filters(options_any: Message | None, filters: Sequence[Message]) -> Message:
    """HttpProtocolOptions (packed, or None: HTTP/1.1) with upstream HTTP filters; the
    codec filter last, as Envoy requires."""
    opts = http_protocol_options_pb2.HttpProtocolOptions()
    if options_any is not None:
        options_any.Unpack(opts)
    else:
        opts.explicit_http_config.http_protocol_options.SetInParent()
    opts.http_filters.extend(filters)
    opts.http_filters.append(
        hcm_pb2.HttpFilter(
            name=UPSTREAM_CODEC, typed_config=pack(upstream_codec_pb2.UpstreamCodec())
        )
    )
    return pack(opts)


def internal_load_assignment(cluster: str, listener: str) -> Message:
    """One endpoint: the internal listener `listener` of this same Envoy."""
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=cluster,
        endpoints=[
            endpoint_components_pb2.LocalityLbEndpoints(
                lb_endpoints=[
                    endpoint_components_pb2.LbEndpoint(
                        endpoint=endpoint_components_pb2.Endpoint(
                            address=address_pb2.Address(
                                envoy_internal_address=address_pb2.EnvoyInternalAddress(
                                    server_listener_name=listener
                                )
                            )
                        )
                    )
                ]
            )
        ],
    )


def deny_listener(name: str) -> Message:
    """An internal listener that answers every request 403 with Cilium's body."""
    hcm = hcm_pb2.HttpConnectionManager(
        stat_prefix=name,
        codec_type=hcm_pb2.HttpConnectionManager.CodecType.AUTO,
        route_config=route_pb2.RouteConfiguration(
            name=name,
            virtual_hosts=[
                route_components_pb2.VirtualHost(
                    name=name,
                    domains=["*"],
                    routes=[
                        route_components_pb2.Route(
                            match=route_components_pb2.RouteMatch(prefix="/"),
                            direct_response=route_components_pb2.DirectResponseAction(
                                status=403,
                                body=base_pb2.DataSource(inline_string=ACCESS_DENIED_BODY),
                            ),
                        )
                    ],
                )
            ],
        ),
        http_filters=[
            hcm_pb2.HttpFilter(
                name="envoy.filters.http.router", typed_config=pack(router_pb2.Router())
            )
        ],
    )
    return listener_pb2.Listener(
        name=name,
        internal_listener=listener_pb2.Listener.InternalListenerConfig(),
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[
                    listener_components_pb2.Filter(
                        name="envoy.filters.network.http_connection_manager",
                        typed_config=pack(hcm),
                    )
                ]
            )
        ],
    )
