"""Typed helpers around the Envoy protobufs (xds-protos ships no stubs).

Everything that touches a generated message class lives here, so the translator reads as
plain Python and mypy sees real signatures.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any as _AnyT

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import (
    address_pb2,
    base_pb2,
    config_source_pb2,
    protocol_pb2,
)
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2, scoped_route_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.lua.v3 import lua_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2
from google.protobuf.message import Message

Msg = Message
_ = _AnyT

LISTENER = listener_pb2.Listener
ROUTE_CONFIGURATION = route_pb2.RouteConfiguration
SCOPED_ROUTE_CONFIGURATION = scoped_route_pb2.ScopedRouteConfiguration
CLUSTER = cluster_pb2.Cluster
CLUSTER_LOAD_ASSIGNMENT = endpoint_pb2.ClusterLoadAssignment
SECRET = secret_pb2.Secret

CORS_FILTER = "envoy.filters.http.cors"
ROUTER_FILTER = "envoy.filters.http.router"
HCM_FILTER = "envoy.filters.network.http_connection_manager"
TCP_PROXY_FILTER = "envoy.filters.network.tcp_proxy"
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
TLS_TRANSPORT = "envoy.transport_sockets.tls"
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def pack(msg: Message) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(msg, deterministic=True)
    return out


def duration_ms(ms: int) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(ms)
    return d


def ads_source() -> Message:
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.ApiVersion.V3,
    )


def socket_address(address: str, port: int) -> Message:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=address, port_value=port)
    )


# --- matchers -------------------------------------------------------------------------


def regex(pattern: str) -> Message:
    return regex_pb2.RegexMatcher(regex=pattern)


def string_exact(value: str, *, ignore_case: bool = False) -> Message:
    return string_pb2.StringMatcher(exact=value, ignore_case=ignore_case)


def string_regex(pattern: str) -> Message:
    return string_pb2.StringMatcher(safe_regex=regex(pattern))


def string_prefix(value: str) -> Message:
    return string_pb2.StringMatcher(prefix=value)


def header_matcher(name: str, matcher: Message) -> Message:
    return route_components_pb2.HeaderMatcher(name=name, string_match=matcher)


def query_matcher(name: str, matcher: Message) -> Message:
    return route_components_pb2.QueryParameterMatcher(name=name, string_match=matcher)


def route_match(
    *,
    path: str | None = None,
    prefix: str | None = None,
    separated_prefix: str | None = None,
    path_regex: str | None = None,
    headers: Iterable[Message] = (),
    query: Iterable[Message] = (),
    grpc: bool = False,
) -> Message:
    m = route_components_pb2.RouteMatch(headers=list(headers), query_parameters=list(query))
    if path is not None:
        m.path = path
    elif separated_prefix is not None:
        m.path_separated_prefix = separated_prefix
    elif path_regex is not None:
        m.safe_regex.CopyFrom(regex(path_regex))
    else:
        m.prefix = prefix if prefix is not None else "/"
    if grpc:
        # gRPC and gRPC-Web alike (application/grpc, application/grpc+proto,
        # application/grpc-web...): the connection manager picks the route before the
        # gRPC-Web filter turns a gRPC-Web request into gRPC, so Envoy's own `grpc`
        # matcher (application/grpc and application/grpc+* only) would miss those.
        m.headers.append(header_matcher("content-type", string_prefix("application/grpc")))
    return m


# --- headers --------------------------------------------------------------------------

_HVO = base_pb2.HeaderValueOption


def header_value(name: str, value: str, *, append: bool) -> Message:
    action = (
        _HVO.HeaderAppendAction.APPEND_IF_EXISTS_OR_ADD
        if append
        else _HVO.HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD
    )
    return _HVO(header=base_pb2.HeaderValue(key=name, value=value), append_action=action)


# --- routes ---------------------------------------------------------------------------

RouteMsg = route_components_pb2.Route
RouteActionMsg = route_components_pb2.RouteAction
WeightedClusterMsg = route_components_pb2.WeightedCluster
ClusterWeightMsg = route_components_pb2.WeightedCluster.ClusterWeight
RedirectMsg = route_components_pb2.RedirectAction
DirectResponseMsg = route_components_pb2.DirectResponseAction
VirtualHostMsg = route_components_pb2.VirtualHost
RetryPolicyMsg = route_components_pb2.RetryPolicy
MirrorPolicyMsg = route_components_pb2.RouteAction.RequestMirrorPolicy

REDIRECT_CODES = {
    301: RedirectMsg.RedirectResponseCode.MOVED_PERMANENTLY,
    302: RedirectMsg.RedirectResponseCode.FOUND,
    303: RedirectMsg.RedirectResponseCode.SEE_OTHER,
    307: RedirectMsg.RedirectResponseCode.TEMPORARY_REDIRECT,
    308: RedirectMsg.RedirectResponseCode.PERMANENT_REDIRECT,
}

CLUSTER_NOT_FOUND_500 = RouteActionMsg.ClusterNotFoundResponseCode.INTERNAL_SERVER_ERROR


def regex_substitute(pattern: str, substitution: str) -> Message:
    return regex_pb2.RegexMatchAndSubstitute(pattern=regex(pattern), substitution=substitution)


def runtime_fraction(numerator: int, denominator: int) -> Message:
    millionths = min(1_000_000, max(0, numerator * 1_000_000 // max(1, denominator)))
    return base_pb2.RuntimeFractionalPercent(
        default_value=percent_pb2.FractionalPercent(
            numerator=millionths,
            denominator=percent_pb2.FractionalPercent.DenominatorType.MILLION,
        )
    )


def data_source(inline: str) -> Message:
    return base_pb2.DataSource(inline_string=inline)


def cors_policy(
    *,
    origins: Iterable[Message],
    methods: str,
    headers: str,
    expose: str,
    max_age: str,
    credentials: bool,
) -> Message:
    p = cors_pb2.CorsPolicy(
        allow_origin_string_match=list(origins),
        allow_methods=methods,
        allow_headers=headers,
        expose_headers=expose,
        max_age=max_age,
        # A preflight from an origin not allowed is answered here without CORS headers
        # (the Gateway API's HTTPRouteCORS), not forwarded for the backend to answer.
        forward_not_matching_preflights=wrappers_pb2.BoolValue(value=False),
    )
    if credentials:
        p.allow_credentials.CopyFrom(wrappers_pb2.BoolValue(value=True))
    return p


def route_configuration(name: str, virtual_hosts: Iterable[Message]) -> Message:
    return route_pb2.RouteConfiguration(
        name=name,
        virtual_hosts=list(virtual_hosts),
        validate_clusters=wrappers_pb2.BoolValue(value=False),
        # Gateway API matches the hostname without the port; this also covers wildcard
        # domains (`*.example.com:*` is no valid Envoy domain), and leaves the Host
        # header sent upstream as it was.
        ignore_port_in_host_matching=True,
    )


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def length_delimited(number: int, data: bytes) -> bytes:
    """One length-delimited field (a message, bytes or string) as protobuf encodes it."""
    return _varint(number << 3 | 2) + _varint(len(data)) + data


# Deterministic serialization writes the fields in the order of their numbers, so a
# message can be put together from fields already serialized: the translator splices
# virtual hosts it encoded once into route configurations and scopes, instead of keeping
# every message object to copy it into each (tests/envoy check the bytes are equal).
_VIRTUAL_HOSTS = 2  # RouteConfiguration.virtual_hosts; the fields we set after it: 7, 14
_RC_AFTER_VIRTUAL_HOSTS = route_configuration("", ()).SerializeToString(deterministic=True)
_SCOPE_ROUTE_CONFIGURATION = 5  # ScopedRouteConfiguration.route_configuration (after 1, 3)


def route_configuration_bytes(name: str, virtual_hosts: Iterable[bytes]) -> bytes:
    """`route_configuration(name, ...)` serialized, from serialized virtual hosts."""
    head = ROUTE_CONFIGURATION(name=name).SerializeToString(deterministic=True)
    parts = b"".join(length_delimited(_VIRTUAL_HOSTS, vh) for vh in virtual_hosts)
    return head + parts + _RC_AFTER_VIRTUAL_HOSTS


def scoped_route_configuration_bytes(name: str, key: str, route_config: bytes) -> bytes:
    """`scoped_route_configuration(...)` serialized, from a serialized route config."""
    SRC = scoped_route_pb2.ScopedRouteConfiguration
    head = SRC(name=name, key=SRC.Key(fragments=[SRC.Key.Fragment(string_key=key)]))
    data = head.SerializeToString(deterministic=True)
    return data + length_delimited(_SCOPE_ROUTE_CONFIGURATION, route_config)


# --- listeners ------------------------------------------------------------------------

HCM = hcm_pb2.HttpConnectionManager


def scoped_route_configuration(name: str, key: str, route_config: Message) -> Message:
    """One scope of scoped RDS: requests whose scope key is `key` use `route_config`."""
    SRC = scoped_route_pb2.ScopedRouteConfiguration
    return SRC(
        name=name,
        route_configuration=route_config,
        key=SRC.Key(fragments=[SRC.Key.Fragment(string_key=key)]),
    )


LUA_FILTER = "envoy.filters.http.lua"
_LOWER_AUTHORITY = """
function envoy_on_request(handle)
  local headers = handle:headers()
  local authority = headers:get(":authority")
  if authority ~= nil and string.find(authority, "%u") then
    headers:replace(":authority", string.lower(authority))
  end
