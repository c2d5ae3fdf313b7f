"""The data-plane model: what Gateway API semantics decided, in Gateway API's language.

`propylon.gatewayapi` produces a `Model`; `propylon.envoy` turns it into xDS. Nothing
here knows about Envoy. Every collection is a tuple in a deterministic order, so the same
input always gives the same model (and byte-identical xDS).

Naming (stable and documented, so users can find things in Envoy's config_dump):
- `Listener.name`: `<gateway-namespace>/<gateway-name>/<port>`; one per Gateway and port.
- `Cluster.name`: `<namespace>:<service>:<port>` for a Service backend;
  `<namespace>:<udproute>:udproute` for a UDPRoute's weighted backends.
- `Secret.name`: `<namespace>/<secret-name>`.
- A cluster a Gateway with `spec.tls.backend.clientCertificateRef` uses over TLS:
  `<cluster>/client/<gateway-namespace>/<gateway-name>` (it presents that certificate).
- `VirtualHost.name`: `<listener-name>/<hostname or *>`.
- `Route.name`: `<kind>/<namespace>/<route-name>/rule/<i>/match/<j>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from propylon.model.access import Access as Access
from propylon.model.access import AccessRule as AccessRule
from propylon.model.access import BackendAccess as BackendAccess
from propylon.model.access import HttpRule as HttpRule
from propylon.model.access import ListenerAccess as ListenerAccess
from propylon.model.access import Sources as Sources


class PathMatchType(StrEnum):
    EXACT = "Exact"
    PREFIX = "PathPrefix"
    REGEX = "RegularExpression"


class ValueMatchType(StrEnum):
    EXACT = "Exact"
    REGEX = "RegularExpression"


@dataclass(frozen=True, slots=True)
class PathMatch:
    type: PathMatchType
    value: str


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    """Header names are matched case-insensitively (HTTP semantics)."""

    name: str
    value: str
    type: ValueMatchType = ValueMatchType.EXACT


@dataclass(frozen=True, slots=True)
class QueryParamMatch:
    name: str
    value: str
    type: ValueMatchType = ValueMatchType.EXACT


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """All conditions must hold. A GRPCRoute method match arrives here already as a path."""

    path: PathMatch = PathMatch(PathMatchType.PREFIX, "/")
    headers: tuple[HeaderMatch, ...] = ()
    query_params: tuple[QueryParamMatch, ...] = ()
    method: str | None = None
    grpc: bool = False  # only requests with content-type application/grpc*


@dataclass(frozen=True, slots=True)
class HeaderModifier:
    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()


class PathModifierType(StrEnum):
    FULL = "ReplaceFullPath"
    PREFIX = "ReplacePrefixMatch"


@dataclass(frozen=True, slots=True)
class PathModifier:
    type: PathModifierType
    value: str


@dataclass(frozen=True, slots=True)
class Redirect:
    """HTTPRoute RequestRedirect. `None` fields keep the request's value."""

    scheme: str | None = None
    hostname: str | None = None
    port: int | None = None
    path: PathModifier | None = None
    status_code: int = 302


@dataclass(frozen=True, slots=True)
class URLRewrite:
    hostname: str | None = None
    path: PathModifier | None = None


@dataclass(frozen=True, slots=True)
class Mirror:
    cluster: str
    # Fraction of requests mirrored, as numerator/denominator (100/100 = all).
    numerator: int = 100
    denominator: int = 100


@dataclass(frozen=True, slots=True)
class CORS:
    allow_origins: tuple[str, ...] = ()  # "*" or scheme://host[:port], may hold "*" wildcards
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age_seconds: int = 5
    allow_credentials: bool = False


@dataclass(frozen=True, slots=True)
class WeightedBackend:
    """One backendRef of a rule. `cluster` is None for a ref that could not be resolved:
    its share of the traffic is answered with HTTP 500, as the Gateway API requires."""

    cluster: str | None
    weight: int = 1
    request_headers: HeaderModifier | None = None
    response_headers: HeaderModifier | None = None


@dataclass(frozen=True, slots=True)
class Forward:
    backends: tuple[WeightedBackend, ...]


@dataclass(frozen=True, slots=True)
class DirectResponse:
    status: int
    body: str = ""


RouteAction = Forward | Redirect | DirectResponse


@dataclass(frozen=True, slots=True)
class Retry:
    """HTTPRoute `retry`: up to `attempts` more tries (None: the data plane's default)
    when the backend answers one of `codes`, or the connection to it fails; at least
    `backoff_ms` apart (None: the data plane's default)."""

    codes: tuple[int, ...] = ()
    attempts: int | None = None
    backoff_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """One match of one rule, in final precedence order within its virtual host."""

    name: str
    match: RouteMatch
    action: RouteAction
    request_headers: HeaderModifier | None = None
    response_headers: HeaderModifier | None = None
    rewrite: URLRewrite | None = None
    mirrors: tuple[Mirror, ...] = ()
    cors: CORS | None = None
    timeout_ms: int | None = None  # HTTPRoute timeouts.request; 0 disables
    backend_timeout_ms: int | None = None  # timeouts.backendRequest; 0 disables
    retry: Retry | None = None


