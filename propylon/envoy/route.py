"""RouteConfiguration content: virtual hosts and their routes, and the scoped route
configurations (scoped RDS) that carry one host's virtual host each."""

from __future__ import annotations

import re
from collections.abc import Iterable

from google.protobuf.message import Message

from propylon import model as m
from propylon.envoy import _pb as pb
from propylon.envoy.cluster import INVALID_BACKEND_CLUSTER
from propylon.envoy.output import Encoded, encoded


def build_scope(name: str, host: str, vhost: Encoded) -> tuple[Encoded, Encoded]:
    """The scope `name` for `host`: a route configuration of the same name holding the
    host's virtual host (spliced from its bytes), and the virtual host it was made of."""
    rc = pb.route_configuration_bytes(name, (vhost.data,))
    data = pb.scoped_route_configuration_bytes(name, host, rc)
    return encoded(pb.SCOPED_ROUTE_CONFIGURATION, data), vhost


def build_route_configuration(name: str, vhosts: Iterable[Encoded]) -> Encoded:
    """A RouteConfiguration spliced from its virtual hosts' bytes."""
    data = pb.route_configuration_bytes(name, (vh.data for vh in vhosts))
    return encoded(pb.ROUTE_CONFIGURATION, data)


def _domains(hostnames: Iterable[str]) -> list[str]:
    """The hostnames as they are: route configurations ignore the port in the host."""
    out: list[str] = []
    for h in hostnames:
        if h == "*":
            return ["*"]
        out.append(h)
    return out


def build_virtual_host(vh: m.VirtualHost, origin: tuple[str, int]) -> Message:
    """`origin`: the listener's scheme and port (redirects default to them)."""
    (first, *others) = vh.hostnames or ("*",)
    exact = None if others or "*" in first else first
    routes = [_route(r, origin, exact) for r in vh.routes]
    if any(r.match.grpc for r in vh.routes):
        routes.append(_grpc_unimplemented())
    return pb.VirtualHostMsg(name=vh.name, domains=_domains(vh.hostnames), routes=routes)


def _grpc_unimplemented() -> Message:
    """Unmatched gRPC calls: HTTP 200 with `grpc-status: 12` (UNIMPLEMENTED), a valid
    trailers-only gRPC response, from a route that matches only gRPC requests."""
    return pb.RouteMsg(
        name="grpc/unimplemented",
        match=pb.route_match(prefix="/", grpc=True),
        direct_response=pb.DirectResponseMsg(status=200),
        response_headers_to_add=[
            pb.header_value("content-type", "application/grpc", append=False),
            pb.header_value("grpc-status", "12", append=False),
            pb.header_value("grpc-message", "unknown service or method", append=False),
        ],
    )


def _path_match(p: m.PathMatch) -> dict[str, str]:
    if p.type is m.PathMatchType.EXACT:
        return {"path": p.value}
    if p.type is m.PathMatchType.REGEX:
        return {"path_regex": p.value}
    prefix = p.value.rstrip("/")
    if not prefix:
        return {"prefix": "/"}
    return {"separated_prefix": prefix}


def _value_matcher(value: str, type_: m.ValueMatchType) -> Message:
    if type_ is m.ValueMatchType.REGEX:
        return pb.string_regex(value)
    return pb.string_exact(value)


def _match(rm: m.RouteMatch) -> Message:
    headers = [pb.header_matcher(h.name, _value_matcher(h.value, h.type)) for h in rm.headers]
    if rm.method is not None:
        headers.append(pb.header_matcher(":method", pb.string_exact(rm.method)))
    query = [pb.query_matcher(q.name, _value_matcher(q.value, q.type)) for q in rm.query_params]
    return pb.route_match(**_path_match(rm.path), headers=headers, query=query, grpc=rm.grpc)


def _add_headers(msg: Message, mod: m.HeaderModifier | None, *, request: bool) -> None:
    if mod is None:
        return
    values = [pb.header_value(k, v, append=False) for k, v in mod.set]
    values += [pb.header_value(k, v, append=True) for k, v in mod.add]
    if request:
        msg.request_headers_to_add.extend(values)
        msg.request_headers_to_remove.extend(mod.remove)
    else:
        msg.response_headers_to_add.extend(values)
        msg.response_headers_to_remove.extend(mod.remove)


