"""HTTPRoute / GRPCRoute / TLSRoute / TCPRoute / UDPRoute rules -> model routes and backends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from propylon.gatewayapi.backends import BackendProblems, Clusters
from propylon.gatewayapi.names import name_part
from propylon.gatewayapi.precedence import SortKey, sort_key
from propylon.model import (
    CORS,
    AppProtocol,
    DirectResponse,
    Forward,
    HeaderMatch,
    HeaderModifier,
    Mirror,
    PathMatch,
    PathMatchType,
    PathModifier,
    PathModifierType,
    QueryParamMatch,
    Redirect,
    Retry,
    Route,
    RouteAction,
    RouteMatch,
    URLRewrite,
    ValueMatchType,
    WeightedBackend,
)
from propylon.resources import (
    BackendRef,
    GRPCRoute,
    GRPCRouteFilter,
    GRPCRouteMatch,
    HTTPHeaderFilter,
    HTTPRoute,
    HTTPRouteFilter,
    HTTPRouteMatch,
    Resource,
    TCPRoute,
    TLSRoute,
    UDPRoute,
    parse_duration_ms,
)
from propylon.resources.routes import HTTPPathModifier, HTTPRouteRetry, HTTPRouteTimeouts

UNSUPPORTED_FILTERS = ("ExtensionRef", "ExternalAuth")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class OrderedRoute:
    key: SortKey
    route: Route


def unsupported_filters(route: HTTPRoute | GRPCRoute) -> list[str]:
    """Filters we cannot honour; the route is then not accepted (UnsupportedValue)."""
    out: list[str] = []
    per_rule: list[list[HTTPRouteFilter | GRPCRouteFilter]] = []
    if isinstance(route, HTTPRoute):
        for hr in route.spec.rules:
            per_rule.append([*hr.filters, *(f for b in hr.backend_refs for f in b.filters)])
    else:
        for gr in route.spec.rules:
            per_rule.append([*gr.filters, *(f for b in gr.backend_refs for f in b.filters)])
    for i, filters in enumerate(per_rule):
        for f in filters:
            if f.type in UNSUPPORTED_FILTERS:
                out.append(f"spec.rules[{i}]: filter type {f.type} is not supported")
    return out


def _first_by_name(items: Sequence[T], name: Callable[[T], str]) -> list[T]:
    """The first of the entries with an equivalent (case-insensitive) header name: the
    Gateway API says the later ones are ignored."""
    seen: set[str] = set()
    out: list[T] = []
    for item in items:
        key = name(item).lower()
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _header_modifier(f: HTTPHeaderFilter | None) -> HeaderModifier | None:
    if f is None:
        return None
    return HeaderModifier(
        set=tuple((h.name, h.value) for h in _first_by_name(f.set, lambda h: h.name)),
        add=tuple((h.name, h.value) for h in _first_by_name(f.add, lambda h: h.name)),
        remove=tuple(_first_by_name(f.remove, lambda n: n)),
    )


def _path_modifier(p: HTTPPathModifier | None) -> PathModifier | None:
    if p is None:
        return None
    if p.type == "ReplaceFullPath":
        return PathModifier(PathModifierType.FULL, p.replace_full_path or "")
    return PathModifier(PathModifierType.PREFIX, p.replace_prefix_match or "")


@dataclass
class _Filters:
    request_headers: HeaderModifier | None = None
    response_headers: HeaderModifier | None = None
    redirect: Redirect | None = None
    rewrite: URLRewrite | None = None
    cors: CORS | None = None
    mirrors: tuple[Mirror, ...] = ()


def _filters(
    filters: Sequence[HTTPRouteFilter | GRPCRouteFilter],
    route: Resource,
    clusters: Clusters,
    problems: BackendProblems,
) -> _Filters:
    out = _Filters()
    mirrors: list[Mirror] = []
    for f in filters:
        if f.type == "RequestHeaderModifier":
            out.request_headers = _header_modifier(f.request_header_modifier)
        elif f.type == "ResponseHeaderModifier":
            out.response_headers = _header_modifier(f.response_header_modifier)
        elif f.type == "RequestMirror" and f.request_mirror is not None:
            m = f.request_mirror
            res = clusters.resolve(
                m.backend_ref,
                route_kind=route.kind,
                route_namespace=route.metadata.namespace,
                protocol=AppProtocol.H2C if isinstance(route, GRPCRoute) else None,
            )
            if res.cluster is None:
                problems.add(res.reason, f"mirror {res.message}")
                continue
            if m.fraction is not None:
                num, den = m.fraction.numerator, m.fraction.denominator
            elif m.percent is not None:
                num, den = m.percent, 100
            else:
                num, den = 100, 100
            mirrors.append(Mirror(res.cluster, num, den))
        elif isinstance(f, HTTPRouteFilter):
            if f.type == "RequestRedirect" and f.request_redirect is not None:
                r = f.request_redirect
                out.redirect = Redirect(
                    scheme=r.scheme,
                    hostname=r.hostname,
                    port=r.port,
                    path=_path_modifier(r.path),
                    status_code=r.status_code,
                )
            elif f.type == "URLRewrite" and f.url_rewrite is not None:
                out.rewrite = URLRewrite(
                    hostname=f.url_rewrite.hostname, path=_path_modifier(f.url_rewrite.path)
                )
            elif f.type == "CORS" and f.cors is not None:
                cc = f.cors
                out.cors = CORS(
                    allow_origins=tuple(cc.allow_origins),
                    allow_methods=tuple(cc.allow_methods),
                    allow_headers=tuple(cc.allow_headers),
                    expose_headers=tuple(cc.expose_headers),
                    max_age_seconds=cc.max_age,
                    allow_credentials=bool(cc.allow_credentials),
                )
    out.mirrors = tuple(mirrors)
    return out


def _backends(
    refs: Sequence[BackendRef],
    route: Resource,
    clusters: Clusters,
    problems: BackendProblems,
    protocol: AppProtocol | None,
) -> RouteAction:
    weighted: list[WeightedBackend] = []
    for ref in refs:
        res = clusters.resolve(
            ref,
            route_kind=route.kind,
            route_namespace=route.metadata.namespace,
            protocol=protocol,
        )
        if res.cluster is None:
            problems.add(res.reason, res.message)
        if ref.weight == 0:
            continue
        bfilters = getattr(ref, "filters", [])
        req = next((f for f in bfilters if f.type == "RequestHeaderModifier"), None)
        resp = next((f for f in bfilters if f.type == "ResponseHeaderModifier"), None)
        weighted.append(
            WeightedBackend(
                cluster=res.cluster,
                weight=ref.weight,
                request_headers=_header_modifier(req.request_header_modifier) if req else None,
                response_headers=_header_modifier(resp.response_header_modifier) if resp else None,
            )
        )
    # Nothing to forward to: the Gateway API wants HTTP 500 for the rule's traffic.
    if not weighted or all(b.cluster is None for b in weighted):
        return DirectResponse(500)
    return Forward(tuple(weighted))


def _http_match(m: HTTPRouteMatch) -> RouteMatch:
    # Only the first of equivalent names counts (headers: case-insensitive; query
    # parameters: exact), as the Gateway API specifies.
    seen_params: set[str] = set()
    params = []
    for q in m.query_params:
        if q.name not in seen_params:
            seen_params.add(q.name)
            params.append(QueryParamMatch(q.name, q.value, ValueMatchType(q.type)))
    return RouteMatch(
        path=PathMatch(PathMatchType(m.path.type), m.path.value),
        headers=tuple(
            HeaderMatch(h.name, h.value, ValueMatchType(h.type))
            for h in _first_by_name(m.headers, lambda h: h.name)
        ),
        query_params=tuple(params),
        method=m.method,
    )


def _grpc_match(m: GRPCRouteMatch) -> RouteMatch:
    headers = tuple(
        HeaderMatch(h.name, h.value, ValueMatchType(h.type))
        for h in _first_by_name(m.headers, lambda h: h.name)
    )
    meth = m.method
    if meth is None:
        path = PathMatch(PathMatchType.PREFIX, "/")
    elif meth.type == "Exact":
        if meth.service and meth.method:
            path = PathMatch(PathMatchType.EXACT, f"/{meth.service}/{meth.method}")
        elif meth.service:
            path = PathMatch(PathMatchType.PREFIX, f"/{meth.service}/")
        else:
            path = PathMatch(PathMatchType.REGEX, f"/[^/]+/{meth.method}")
    else:
        path = PathMatch(PathMatchType.REGEX, grpc_method_regex(meth.service, meth.method))
    return RouteMatch(path=path, headers=headers, grpc=True)


def grpc_method_regex(service: str | None, method: str | None) -> str:
    """The :path regex of a RegularExpression method match. Each part is a group of its
    own, so an alternation in one (`a|b`) stays inside it."""
    svc = f"(?:{service})" if service else "[^/]+"
    meth = f"(?:{method})" if method else "[^/]+"
    return f"/{svc}/{meth}"


def _ordered(
    route: HTTPRoute | GRPCRoute,
    i: int,
    j: int,
    match: RouteMatch,
    action: RouteAction,
    flt: _Filters,
    timeouts: HTTPRouteTimeouts | None = None,
    retry: HTTPRouteRetry | None = None,
) -> OrderedRoute:
    """One match of one rule as a model Route, with the key that orders it."""
    ns, name = route.metadata.namespace, route.metadata.name
    return OrderedRoute(
        sort_key(match, route, i, j),
        Route(
            name=f"{route.kind}/{ns}/{name}/rule/{i}/match/{j}",
            match=match,
            action=action,
            request_headers=flt.request_headers,
            response_headers=flt.response_headers,
            rewrite=flt.rewrite,
            mirrors=flt.mirrors,
            cors=flt.cors,
            timeout_ms=parse_duration_ms(timeouts.request)
            if timeouts and timeouts.request
            else None,
            backend_timeout_ms=parse_duration_ms(timeouts.backend_request)
            if timeouts and timeouts.backend_request
            else None,
            retry=_retry(retry) if retry is not None else None,
        ),
    )


def _retry(retry: HTTPRouteRetry) -> Retry:
    return Retry(
        codes=tuple(sorted(retry.codes)),
        attempts=retry.attempts,
        backoff_ms=parse_duration_ms(retry.backoff) if retry.backoff else None,
    )


def http_routes(
    route: HTTPRoute, clusters: Clusters, problems: BackendProblems
) -> list[OrderedRoute]:
    out: list[OrderedRoute] = []
    for i, rule in enumerate(route.spec.rules):
        flt = _filters(rule.filters, route, clusters, problems)
        action: RouteAction
        if flt.redirect is not None:
            action = flt.redirect
        else:
            action = _backends(rule.backend_refs, route, clusters, problems, None)
        for j, m in enumerate(rule.matches or [HTTPRouteMatch()]):
            out.append(
                _ordered(route, i, j, _http_match(m), action, flt, rule.timeouts, rule.retry)
            )
    return out


def grpc_routes(
    route: GRPCRoute, clusters: Clusters, problems: BackendProblems
) -> list[OrderedRoute]:
    out: list[OrderedRoute] = []
    for i, rule in enumerate(route.spec.rules):
        flt = _filters(rule.filters, route, clusters, problems)
        action = _backends(rule.backend_refs, route, clusters, problems, AppProtocol.H2C)
        for j, m in enumerate(rule.matches or [GRPCRouteMatch()]):
            out.append(_ordered(route, i, j, _grpc_match(m), action, flt))
    return out


def tls_backends(
    route: TLSRoute, clusters: Clusters, problems: BackendProblems
) -> tuple[WeightedBackend, ...]:
    """TLSRoute: the first rule's backends (the API allows one rule in practice)."""
    out: list[WeightedBackend] = []
    for rule in route.spec.rules:
        for ref in rule.backend_refs:
            res = clusters.resolve(
                ref,
                route_kind=route.kind,
                route_namespace=route.metadata.namespace,
                protocol=AppProtocol.TCP,
            )
            if res.cluster is None:
                problems.add(res.reason, res.message)
            if ref.weight > 0:
                out.append(WeightedBackend(cluster=res.cluster, weight=ref.weight))
    return tuple(out)