@dataclass(frozen=True, slots=True)
class VirtualHost:
    """Requests whose host (port stripped) matches one of `hostnames`.

    Hostnames are exact (`foo.example.com`), wildcard (`*.example.com`, at least one
    label) or `*` (anything). Envoy-style "most specific domain wins" selection is
    correct here because `gatewayapi` already enforced listener isolation.
    """

    name: str
    hostnames: tuple[str, ...]
    routes: tuple[Route, ...]


@dataclass(frozen=True, slots=True)
class ClientValidation:
    """Gateway `spec.tls.frontend`: clients must present a certificate signed by one of
    `ca_pem` (PEM bundle); with `insecure_fallback`, a client without one, or with one
    that does not verify, is served anyway (AllowInsecureFallback)."""

    ca_pem: str
    insecure_fallback: bool = False


@dataclass(frozen=True, slots=True)
class TLSTermination:
    """An HTTPS filter chain: chosen by SNI (`server_names`, empty = any)."""

    server_names: tuple[str, ...]
    certificates: tuple[str, ...]  # Secret names in `Model.secrets`
    virtual_hosts: tuple[VirtualHost, ...]
    client_validation: ClientValidation | None = None


@dataclass(frozen=True, slots=True)
class TLSPassthrough:
    """A TLS filter chain forwarded as TCP, chosen by SNI (`server_names`, empty = any).

    `certificates` empty: the client's TLS goes to the backends as it is (TLS listener
    `mode: Passthrough`); otherwise the Gateway terminates TLS with these Secrets (names
    in `Model.secrets`; `mode: Terminate`) and the backends get the decrypted stream."""

    name: str
    server_names: tuple[str, ...]
    backends: tuple[WeightedBackend, ...]
    certificates: tuple[str, ...] = ()


class AccessLogTarget(StrEnum):
    """Where an access log is written from (CiliumGatewayClassConfig's names)."""

    HTTP = "HTTP"  # HTTP requests (terminated HTTP and HTTPS)
    TCP = "TCP"  # TCP connections forwarded as they are (TLS passthrough)


@dataclass(frozen=True, slots=True)
class AccessLog:
    """One access log on the proxy's standard output: a text line (`text`) or a JSON
    object (`json`: field name -> format string), with Gateway-specific placeholders
    already substituted."""

    targets: frozenset[AccessLogTarget]
    text: str | None = None
    json: tuple[tuple[str, str], ...] = ()


class ServerHeader(StrEnum):
    """What happens to the `Server` response header."""

    OVERWRITE = "OVERWRITE"  # always the proxy's own
    APPEND_IF_ABSENT = "APPEND_IF_ABSENT"  # the backend's if it sent one, else the proxy's
    PASS_THROUGH = "PASS_THROUGH"  # the backend's, or none


@dataclass(frozen=True, slots=True)
class SourceRanges:
    """Which client addresses a listener serves: only those in `cidrs` (`deny` False)
    or all but those (`deny` True)."""

    cidrs: tuple[str, ...]
    deny: bool = False


@dataclass(frozen=True, slots=True)
class ListenerOptions:
    """Per-Gateway knobs (from its class's CiliumGatewayClassConfig)."""

    source_ranges: SourceRanges | None = None
    grpc_web: bool = True  # translate gRPC-Web requests to gRPC
    server_header: ServerHeader = ServerHeader.OVERWRITE
    access_logs: tuple[AccessLog, ...] = ()


DEFAULT_LISTENER_OPTIONS = ListenerOptions()


@dataclass(frozen=True, slots=True)
class StreamForward:
    """A TCP or UDP listener's one route (TCPRoute, UDPRoute: the oldest attached one):
    every connection, or every datagram session, goes to its backends by weight.
    `route` is `<kind>/<namespace>/<name>`, None when no route is attached; without a
    usable backend, connections are closed and datagrams dropped."""

    route: str | None
    backends: tuple[WeightedBackend, ...] = ()


@dataclass(frozen=True, slots=True)
class Listener:
    """One socket: a Gateway's address and port. Gateway listeners that share a port
    (different hostnames or protocols that can share) are merged into one Listener.

    Exactly one of these shapes is used: `http` (plain HTTP), any mix of `https` and
    `passthrough` chains (both select on SNI), `tcp` (TCP listener) or `udp` (UDP
    listener; its name ends in `/udp`, since a TCP listener may share its port).
    """

    name: str
    address: str
    port: int
    http: tuple[VirtualHost, ...] | None = None
    https: tuple[TLSTermination, ...] = ()
    passthrough: tuple[TLSPassthrough, ...] = ()
    options: ListenerOptions = DEFAULT_LISTENER_OPTIONS
    tcp: StreamForward | None = None
    udp: StreamForward | None = None


