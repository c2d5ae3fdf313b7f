"""HTTPRoute, GRPCRoute (v1) and TLSRoute (v1alpha2, v1alpha3), with experimental fields."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, model_validator

from propylon.resources.base import Resource, Struct, record
from propylon.resources.common import (
    GATEWAY_GROUP,
    BackendObjectReference,
    BackendRef,
    Duration,
    HeaderName,
    Hostname,
    LocalObjectReference,
    ParentReference,
    PortNumber,
    PreciseHostname,
    SectionName,
    parse_duration_ms,
)

_GRPC_SERVICE_RE = re.compile(r"(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*")
_GRPC_METHOD_RE = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_PATH_CHARS_RE = re.compile(r"(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})+")
# The CRDs' CEL rules, checked by hand so that they hold without the CRD files too.
_UNIQUE_FILTERS = (
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestRedirect",
    "URLRewrite",
)
MAX_MATCHES_PER_ROUTE = 128

HTTPMethod = Literal["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]


# --- matches -----------------------------------------------------------------------------


@record
class HTTPPathMatch(Struct):
    type: Literal["Exact", "PathPrefix", "RegularExpression"] = "PathPrefix"
    value: str = Field(default="/", max_length=1024)

    @model_validator(mode="after")
    def _absolute(self) -> HTTPPathMatch:
        if self.type in ("Exact", "PathPrefix"):
            if not self.value.startswith("/"):
                raise ValueError(
                    "value must be an absolute path and start with '/' when type one of "
                    "['Exact', 'PathPrefix']"
                )
            if any(s in self.value for s in ("//", "/./", "/../", "%2f", "%2F", "#")):
                raise ValueError(
                    "must not contain '//', '/./', '/../', '%2f' or '#' when type one of "
                    "['Exact', 'PathPrefix']"
                )
            if self.value.endswith(("/..", "/.")):
                raise ValueError(
                    "must not end with '/..' or '/.' when type one of ['Exact', 'PathPrefix']"
                )
            if not _PATH_CHARS_RE.fullmatch(self.value):
                raise ValueError(
                    "must only contain valid characters (matching "
                    "^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$) for types "
                    "['Exact', 'PathPrefix']"
                )
        return self


@record
class HTTPHeaderMatch(Struct):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: HeaderName
    value: str = Field(max_length=4096)


@record
class HTTPQueryParamMatch(Struct):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: HeaderName
    value: str = Field(min_length=1, max_length=1024)


@record
class HTTPRouteMatch(Struct):
    path: HTTPPathMatch = Field(default_factory=HTTPPathMatch)
    headers: tuple[HTTPHeaderMatch, ...] = Field(default=(), max_length=16)
    query_params: tuple[HTTPQueryParamMatch, ...] = Field(default=(), max_length=16)
    method: HTTPMethod | None = None


# --- filters -----------------------------------------------------------------------------


@record
class HTTPHeader(Struct):
    name: HeaderName
    value: str = Field(max_length=4096)


@record
class HTTPHeaderFilter(Struct):
    set: list[HTTPHeader] = Field(default_factory=list, max_length=16)
    add: list[HTTPHeader] = Field(default_factory=list, max_length=16)
    remove: list[str] = Field(default_factory=list, max_length=16)


@record
class HTTPPathModifier(Struct):
    type: Literal["ReplaceFullPath", "ReplacePrefixMatch"]
    replace_full_path: str | None = None
    replace_prefix_match: str | None = None

    @model_validator(mode="after")
    def _value_for_type(self) -> HTTPPathModifier:
        if self.type == "ReplaceFullPath" and self.replace_full_path is None:
            raise ValueError(
                "replaceFullPath must be specified when type is set to 'ReplaceFullPath'"
            )
        if self.type == "ReplacePrefixMatch" and self.replace_prefix_match is None:
            raise ValueError(
                "replacePrefixMatch must be specified when type is set to 'ReplacePrefixMatch'"
            )
        return self


@record
class HTTPRequestRedirectFilter(Struct):
    scheme: Literal["http", "https"] | None = None
    hostname: PreciseHostname | None = None
    path: HTTPPathModifier | None = None
    port: PortNumber | None = None
    status_code: Literal[301, 302, 303, 307, 308] = 302  # 303, 307, 308: Gateway API v1.5


@record
class HTTPURLRewriteFilter(Struct):
    hostname: PreciseHostname | None = None
    path: HTTPPathModifier | None = None


@record
class Fraction(Struct):
    numerator: int = Field(ge=0)
    denominator: int = Field(default=100, ge=1)

    @model_validator(mode="after")
    def _proper(self) -> Fraction:
        if self.numerator > self.denominator:
            raise ValueError("numerator must be less than or equal to denominator")
        return self


@record
class HTTPRequestMirrorFilter(Struct):
    backend_ref: BackendObjectReference
    percent: int | None = Field(default=None, ge=0, le=100)
    fraction: Fraction | None = None

    @model_validator(mode="after")
    def _one_of(self) -> HTTPRequestMirrorFilter:
        if self.percent is not None and self.fraction is not None:
            raise ValueError(
                "Only one of percent or fraction may be specified in HTTPRequestMirrorFilter"
            )
        return self


@record
class HTTPCORSFilter(Struct):
    allow_origins: list[str] = Field(default_factory=list, max_length=64)
    allow_credentials: bool | None = None
    allow_methods: list[str] = Field(default_factory=list, max_length=9)
    allow_headers: list[str] = Field(default_factory=list, max_length=64)
    expose_headers: list[str] = Field(default_factory=list, max_length=64)
    max_age: int = Field(default=5, ge=1)

    @model_validator(mode="after")
    def _wildcard_alone(self) -> HTTPCORSFilter:
        if "*" in self.allow_origins and len(self.allow_origins) > 1:
            raise ValueError("AllowOrigins cannot contain '*' alongside other origins")
        if "*" in self.allow_methods and len(self.allow_methods) > 1:
            raise ValueError("AllowMethods cannot contain '*' alongside other methods")
        return self


HTTPFilterType = Literal[
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestMirror",
    "RequestRedirect",
    "URLRewrite",
    "ExtensionRef",
    "CORS",
    "ExternalAuth",
]

_FILTER_FIELDS = {
    "RequestHeaderModifier": "request_header_modifier",
    "ResponseHeaderModifier": "response_header_modifier",
    "RequestMirror": "request_mirror",
    "RequestRedirect": "request_redirect",
    "URLRewrite": "url_rewrite",
    "ExtensionRef": "extension_ref",
    "CORS": "cors",
    "ExternalAuth": "external_auth",
}


@record
class HTTPRouteFilter(Struct):
    type: HTTPFilterType
    request_header_modifier: HTTPHeaderFilter | None = None
    response_header_modifier: HTTPHeaderFilter | None = None
    request_mirror: HTTPRequestMirrorFilter | None = None
    request_redirect: HTTPRequestRedirectFilter | None = None
    url_rewrite: HTTPURLRewriteFilter | None = None
    cors: HTTPCORSFilter | None = None
    extension_ref: LocalObjectReference | None = None
    external_auth: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _config_for_type(self) -> HTTPRouteFilter:
        wanted = _FILTER_FIELDS[self.type]
        for type_name, attr in _FILTER_FIELDS.items():
            present = getattr(self, attr) is not None
            if attr == wanted and not present:
                raise ValueError(
                    f"filter.{_camel(attr)} must be specified for {type_name} filter.type"
                )
            if attr != wanted and present:
                raise ValueError(
                    f"filter.{_camel(attr)} must be nil if the filter.type is not {type_name}"
                )
        return self


def _camel(attr: str) -> str:
    first, *rest = attr.split("_")
    return first + "".join(p.capitalize() for p in rest).replace("Url", "URL")


# --- HTTPRoute ---------------------------------------------------------------------------


def _filter_set_problem(filters: Sequence[HTTPRouteFilter | GRPCRouteFilter]) -> str | None:
    if len(filters) < 2:
        return None
    types = [f.type for f in filters]
    for t in _UNIQUE_FILTERS:
        if types.count(t) > 1:  # type: ignore[arg-type]
            return f"{t} filter cannot be repeated"
    if "RequestRedirect" in types and "URLRewrite" in types:
        return (
            "May specify either httpRouteFilterRequestRedirect or "
            "httpRouteFilterRequestRewrite, but not both"
        )
    return None


def _replaces_prefix(filters: Sequence[HTTPRouteFilter], kind: str) -> bool:
    for f in filters:
        config = f.request_redirect if kind == "RequestRedirect" else f.url_rewrite
        if config is not None and config.path and config.path.type == "ReplacePrefixMatch":
            return True
    return False


@record
class HTTPBackendRef(BackendRef):
    filters: tuple[HTTPRouteFilter, ...] = Field(default=(), max_length=16)

    @model_validator(mode="after")
    def _filter_set(self) -> HTTPBackendRef:
        problem = _filter_set_problem(self.filters)
        if problem is not None:
            raise ValueError(f"filters: {problem}")
        return self


@record
class HTTPRouteTimeouts(Struct):
    request: Duration | None = None
    backend_request: Duration | None = None

    @model_validator(mode="after")
    def _backend_within_request(self) -> HTTPRouteTimeouts:
        if self.request is None or self.backend_request is None:
            return self
        request = parse_duration_ms(self.request)
        if request != 0 and parse_duration_ms(self.backend_request) > request:
            raise ValueError("backendRequest timeout cannot be longer than request timeout")
        return self


@record
class HTTPRouteRetry(Struct):
    """When to try a backend request again (experimental channel)."""

    codes: list[int] = Field(default_factory=list)
    attempts: int | None = Field(default=None, ge=1)
    backoff: Duration | None = None

    @model_validator(mode="after")
    def _codes_in_range(self) -> HTTPRouteRetry:
        bad = [c for c in self.codes if not 400 <= c <= 599]
        if bad:
            raise ValueError(f"retry codes must be within 400-599: {bad}")
        if len(set(self.codes)) != len(self.codes):
            raise ValueError("retry codes must not repeat (a set)")
        return self


@record
class HTTPRouteRule(Struct):
    name: SectionName | None = None
    matches: tuple[HTTPRouteMatch, ...] = Field(
        default_factory=lambda: (HTTPRouteMatch(),), max_length=64
    )
    filters: tuple[HTTPRouteFilter, ...] = Field(default=(), max_length=16)
    backend_refs: tuple[HTTPBackendRef, ...] = Field(default=(), max_length=16)
    timeouts: HTTPRouteTimeouts | None = None
    retry: HTTPRouteRetry | None = None
    session_persistence: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _rule_rules(self) -> HTTPRouteRule:
        plain = not self.filters and self.session_persistence is None
        if plain and all(not b.filters for b in self.backend_refs):
            return self  # the common case: nothing these rules are about
        problem = _filter_set_problem(self.filters)
        if problem is not None:
            raise ValueError(f"filters: {problem}")
        if self.backend_refs and any(f.type == "RequestRedirect" for f in self.filters):
            raise ValueError("RequestRedirect filter must not be used together with backendRefs")
        one_prefix = len(self.matches) == 1 and self.matches[0].path.type == "PathPrefix"
        if not one_prefix:
            backend_filters = [f for b in self.backend_refs for f in b.filters]
            for kind in ("RequestRedirect", "URLRewrite"):
                if _replaces_prefix(self.filters, kind):
                    raise ValueError(
                        f"When using {kind} filter with path.replacePrefixMatch, exactly one "
                        "PathPrefix match must be specified"
                    )
                if _replaces_prefix(backend_filters, kind):
                    raise ValueError(
                        f"Within backendRefs, when using {kind} filter with "
                        "path.replacePrefixMatch, exactly one PathPrefix match must be specified"
                    )
        _session_persistence(self.session_persistence)
        return self


def _session_persistence(config: dict[str, Any] | None) -> None:
    config = config or {}
    cookie = config.get("cookieConfig")
    permanent = isinstance(cookie, dict) and cookie.get("lifetimeType") == "Permanent"
    if permanent and "absoluteTimeout" not in config:
        raise ValueError(
            "sessionPersistence: AbsoluteTimeout must be specified when cookie "
            "lifetimeType is Permanent"
        )


def _route_spec_problem(
    parent_refs: Sequence[ParentReference], rule_names: Sequence[str | None], matches: int
) -> str | None:
    """The CRDs' rules on a route's spec, shared by every route kind."""
    if len(parent_refs) < 2 and matches <= MAX_MATCHES_PER_ROUTE and len(rule_names) < 2:
        return None
    if matches > MAX_MATCHES_PER_ROUTE:
        return (
            "rules: While 16 rules and 64 matches per rule are allowed, the total number of "
            f"matches across all rules in a route must be less than {MAX_MATCHES_PER_ROUTE}"
        )
    named = [n for n in rule_names if n]
    if len(named) != len(set(named)):
        return "rules: Rule name must be unique within the route"
    groups: dict[tuple[str, str, str, str], list[ParentReference]] = {}
    for ref in parent_refs:
        groups.setdefault((ref.group, ref.kind, ref.name, ref.namespace or ""), []).append(ref)
    for refs in groups.values():
        if len(refs) < 2:
            continue
        if any(r.section_name is None and r.port is None for r in refs):
            return (
                "parentRefs: sectionName or port must be specified when parentRefs includes "
                "2 or more references to the same parent"
            )
        seen = [(r.section_name or "", r.port or 0) for r in refs]
        if len(seen) != len(set(seen)):
            return (
                "parentRefs: sectionName or port must be unique when parentRefs includes "
                "2 or more references to the same parent"
            )
    return None


@record
class HTTPRouteSpec(Struct):
    parent_refs: tuple[ParentReference, ...] = Field(default=(), max_length=32)
    hostnames: tuple[Hostname, ...] = Field(default=(), max_length=16)
    rules: tuple[HTTPRouteRule, ...] = Field(
        default_factory=lambda: (HTTPRouteRule(),), max_length=16
    )

    @model_validator(mode="after")
    def _spec_rules(self) -> HTTPRouteSpec:
        problem = _route_spec_problem(
            self.parent_refs,
            [r.name for r in self.rules],
            sum(len(r.matches) for r in self.rules),
        )
        if problem is not None:
            raise ValueError(problem)
        return self


@record
class HTTPRoute(Resource):
    api_version: str = f"{GATEWAY_GROUP}/v1"
    kind: str = "HTTPRoute"
    spec: HTTPRouteSpec = Field(default_factory=HTTPRouteSpec)


# --- GRPCRoute ---------------------------------------------------------------------------


@record
class GRPCMethodMatch(Struct):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    service: str | None = Field(default=None, max_length=1024)
    method: str | None = Field(default=None, max_length=1024)

    @model_validator(mode="after")
    def _service_or_method(self) -> GRPCMethodMatch:
        if self.service is None and self.method is None:
            raise ValueError("One or both of 'service' or 'method' must be specified")
        if self.type == "Exact":
            if self.service is not None and not _GRPC_SERVICE_RE.fullmatch(self.service):
                raise ValueError(
                    "service must be a fully qualified gRPC service name (e.g. test.v1.TestService)"
                )
            if self.method is not None and not _GRPC_METHOD_RE.fullmatch(self.method):
                raise ValueError(
                    "method must only contain valid characters (matching ^[A-Za-z_][A-Za-z_0-9]*$)"
                )
        return self


@record
class GRPCHeaderMatch(Struct):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: HeaderName
    value: str = Field(min_length=1, max_length=4096)


@record
class GRPCRouteMatch(Struct):
    method: GRPCMethodMatch | None = None
    headers: tuple[GRPCHeaderMatch, ...] = Field(default=(), max_length=16)


@record
class GRPCRouteFilter(Struct):
    type: Literal[
        "ResponseHeaderModifier", "RequestHeaderModifier", "RequestMirror", "ExtensionRef"
    ]
    request_header_modifier: HTTPHeaderFilter | None = None
    response_header_modifier: HTTPHeaderFilter | None = None
    request_mirror: HTTPRequestMirrorFilter | None = None
    extension_ref: LocalObjectReference | None = None

    @model_validator(mode="after")
    def _config_for_type(self) -> GRPCRouteFilter:
        attr = _FILTER_FIELDS[self.type]
        if getattr(self, attr) is None:
            raise ValueError(f"filter.{_camel(attr)} must be specified for {self.type} filter.type")
        return self


@record
class GRPCBackendRef(BackendRef):
    filters: tuple[GRPCRouteFilter, ...] = Field(default=(), max_length=16)

    @model_validator(mode="after")
    def _filter_set(self) -> GRPCBackendRef:
        problem = _filter_set_problem(self.filters)
        if problem is not None:
            raise ValueError(f"filters: {problem}")
        return self


@record
class GRPCRouteRule(Struct):
    name: SectionName | None = None
    matches: tuple[GRPCRouteMatch, ...] = Field(default=(), max_length=64)
    filters: tuple[GRPCRouteFilter, ...] = Field(default=(), max_length=16)
    backend_refs: tuple[GRPCBackendRef, ...] = Field(default=(), max_length=16)
    session_persistence: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _rule_rules(self) -> GRPCRouteRule:
        problem = _filter_set_problem(self.filters)
        if problem is not None:
            raise ValueError(f"filters: {problem}")
        _session_persistence(self.session_persistence)
        return self


@record
class GRPCRouteSpec(Struct):
    parent_refs: tuple[ParentReference, ...] = Field(default=(), max_length=32)
    hostnames: tuple[Hostname, ...] = Field(default=(), max_length=16)
    rules: tuple[GRPCRouteRule, ...] = Field(default=(), max_length=16)

    @model_validator(mode="after")
    def _spec_rules(self) -> GRPCRouteSpec:
        problem = _route_spec_problem(
            self.parent_refs,
            [r.name for r in self.rules],
            sum(len(r.matches) for r in self.rules),
        )
        if problem is not None:
            raise ValueError(problem)
        return self


@record
class GRPCRoute(Resource):
    api_version: str = f"{GATEWAY_GROUP}/v1"
    kind: str = "GRPCRoute"
    spec: GRPCRouteSpec = Field(default_factory=GRPCRouteSpec)


# --- TLSRoute ----------------------------------------------------------------------------


@record
class TLSRouteRule(Struct):
    name: SectionName | None = None
    backend_refs: list[BackendRef] = Field(min_length=1, max_length=16)


@record
class TLSRouteSpec(Struct):
    parent_refs: tuple[ParentReference, ...] = Field(default=(), max_length=32)
    hostnames: tuple[Hostname, ...] = Field(default=(), max_length=16)
    rules: list[TLSRouteRule] = Field(min_length=1, max_length=16)

    @model_validator(mode="after")
    def _spec_rules(self) -> TLSRouteSpec:
        problem = _route_spec_problem(self.parent_refs, [r.name for r in self.rules], 0)
        if problem is not None:
            raise ValueError(problem)
        return self


@record
class TLSRoute(Resource):
    api_version: str = f"{GATEWAY_GROUP}/v1alpha2"
    kind: str = "TLSRoute"
    spec: TLSRouteSpec

    @model_validator(mode="after")
    def _v1alpha3_needs_hostnames(self) -> TLSRoute:
        if self.api_version.endswith("/v1alpha3") and not self.spec.hostnames:
            raise ValueError("spec.hostnames is required in v1alpha3")
        return self