def stream_backends(
    route: TCPRoute | UDPRoute, clusters: Clusters, problems: BackendProblems
) -> tuple[WeightedBackend, ...]:
    """TCPRoute / UDPRoute: its rules' backends (v1 has one rule; v1alpha2's several all
    forward on the same listener, so they are one set of weighted backends). A weight
    of 0 takes no traffic; an unresolved backend keeps its share (`cluster` None: those
    connections are closed). Envoy's UDP proxy forwards to one cluster: several UDP
    backends become one cluster of weighted endpoint groups."""
    udp = isinstance(route, UDPRoute)
    protocol = AppProtocol.UDP if udp else AppProtocol.TCP
    shares: list[tuple[str | None, int]] = []
    for rule in route.spec.rules:
        for ref in rule.backend_refs:
            res = clusters.resolve(
                ref,
                route_kind=route.kind,
                route_namespace=route.metadata.namespace,
                protocol=protocol,
            )
            if res.cluster is None:
                problems.add(res.reason, res.message)
            if ref.weight > 0:
                shares.append((res.cluster, ref.weight))
    if udp and len(shares) > 1 and any(name is not None for name, _ in shares):
        ns, name = route.metadata.namespace, route.metadata.name
        combined = f"{name_part(ns)}:{name_part(name)}:udproute"
        return (WeightedBackend(cluster=clusters.weighted(combined, shares)),)
    return tuple(WeightedBackend(cluster=name, weight=weight) for name, weight in shares)