def _prefix_of(rm: m.RouteMatch) -> str | None:
    if rm.path.type is m.PathMatchType.PREFIX:
        return rm.path.value.rstrip("/")
    return None


def _path_rewrite(target: Message, mod: m.PathModifier, match: m.RouteMatch) -> None:
    """Shared by URL rewrite (RouteAction) and redirects (RedirectAction)."""
    is_redirect = isinstance(target, pb.RedirectMsg)
    if mod.type is m.PathModifierType.FULL:
        if is_redirect:
            target.path_redirect = mod.value
        else:
            target.regex_rewrite.CopyFrom(pb.regex_substitute("^/.*$", mod.value))
        return
    prefix = _prefix_of(match)
    replacement = mod.value
    if prefix is None:  # ReplacePrefixMatch only makes sense with a prefix match
        prefix = ""
    if replacement.endswith("/"):
        # "/foo" -> "/": "/foo/bar" must become "/bar", not "//bar".
        target.regex_rewrite.CopyFrom(
            pb.regex_substitute("^" + re.escape(prefix) + "/*", replacement)
        )
    elif prefix:
        target.prefix_rewrite = replacement
    else:
        target.regex_rewrite.CopyFrom(pb.regex_substitute("^/", replacement + "/"))


def _origin_matcher(origin: str) -> Message:
    if origin == "*":
        return pb.string_regex(".*")
    if "*" in origin:
        return pb.string_regex(".*".join(re.escape(p) for p in origin.split("*")))
    return pb.string_exact(origin)


def _cors(c: m.CORS) -> Message:
    return pb.cors_policy(
        origins=[_origin_matcher(o) for o in c.allow_origins],
        methods=", ".join(c.allow_methods),
        headers=", ".join(c.allow_headers),
        expose=", ".join(c.expose_headers),
        max_age=str(c.max_age_seconds),
        credentials=c.allow_credentials,
    )


_SCHEME_PORTS = {"http": 80, "https": 443}


def _redirect(
    r: m.Redirect, match: m.RouteMatch, origin: tuple[str, int], exact_host: str | None
) -> Message:
    red = pb.RedirectMsg(response_code=pb.REDIRECT_CODES.get(r.status_code, 1))
    if r.scheme is not None:
        red.scheme_redirect = r.scheme
    if r.hostname is not None:
        red.host_redirect = r.hostname
    # Gateway API: without a port, the redirect port is the new scheme's well-known
    # port, or the listener's port when the scheme is kept; the Location SHOULD NOT
    # carry the port when it is the well-known port of its scheme.
    # Envoy writes `port_redirect` verbatim (`:443` included) and drops the request's
    # port; without it, it keeps the request's Host as sent (port and all) unless the
    # host is rewritten (then it writes no port). So the port is set only when it must
    # appear. When the request's Host carries a port that must go (a listener on a
    # port that is not its scheme's well-known one), the virtual host's one exact
    # hostname is written as the redirect host, without a port; a wildcard host can
    # only be kept with the well-known port spelt out (`host:443`, equivalent).
    scheme = r.scheme or origin[0]
    port = r.port
    if port is None:
        port = _SCHEME_PORTS.get(r.scheme, origin[1]) if r.scheme else origin[1]
    if port != _SCHEME_PORTS.get(scheme):
        red.port_redirect = port
    elif r.hostname is None and origin[1] != _SCHEME_PORTS.get(origin[0]):
        if exact_host is not None:
            red.host_redirect = exact_host
        else:
            red.port_redirect = port
    if r.path is not None:
        _path_rewrite(red, r.path, match)
    return red