class AppProtocol(StrEnum):
    HTTP1 = "http"
    H2C = "kubernetes.io/h2c"  # also gRPC backends
    WEBSOCKET = "kubernetes.io/ws"
    TCP = "tcp"  # TLS passthrough, TCPRoute
    UDP = "udp"  # UDPRoute


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: str
    port: int
    ready: bool = True


@dataclass(frozen=True, slots=True)
class UpstreamTLS:
    """BackendTLSPolicy: originate TLS to the backend."""

    sni: str
    ca_pem: str | None  # None: system trust store (WellKnownCACertificates: System)
    subject_alt_names: tuple[tuple[str, str], ...] = ()  # (type "Hostname"|"URI", value)
    #: Gateway `spec.tls.backend.clientCertificateRef`: the Secret (in `Model.secrets`)
    #: presented to the backend.
    client_certificate: str | None = None


@dataclass(frozen=True, slots=True)
class Cluster:
    name: str
    endpoints: tuple[Endpoint, ...]
    protocol: AppProtocol = AppProtocol.HTTP1
    tls: UpstreamTLS | None = None
    #: UDPRoute with several backends (Envoy's UDP proxy forwards to one cluster): one
    #: (weight, endpoints) group per backend; a session picks a group by weight, then an
    #: endpoint in it. Empty: `endpoints`, unweighted.
    weighted: tuple[tuple[int, tuple[Endpoint, ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class Secret:
    name: str
    certificate_chain: str  # PEM
    private_key: str  # PEM


#: Where a tuple of virtual hosts lives in a Model: (Listener name, None) for the
#: Listener's `http`, (Listener name, server_names) for one of its `https` terminations.
VirtualHostSet = tuple[str, tuple[str, ...] | None]
#: (before, after) of virtual hosts added (before None), replaced, or removed (after None).
VirtualHostChanges = tuple[tuple[VirtualHost | None, VirtualHost | None], ...]


class Stamp:
    """Names one Model (or one translation) for as long as something holds it. A
    consumer keeps the stamp of what it handled last and compares by identity (`is`),
    so producers need no shared counter and the core holds no process-global state."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Delta:
    """A hint from the producer of a Model: how it differs from the Model whose `stamp`
    is `base` (the same producer's previous one), so a consumer that handled `base` last
    can work in proportion to the change. Everything not named here is the very same
    object as in `base`. Only a hint: a consumer may ignore it and compare everything.
    """

    base: Stamp
    #: Cluster name -> the Cluster now (None: gone), for every cluster added, replaced
    #: or removed (more names are allowed: their value is then the unchanged object).
    clusters: Mapping[str, Cluster | None] = field(default_factory=dict)
    #: Per virtual host set whose tuple is not the same object as in `base` (others may
    #: be here too): its changes, which applied to the set's virtual hosts in `base`
    #: give the set's virtual hosts now (as a set of objects; the tuple has the order).
    virtual_hosts: Mapping[VirtualHostSet, VirtualHostChanges] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Model:
    listeners: tuple[Listener, ...] = ()
    clusters: tuple[Cluster, ...] = ()
    secrets: tuple[Secret, ...] = ()
    #: A fresh `Stamp` for a model that a later `Delta` may refer to; None: none.
    stamp: Stamp | None = field(default=None, compare=False, repr=False)
    delta: Delta | None = field(default=None, compare=False, repr=False)
    #: Network policy's verdicts (None: no policy applies; see `propylon.policy`).
    access: Access | None = None


@dataclass(frozen=True, slots=True)
class ProxyOptions:
    """Data-plane knobs from the helm-style values that apply to every listener."""

    xff_num_trusted_hops: int = 0
    # Every listener reads a PROXY protocol (v1 or v2) header first and takes the client
    # address from it (gatewayAPI.enableProxyProtocol).
    proxy_protocol: bool = False
    # HTTPS listeners offer h2 and http/1.1 by ALPN (gatewayAPI.enableAlpn); without, a
    # TLS client negotiates no application protocol (HTTP/1.1).
    alpn: bool = True
    # Listeners bind these host addresses instead of the Gateway address (hostNetwork).
    bind_all: bool = False
    # Kubernetes: (listener name, node port) of the generated Services; each such listener
    # also binds 0.0.0.0:<node port> on the node (there is no kube-proxy to forward it).
    node_ports: tuple[tuple[str, int], ...] = ()
