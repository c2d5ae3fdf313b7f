"""Typed helpers for the listener-wide knobs' Envoy messages (PROXY protocol, source
ranges, gRPC-Web, Server header, access logs), apart from `_pb` so that these filters
stay small named pieces next to the listener builder's own."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, substitution_format_string_pb2
from envoy.config.listener.v3 import listener_components_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.access_loggers.stream.v3 import stream_pb2
from envoy.extensions.filters.http.grpc_web.v3 import grpc_web_pb2
from envoy.extensions.filters.listener.proxy_protocol.v3 import proxy_protocol_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from google.protobuf import struct_pb2, wrappers_pb2
from google.protobuf.message import Message

from propylon.envoy._pb import pack

PROXY_PROTOCOL = "envoy.filters.listener.proxy_protocol"
SOURCE_RANGES_FILTER = "envoy.filters.network.rbac"
GRPC_WEB_FILTER = "envoy.filters.http.grpc_web"
STDOUT_ACCESS_LOG = "envoy.access_loggers.stdout"

_HCM = hcm_pb2.HttpConnectionManager
SERVER_HEADER = {
    "OVERWRITE": _HCM.ServerHeaderTransformation.OVERWRITE,
    "APPEND_IF_ABSENT": _HCM.ServerHeaderTransformation.APPEND_IF_ABSENT,
    "PASS_THROUGH": _HCM.ServerHeaderTransformation.PASS_THROUGH,
}


def proxy_protocol_listener_filter() -> Message:
    """Reads a PROXY protocol header (v1 or v2) first; a connection without one is
    closed. The addresses in it become the connection's remote address."""
    return listener_components_pb2.ListenerFilter(
        name=PROXY_PROTOCOL, typed_config=pack(proxy_protocol_pb2.ProxyProtocol())
    )


def source_ranges_filter(stat_prefix: str, cidrs: Iterable[str], *, deny: bool) -> Message:
    """A network RBAC filter on the client's address (the PROXY header's when there is
    one): only `cidrs` pass (allow), or all but them (deny)."""
    principals = []
    for cidr in cidrs:
        net = ipaddress.ip_network(cidr, strict=False)
        principals.append(
            rbac_pb2.Principal(
                remote_ip=address_pb2.CidrRange(
                    address_prefix=str(net.network_address),
                    prefix_len=wrappers_pb2.UInt32Value(value=net.prefixlen),
                )
            )
        )
    action = rbac_pb2.RBAC.Action.DENY if deny else rbac_pb2.RBAC.Action.ALLOW
    rules = rbac_pb2.RBAC(
        action=action,
        policies={
            "load-balancer-source-ranges": rbac_pb2.Policy(
                permissions=[rbac_pb2.Permission(any=True)], principals=principals
            )
        },
    )
    return listener_components_pb2.Filter(
        name=SOURCE_RANGES_FILTER,
        typed_config=pack(network_rbac_pb2.RBAC(stat_prefix=stat_prefix, rules=rules)),
    )


def grpc_web_http_filter() -> Message:
    return hcm_pb2.HttpFilter(name=GRPC_WEB_FILTER, typed_config=pack(grpc_web_pb2.GrpcWeb()))


def stdout_access_log(*, text: str | None, json: Iterable[tuple[str, str]]) -> Message:
    """One access log line per request/connection on Envoy's standard output."""
    fmt = substitution_format_string_pb2.SubstitutionFormatString()
    if text is not None:
        # A text format is written as it is: one line needs its newline.
        line = text if text.endswith("\n") else text + "\n"
        fmt.text_format_source.CopyFrom(base_pb2.DataSource(inline_string=line))
    else:
        fields = struct_pb2.Struct()
        for key, value in json:
            fields.fields[key].string_value = value
        fmt.json_format.CopyFrom(fields)
    return accesslog_pb2.AccessLog(
        name=STDOUT_ACCESS_LOG, typed_config=pack(stream_pb2.StdoutAccessLog(log_format=fmt))
    )