def _route(r: m.Route, origin: tuple[str, int], exact_host: str | None = None) -> Message:
    msg = pb.RouteMsg(name=r.name, match=_match(r.match))
    _add_headers(msg, r.request_headers, request=True)
    _add_headers(msg, r.response_headers, request=False)
    if r.cors is not None:
        msg.typed_per_filter_config[pb.CORS_FILTER].CopyFrom(pb.pack(_cors(r.cors)))
    action = r.action
    if isinstance(action, m.Redirect):
        msg.redirect.CopyFrom(_redirect(action, r.match, origin, exact_host))
        return msg
    if isinstance(action, m.DirectResponse):
        msg.direct_response.CopyFrom(_direct(action.status, action.body))
        return msg
    shares = [b for b in action.backends if b.weight > 0]
    if not shares or all(b.cluster is None for b in shares):
        msg.direct_response.CopyFrom(_direct(500, ""))
        return msg
    ra = pb.RouteActionMsg(cluster_not_found_response_code=pb.CLUSTER_NOT_FOUND_500)
    simple = len(shares) == 1 and not shares[0].request_headers and not shares[0].response_headers
    if simple:
        ra.cluster = shares[0].cluster or INVALID_BACKEND_CLUSTER
    else:
        wc = pb.WeightedClusterMsg()
        for b in shares:
            cw = pb.ClusterWeightMsg(name=b.cluster or INVALID_BACKEND_CLUSTER)
            cw.weight.value = b.weight
            _add_headers(cw, b.request_headers, request=True)
            _add_headers(cw, b.response_headers, request=False)
            wc.clusters.append(cw)
        ra.weighted_clusters.CopyFrom(wc)
    if r.rewrite is not None:
        if r.rewrite.hostname is not None:
            ra.host_rewrite_literal = r.rewrite.hostname
        if r.rewrite.path is not None:
            _path_rewrite(ra, r.rewrite.path, r.match)
    for mirror in r.mirrors:
        mp = pb.MirrorPolicyMsg(cluster=mirror.cluster)
        if mirror.numerator < mirror.denominator:
            mp.runtime_fraction.CopyFrom(pb.runtime_fraction(mirror.numerator, mirror.denominator))
        ra.request_mirror_policies.append(mp)
    # timeouts.request (0 disables); gRPC routes default to no timeout (streams).
    if r.timeout_ms is not None:
        ra.timeout.CopyFrom(pb.duration_ms(r.timeout_ms))
    elif r.backend_timeout_ms:
        ra.timeout.CopyFrom(pb.duration_ms(r.backend_timeout_ms))
    elif r.match.grpc:
        ra.timeout.CopyFrom(pb.duration_ms(0))
    if r.retry is not None:
        ra.retry_policy.CopyFrom(_retry_policy(r.retry))
    if r.backend_timeout_ms:  # timeouts.backendRequest: each try (no retries unless `retry`)
        ra.retry_policy.per_try_timeout.CopyFrom(pb.duration_ms(r.backend_timeout_ms))
        if r.retry is None:
            ra.retry_policy.num_retries.value = 0
    msg.route.CopyFrom(ra)
    return msg


# Retried besides the route's codes (GEP-1731's connection errors and backend timeouts):
# the connection failed or was refused, or the backend reset it or did not answer within
# `timeouts.backendRequest` (Envoy's per-try timeout counts as `reset`). The user asked for
# retries on the rule, so a try that may have reached the backend is retried too.
RETRY_ON_CONNECTION = "connect-failure,refused-stream,reset"


def _retry_policy(retry: m.Retry) -> Message:
    """HTTPRoute `retry`: Envoy's `num_retries` counts tries after the first, as
    `attempts` does."""
    policy = pb.RetryPolicyMsg(
        retry_on=f"retriable-status-codes,{RETRY_ON_CONNECTION}"
        if retry.codes
        else RETRY_ON_CONNECTION,
        retriable_status_codes=list(retry.codes),
    )
    if retry.attempts is not None:
        policy.num_retries.value = retry.attempts
    if retry.backoff_ms is not None:
        policy.retry_back_off.base_interval.CopyFrom(pb.duration_ms(max(retry.backoff_ms, 1)))
    return policy


def _direct(status: int, body: str) -> Message:
    d = pb.DirectResponseMsg(status=status)
    if body:
        d.body.CopyFrom(pb.data_source(body))
    return d