end
"""


def _host_scoped_routes(name: str) -> Message:
    """Scoped RDS over ADS; the scope key is the request's host without the port (the
    part of `:authority` before the first `:`)."""
    SR = hcm_pb2.ScopedRoutes
    FB = SR.ScopeKeyBuilder.FragmentBuilder
    return SR(
        name=name,
        scope_key_builder=SR.ScopeKeyBuilder(
            fragments=[
                FB(
                    header_value_extractor=FB.HeaderValueExtractor(
                        name=":authority", element_separator=":", index=0
                    )
                )
            ]
        ),
        rds_config_source=ads_source(),
        scoped_rds=hcm_pb2.ScopedRds(scoped_rds_config_source=ads_source()),
    )


def http_connection_manager(
    *, stat_prefix: str, route_config_name: str, xff_num_trusted_hops: int, scoped: bool = False
) -> Message:
    hcm = HCM(
        stat_prefix=stat_prefix,
        codec_type=HCM.CodecType.AUTO,
        http_filters=[
            hcm_pb2.HttpFilter(name=CORS_FILTER, typed_config=pack(cors_pb2.Cors())),
            hcm_pb2.HttpFilter(name=ROUTER_FILTER, typed_config=pack(router_pb2.Router())),
        ],
        use_remote_address=wrappers_pb2.BoolValue(value=True),
        xff_num_trusted_hops=xff_num_trusted_hops,
        internal_address_config=HCM.InternalAddressConfig(),
        upgrade_configs=[HCM.UpgradeConfig(upgrade_type="websocket")],
        http2_protocol_options=protocol_pb2.Http2ProtocolOptions(),
        # `Host: example.com.` is example.com (DNS's absolute form).
        strip_trailing_host_dot=True,
    )
    if scoped:
        hcm.scoped_routes.CopyFrom(_host_scoped_routes(route_config_name))
        # Scope keys match exactly, but hosts are case-insensitive: lower-case the
        # authority first (the route is looked up again after the change).
        hcm.http_filters.insert(
            0,
            hcm_pb2.HttpFilter(
                name=LUA_FILTER,
                typed_config=pack(
                    lua_pb2.Lua(
                        default_source_code=base_pb2.DataSource(inline_string=_LOWER_AUTHORITY),
                        clear_route_cache=wrappers_pb2.BoolValue(value=True),
                    )
                ),
            ),
        )
    else:
        hcm.rds.CopyFrom(
            hcm_pb2.Rds(config_source=ads_source(), route_config_name=route_config_name)
        )
    return hcm


def tcp_proxy(stat_prefix: str, clusters: list[tuple[str, int]]) -> Message:
    tp = tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix)
    if len(clusters) == 1:
        tp.cluster = clusters[0][0]
    else:
        tp.weighted_clusters.CopyFrom(
            tcp_proxy_pb2.TcpProxy.WeightedCluster(
                clusters=[
                    tcp_proxy_pb2.TcpProxy.WeightedCluster.ClusterWeight(name=n, weight=w)
                    for n, w in clusters
                ]
            )
        )
    return tp


def network_filter(name: str, config: Message) -> Message:
    return listener_components_pb2.Filter(name=name, typed_config=pack(config))


def downstream_tls(
    secret_names: Iterable[str],
    *,
    alpn: bool = True,
    client_ca_pem: str | None = None,
    client_optional: bool = False,
) -> Message:
    """`alpn`: offer h2 and http/1.1 (else no application protocol is negotiated).
    `client_ca_pem`: ask for a client certificate and verify it against these CAs;
    required unless `client_optional`, which also serves clients whose certificate
    does not verify (Gateway API AllowInsecureFallback)."""
    ctx = tls_pb2.DownstreamTlsContext(
        common_tls_context=common_pb2_common_tls(
            sds=[secret_pb2.SdsSecretConfig(name=n, sds_config=ads_source()) for n in secret_names],
            alpn=["h2", "http/1.1"] if alpn else [],
        )
    )
    if client_ca_pem is not None:
        vc = common_pb2.CertificateValidationContext(trusted_ca=data_source(client_ca_pem))
        if client_optional:
            vc.trust_chain_verification = (
                common_pb2.CertificateValidationContext.TrustChainVerification.ACCEPT_UNTRUSTED
            )
        ctx.common_tls_context.validation_context.CopyFrom(vc)
        ctx.require_client_certificate.value = not client_optional
    return base_pb2.TransportSocket(name=TLS_TRANSPORT, typed_config=pack(ctx))


def common_pb2_common_tls(*, sds: list[Message], alpn: list[str]) -> Message:
    return tls_pb2.CommonTlsContext(tls_certificate_sds_secret_configs=sds, alpn_protocols=alpn)


def filter_chain(
    *,
    name: str,
    filters: list[Message],
    server_names: Iterable[str] = (),
    transport_socket: Message | None = None,
) -> Message:
    fc = listener_components_pb2.FilterChain(name=name, filters=filters)
    names = list(server_names)
    if names:
        fc.filter_chain_match.CopyFrom(listener_components_pb2.FilterChainMatch(server_names=names))
    if transport_socket is not None:
        fc.transport_socket.CopyFrom(transport_socket)
    return fc


def listener(
    *,
    name: str,
    address: str,
    port: int,
    chains: list[Message],
    tls_inspector: bool,
    node_port: int | None = None,
) -> Message:
    lst = listener_pb2.Listener(
        name=name,
        address=socket_address(address, port),
        filter_chains=chains,
        stat_prefix=name,
    )
    if node_port is not None:
        lst.additional_addresses.append(
            listener_pb2.AdditionalAddress(address=socket_address("0.0.0.0", node_port))
        )
    if tls_inspector:
        lst.listener_filters.append(
            listener_components_pb2.ListenerFilter(
                name=TLS_INSPECTOR, typed_config=pack(tls_inspector_pb2.TlsInspector())
            )
        )
    return lst


# --- clusters, endpoints, secrets -----------------------------------------------------


def cluster(
    *, name: str, connect_timeout_ms: int, h2: bool, upstream_tls: Message | None
) -> Message:
    c = cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.DiscoveryType.EDS,
        eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(eds_config=ads_source()),
        connect_timeout=duration_ms(connect_timeout_ms),
        lb_policy=cluster_pb2.Cluster.LbPolicy.ROUND_ROBIN,
        ignore_health_on_host_removal=True,
    )
    if h2:
        opts = http_protocol_options_pb2.HttpProtocolOptions(
            explicit_http_config=http_protocol_options_pb2.HttpProtocolOptions.ExplicitHttpConfig(
                http2_protocol_options=protocol_pb2.Http2ProtocolOptions()
            )
        )
        c.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(pack(opts))
    if upstream_tls is not None:
        c.transport_socket.CopyFrom(upstream_tls)
    return c


def upstream_tls(
    *,
    sni: str,
    ca_pem: str | None,
    ca_file: str,
    sans: list[tuple[str, str]],
    alpn: list[str],
    client_certificate: str | None = None,
) -> Message:
    """`client_certificate`: the SDS Secret presented to the backend."""
    vc = common_pb2.CertificateValidationContext(
        trusted_ca=data_source(ca_pem)
        if ca_pem is not None
        else base_pb2.DataSource(filename=ca_file)
    )
    san_types = {
        "Hostname": common_pb2.SubjectAltNameMatcher.SanType.DNS,
        "URI": common_pb2.SubjectAltNameMatcher.SanType.URI,
    }
    for kind, value in sans:
        vc.match_typed_subject_alt_names.append(
            common_pb2.SubjectAltNameMatcher(
                san_type=san_types.get(kind, common_pb2.SubjectAltNameMatcher.SanType.DNS),
                matcher=string_exact(value),
            )
        )
    if not sans:
        vc.match_typed_subject_alt_names.append(
            common_pb2.SubjectAltNameMatcher(
                san_type=common_pb2.SubjectAltNameMatcher.SanType.DNS,
                matcher=string_exact(sni),
            )
        )
    ctx = tls_pb2.UpstreamTlsContext(
        sni=sni,
        common_tls_context=tls_pb2.CommonTlsContext(validation_context=vc, alpn_protocols=alpn),
    )
    if client_certificate is not None:
        ctx.common_tls_context.tls_certificate_sds_secret_configs.append(
            secret_pb2.SdsSecretConfig(name=client_certificate, sds_config=ads_source())
        )
    return base_pb2.TransportSocket(name=TLS_TRANSPORT, typed_config=pack(ctx))


def load_assignment(name: str, endpoints: Iterable[tuple[str, int]]) -> Message:
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=name,
        endpoints=[
            endpoint_components_pb2.LocalityLbEndpoints(
                lb_endpoints=[
                    endpoint_components_pb2.LbEndpoint(
                        endpoint=endpoint_components_pb2.Endpoint(
                            address=socket_address(address, port)
                        )
                    )
                    for address, port in endpoints
                ]
            )
        ],
    )


def tls_secret(name: str, chain_pem: str, key_pem: str) -> Message:
    return secret_pb2.Secret(
        name=name,
        tls_certificate=common_pb2.TlsCertificate(
            certificate_chain=data_source(chain_pem), private_key=data_source(key_pem)
        ),
    )
