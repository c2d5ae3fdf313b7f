"""The v1.4.1 conformance tests, transcribed from conformance/tests/*.go (expectations only).

Each function is one upstream ConformanceTest (same ShortName, features and manifests);
the expectations (requests, backends, status conditions and reasons) are upstream's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import checks
from .client import Expect, eventually
from .harness import Cluster
from .runner import conformance

INFRA = "gateway-conformance-infra"
APP = "gateway-conformance-app-backend"
WEB = "gateway-conformance-web-backend"
SAME = (INFRA, "same-namespace")


def E(path: str = "/", backend: str = "", *, ns: str | None = None, **kw: Any) -> Expect:
    """An upstream ExpectedResponse; namespace defaults to the infra namespace with a backend."""
    status = kw.pop("status", None)
    if status is not None:
        kw["status"] = (status,) if isinstance(status, int) else tuple(status)
    return Expect(
        path=path,
        backend=backend,
        namespace=ns if ns is not None else (INFRA if backend else ""),
        **kw,
    )


def routes_ready(
    c: Cluster,
    gw: tuple[str, str],
    routes: Sequence[tuple[str, str]],
    *,
    listeners: Sequence[str] = (),
) -> str:
    addr = checks.gateway_and_routes_accepted(c, gw, routes, listeners=listeners)
    for route in routes:
        checks.route_resolved_refs_true(c, route, gw)
    return addr


def expect_all(addr: str, cases: Sequence[Expect], scheme: str = "http") -> None:
    for case in cases:
        eventually(addr, case, scheme=scheme)


# --- HTTP core: traffic ----------


@conformance(
    "HTTPRouteSimpleSameNamespace",
    ["HTTPRoute"],
    ["httproute-simple-same-namespace.yaml"],
    fast=True,
)
def simple_same_namespace(c: Cluster) -> None:
    addr = routes_ready(c, SAME, [(INFRA, "gateway-conformance-infra-test")])
    expect_all(addr, [E("/", "infra-backend-v1")])


@conformance(
    "HTTPRouteExactPathMatching", ["HTTPRoute"], ["httproute-exact-path-matching.yaml"], fast=True
)
def exact_path_matching(c: Cluster) -> None:
    addr = routes_ready(c, SAME, [(INFRA, "exact-matching")])
    expect_all(
        addr,
        [
            E("/one", "infra-backend-v1"),
            E("/two", "infra-backend-v2"),
            E("/", status=404),
            E("/one/example", status=404),
            E("/two/", status=404),
            E("/Two", status=404),
        ],
    )


@conformance("HTTPRouteMatching", ["HTTPRoute"], ["httproute-matching.yaml"])
def matching(c: Cluster) -> None:
    addr = routes_ready(c, SAME, [(INFRA, "matching")])
    expect_all(
        addr,
        [
            E("/", "infra-backend-v1"),
            E("/example", "infra-backend-v1"),
            E("/", "infra-backend-v1", headers={"Version": "one"}),
            E("/v2", "infra-backend-v2"),
            E("/v2/example", "infra-backend-v2"),
            E("/", "infra-backend-v2", headers={"Version": "two"}),
            E("/v2/", "infra-backend-v2"),
            E("/v2example", "infra-backend-v1"),
            E("/foo/v2/example", "infra-backend-v1"),
        ],
    )


@conformance(
    "HTTPRouteHeaderMatching", ["HTTPRoute"], ["httproute-header-matching.yaml"], fast=True
)
def header_matching(c: Cluster) -> None:
    addr = routes_ready(c, SAME, [(INFRA, "header-matching")])
    expect_all(
        addr,
        [
            E("/", "infra-backend-v1", headers={"Version": "one"}),
            E("/", "infra-backend-v2", headers={"Version": "two"}),
            E("/", "infra-backend-v1", headers={"Version": "two", "Color": "orange"}),
            E("/", "infra-backend-v2", headers={"Version": "two", "Color": "blue"}),
            E("/", headers={"Color": "orange"}, status=404),
            E("/", headers={"Some-Other-Header": "one"}, status=404),
            E("/", "infra-backend-v1", headers={"Color": "blue"}),
            E("/", "infra-backend-v1", headers={"Color": "green"}),
            E("/", "infra-backend-v2", headers={"Color": "red"}),
            E("/", "infra-backend-v2", headers={"Color": "yellow"}),
            E("/", headers={"Color": "purple"}, status=404),
        ],
    )


@conformance("HTTPRouteCrossNamespace", ["HTTPRoute"], ["httproute-cross-namespace.yaml"])
def cross_namespace(c: Cluster) -> None:
    addr = routes_ready(c, (INFRA, "backend-namespaces"), [(WEB, "cross-namespace")])
    expect_all(addr, [E("/", "web-backend", ns=WEB)])


@conformance("HTTPRoutePathMatchOrder", ["HTTPRoute"], ["httproute-path-match-order.yaml"])
def path_match_order(c: Cluster) -> None:
    addr = routes_ready(c, SAME, [(INFRA, "path-matching-order")])
    expect_all(
        addr,
        [
            E("/match/exact/one", "infra-backend-v3"),
            E("/match/exact", "infra-backend-v2"),
            E("/match", "infra-backend-v1"),
            E("/match/prefix/one/any", "infra-backend-v2"),
            E("/match/prefix/any", "infra-backend-v1"),
            E("/match/any", "infra-backend-v3"),
        ],
    )


@conformance(
    "HTTPRouteMatchingAcrossRoutes", ["HTTPRoute"], ["httproute-matching-across-routes.yaml"]
)
def matching_across_routes(c: Cluster) -> None:
    addr = routes_ready(c, SAME, [(INFRA, "matching-part1"), (INFRA, "matching-part2")])
    expect_all(
        addr,
        [
            E("/", "infra-backend-v1", host="example.com"),
            E("/example", "infra-backend-v1", host="example.com"),
            E("/example", "infra-backend-v1", host="example.net"),
            E("/example", "infra-backend-v1", host="example.com", headers={"Version": "one"}),
            E("/v2", "infra-backend-v2", host="example.com"),
            E("/v2", "infra-backend-v1", host="example.net"),
            E("/v2/example", "infra-backend-v2", host="example.com"),
            E("/", "infra-backend-v2", host="example.com", headers={"Version": "two"}),
        ],
    )


@conformance(
    "HTTPRouteListenerHostnameMatching",
    ["HTTPRoute"],
    ["httproute-listener-hostname-matching.yaml"],
)
def listener_hostname_matching(c: Cluster) -> None:
    gw = (INFRA, "httproute-listener-hostname-matching")
    routes_ready(c, gw, [(INFRA, "backend-v1")], listeners=["listener-1"])
    routes_ready(c, gw, [(INFRA, "backend-v2")], listeners=["listener-2"])
    addr = routes_ready(c, gw, [(INFRA, "backend-v3")], listeners=["listener-3", "listener-4"])
    expect_all(
        addr,
        [
            E("/", "infra-backend-v1", host="bar.com"),
            E("/", "infra-backend-v2", host="foo.bar.com"),
            E("/", "infra-backend-v3", host="baz.bar.com"),
            E("/", "infra-backend-v3", host="boo.bar.com"),
            E("/", "infra-backend-v3", host="multiple.prefixes.bar.com"),
            E("/", "infra-backend-v3", host="multiple.prefixes.foo.com"),
            E("/", host="foo.com", status=404),
            E("/", host="no.matching.host", status=404),
        ],
    )


def _request_header_modifier_cases() -> list[Expect]:
    b = "infra-backend-v1"
    return [
        E(
            "/set",
            b,
            headers={"Some-Other-Header": "val"},
            expected_headers={"Some-Other-Header": "val", "X-Header-Set": "set-overwrites-values"},
        ),
        E(
            "/set",
            b,
            headers={"Some-Other-Header": "val", "X-Header-Set": "some-other-value"},
            expected_headers={"Some-Other-Header": "val", "X-Header-Set": "set-overwrites-values"},
        ),
        E(
            "/add",
            b,
            headers={"Some-Other-Header": "val"},
            expected_headers={"Some-Other-Header": "val", "X-Header-Add": "add-appends-values"},
        ),
        E(
            "/add",
            b,
            headers={"Some-Other-Header": "val", "X-Header-Add": "some-other-value"},
            expected_headers={
                "Some-Other-Header": "val",
                "X-Header-Add": "some-other-value,add-appends-values",
            },
        ),
        E(
            "/remove",
            b,
            headers={"X-Header-Remove": "val"},
            expected_headers={},
            absent_headers=["X-Header-Remove"],
        ),
        E(
            "/multiple",
            b,
            headers={
                "X-Header-Set-2": "set-val-2",
                "X-Header-Add-2": "add-val-2",
                "X-Header-Remove-2": "remove-val-2",
                "Another-Header": "another-header-val",
            },
            expected_headers={
                "X-Header-Set-1": "header-set-1",
                "X-Header-Set-2": "header-set-2",
                "X-Header-Add-1": "header-add-1",
                "X-Header-Add-2": "add-val-2,header-add-2",
                "X-Header-Add-3": "header-add-3",
                "Another-Header": "another-header-val",
            },
            absent_headers=["X-Header-Remove-1", "X-Header-Remove-2"],
        ),
        E(
            "/case-insensitivity",
            b,
            headers={
                "x-header-set": "original-val-set",
                "x-header-add": "original-val-add",
                "x-header-remove": "original-val-remove",
                "Another-Header": "another-header-val",
            },
            expected_headers={
                "X-Header-Set": "header-set",
                "X-Header-Add": "original-val-add,header-add",
                "Another-Header": "another-header-val",
            },
            absent_headers=["x-header-remove", "X-Header-Remove"],
        ),
    ]


@conformance(
    "HTTPRouteRequestHeaderModifier",
    ["HTTPRoute"],
    ["httproute-request-header-modifier.yaml"],
    fast=True,
)
def request_header_modifier(c: Cluster) -> None:
    addr = routes_ready(c, SAME, [(INFRA, "request-header-modifier")])
    expect_all(addr, _request_header_modifier_cases())


@conformance(
    "HTTPRouteRedirectHostAndStatus", ["HTTPRoute"], ["httproute-redirect-host-and-status.yaml"]
)
def redirect_host_and_status(c: Cluster) -> None:
    addr = routes_ready(c, SAME, [(INFRA, "redirect-host-and-status")])
    expect_all(
        addr,
        [
            E("/hostname-redirect", status=302, check_redirect=True, redirect_host="example.org"),
            E("/host-and-status", status=301, check_redirect=True, redirect_host="example.org"),
        ],
    )


# --- HTTP core: invalid references ----------


def _invalid_backend(c: Cluster, route: str, reason: str, path: str, status: int = 500) -> None:
    rnn = (INFRA, route)
    addr = checks.gateway_and_routes_accepted(c, SAME, [rnn])
    checks.route_condition(c, rnn, SAME, "ResolvedRefs", "False", reason)
    expect_all(addr, [E(path, status=status)])


@conformance(
    "HTTPRouteInvalidBackendRefUnknownKind",
    ["HTTPRoute"],
    ["httproute-invalid-backendref-unknown-kind.yaml"],
)
def invalid_backendref_unknown_kind(c: Cluster) -> None:
    _invalid_backend(c, "invalid-backend-ref-unknown-kind", "InvalidKind", "/v2")


@conformance(
    "HTTPRouteInvalidCrossNamespaceBackendRef",
    ["HTTPRoute", "ReferenceGrant"],
    ["httproute-invalid-cross-namespace-backend-ref.yaml"],
)
def invalid_cross_namespace_backend_ref(c: Cluster) -> None:
    _invalid_backend(c, "invalid-cross-namespace-backend-ref", "RefNotPermitted", "/")


@conformance(
    "HTTPRouteInvalidNonExistentBackendRef",
    ["HTTPRoute"],
    ["httproute-invalid-nonexistent-backendref.yaml"],
    fast=True,
)
def invalid_nonexistent_backendref(c: Cluster) -> None:
    _invalid_backend(c, "invalid-nonexistent-backend-ref", "BackendNotFound", "/")


@conformance(
    "HTTPRouteInvalidReferenceGrant",
    ["HTTPRoute", "ReferenceGrant"],
    ["httproute-invalid-reference-grant.yaml"],
)
def invalid_reference_grant(c: Cluster) -> None:
    _invalid_backend(c, "reference-grant", "RefNotPermitted", "/")


@conformance(
    "HTTPRoutePartiallyInvalidViaInvalidReferenceGrant",
    ["HTTPRoute", "ReferenceGrant"],
    ["httproute-partially-invalid-via-invalid-reference-grant.yaml"],
)
def partially_invalid_reference_grant(c: Cluster) -> None:
    rnn = (INFRA, "invalid-reference-grant")
    addr = checks.gateway_and_routes_accepted(c, SAME, [rnn])
    checks.route_condition(c, rnn, SAME, "ResolvedRefs", "False", "RefNotPermitted")
    expect_all(addr, [E("/v2", status=500), E("/", "app-backend-v1", ns=APP)])


@conformance(
    "HTTPRouteReferenceGrant",
    ["HTTPRoute", "ReferenceGrant"],
    ["httproute-reference-grant.yaml"],
    fast=True,
)
def reference_grant(c: Cluster) -> None:
    addr = routes_ready(c, SAME, [(INFRA, "reference-grant")])
    expect_all(addr, [E("/", "web-backend", ns=WEB)])
    # delete the ReferenceGrant: the edit a user would make to the watched file
    docs = [d for d in c.applied("httproute-reference-grant") if d["kind"] != "ReferenceGrant"]
    c.apply("httproute-reference-grant", docs)
    expect_all(addr, [E("/", status=500)])


@conformance(
    "HTTPRouteInvalidCrossNamespaceParentRef",
    ["HTTPRoute"],
    ["httproute-invalid-cross-namespace-parent-ref.yaml"],
)
def invalid_cross_namespace_parent_ref(c: Cluster) -> None:
    rnn = (WEB, "invalid-cross-namespace-parent-ref")
    checks.route_resolved_refs_true(c, rnn, SAME)
    checks.route_condition(c, rnn, SAME, "Accepted", "False", "NotAllowedByListeners")
    checks.route_no_accepted_parents(c, rnn)
    checks.gateway_zero_routes(c, SAME)


@conformance(
    "HTTPRouteInvalidParentRefNotMatchingSectionName",
    ["HTTPRoute"],
    ["httproute-invalid-parentref-not-matching-section-name.yaml"],
)
def invalid_parentref_section_name(c: Cluster) -> None:
    rnn = (INFRA, "httproute-listener-not-matching-section-name")
    checks.route_condition(c, rnn, SAME, "Accepted", "False", "NoMatchingParent")
    checks.route_no_accepted_parents(c, rnn)
    checks.gateway_zero_routes(c, SAME)


# --- weights ----------


def backend_name(pod: str) -> str:
    """extractBackendName: the pod name without its ReplicaSet hash and suffix."""
    parts = pod.split("-")
    return "-".join(parts[:-2]) if len(parts) > 2 else pod


def weighted_distribution(send: Any, weights: dict[str, float], attempts: int = 3) -> None:
    """TestWeightedDistribution: 500 requests, 10 at a time, each backend within +-5 points."""
    from concurrent.futures import ThreadPoolExecutor

    problems: list[str] = []
    for _ in range(attempts):
        with ThreadPoolExecutor(10) as pool:
            pods = list(pool.map(lambda _i: send(), range(500)))
        seen: dict[str, int] = {}
        problems = []
        for pod in pods:
            name = backend_name(pod)
            if name not in weights:
                problems.append(f"unexpected pod {pod!r}")
                break
            seen[name] = seen.get(name, 0) + 1
        active = sum(1 for w in weights.values() if w > 0)
        if len(seen) != active:
            problems.append(f"expected {active} backends to receive traffic, got {seen}")
        for want, pct in weights.items():
            got = seen.get(want, 0) / 500
            if abs(got - pct) > 0.05:
                problems.append(f"backend {want} got {got:.3f}, want {pct} +-0.05")
        if not problems:
            return
    raise AssertionError("; ".join(problems))


@conformance("HTTPRouteWeight", ["HTTPRoute"], ["httproute-weight.yaml"], fast=True)
def http_weight(c: Cluster) -> None:
    import random

    from .client import compare, request

    addr = routes_ready(c, SAME, [(INFRA, "weighted-backends")])
    expected = E("/", ns=INFRA)
    eventually(addr, expected)

    def send() -> str:
        e = E("/", ns=INFRA, headers={"X-Jitter": str(random.randint(0, 1 << 30))})
        res = request(addr, e)
        problem = compare(addr, "http", e, res)
        if problem:
            raise AssertionError(problem)
        assert res.echo is not None
        return str(res.echo["pod"])

    weighted_distribution(
        send, {"infra-backend-v1": 0.7, "infra-backend-v2": 0.3, "infra-backend-v3": 0.0}
    )


# --- Gateway status: certificate references ----------

_HTTPROUTE_KIND = [("gateway.networking.k8s.io", "HTTPRoute")]


def _https_listener(c: Cluster, gw: str, conditions: list[tuple[str, str, str]]) -> None:
    checks.gateway_listeners(
        c,
        (INFRA, gw),
        [
            {
                "name": "https",
                "supportedKinds": _HTTPROUTE_KIND,
                "attachedRoutes": 0,
                "conditions": conditions,
            }
        ],
    )


@conformance(
    "GatewaySecretMissingReferenceGrant",
    ["ReferenceGrant"],
    ["gateway-secret-missing-reference-grant.yaml"],
)
def secret_missing_reference_grant(c: Cluster) -> None:
    _https_listener(
        c, "gateway-secret-missing-reference-grant", [("ResolvedRefs", "False", "RefNotPermitted")]
    )


@conformance(
    "GatewaySecretInvalidReferenceGrant",
    ["ReferenceGrant"],
    ["gateway-secret-invalid-reference-grant.yaml"],
)
def secret_invalid_reference_grant(c: Cluster) -> None:
    _https_listener(
        c, "gateway-secret-invalid-reference-grant", [("ResolvedRefs", "False", "RefNotPermitted")]
    )


_PROGRAMMED = [("Programmed", "True", "Programmed"), ("ResolvedRefs", "True", "ResolvedRefs")]


@conformance(
    "GatewaySecretReferenceGrantAllInNamespace",
    ["ReferenceGrant"],
    ["gateway-secret-reference-grant-all-in-namespace.yaml"],
    fast=True,
)
def secret_reference_grant_all(c: Cluster) -> None:
    _https_listener(c, "gateway-secret-reference-grant-all-in-namespace", _PROGRAMMED)


@conformance(
    "GatewaySecretReferenceGrantSpecific",
    ["ReferenceGrant"],
    ["gateway-secret-reference-grant-specific.yaml"],
)
def secret_reference_grant_specific(c: Cluster) -> None:
    _https_listener(c, "gateway-secret-reference-grant-specific", _PROGRAMMED)


# --- GRPC ----------


def grpc_call(
    addr: str, method: str, authority: str = "", metadata: dict[str, str] | None = None
) -> tuple[str, Any]:
    """(status code name, EchoResponse or None)."""
    import grpc

    from propylon.demo.echo import grpcecho

    options = [("grpc.default_authority", authority)] if authority else []
    with grpc.insecure_channel(addr, options=options) as channel:
        call = channel.unary_unary(
            grpcecho.method_path(method),
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=grpcecho.parse_response,
        )
        try:
            response = call(
                grpcecho.EchoRequest(), timeout=10, metadata=tuple((metadata or {}).items())
            )
        except grpc.RpcError as exc:
            return exc.code().name, None  # type: ignore[attr-defined]
        return "OK", response


def grpc_eventually(
    addr: str,
    method: str,
    *,
    backend: str = "",
    code: str = "OK",
    authority: str = "",
    metadata: dict[str, str] | None = None,
) -> None:
    from .client import await_convergence

    def check() -> str | None:
        got, response = grpc_call(addr, method, authority, metadata)
        if got != code:
            return f"expected {code}, got {got}"
        if response is not None:
            ctx = response.assertions.context
            if backend and ctx.namespace != INFRA:
                return f"namespace {ctx.namespace}"
            if not ctx.pod.startswith(backend):
                return f"expected pod {backend}*, got {ctx.pod}"
        return None

    await_convergence(check, what=f"{method} {authority} {metadata} -> {backend or code}")


@conformance(
    "GRPCExactMethodMatching", ["GRPCRoute"], ["grpcroute-exact-method-matching.yaml"], fast=True
)
def grpc_exact_method(c: Cluster) -> None:
    addr = checks.gateway_and_routes_accepted(
        c, SAME, [(INFRA, "exact-matching")], kind="GRPCRoute"
    )
    grpc_eventually(addr, "Echo", backend="grpc-infra-backend-v1")
    grpc_eventually(addr, "EchoTwo", backend="grpc-infra-backend-v2")
    grpc_eventually(addr, "EchoThree", code="UNIMPLEMENTED")


# --- TLS ----------


@conformance(
    "TLSRouteSimpleSameNamespace", ["TLSRoute"], ["tlsroute-simple-same-namespace.yaml"], fast=True
)
def tlsroute_simple(c: Cluster) -> None:
    import ssl
    import tempfile

    from .client import compare, request

    gw = (INFRA, "gateway-tlsroute")
    addr = checks.gateway_and_routes_accepted(
        c, gw, [(INFRA, "gateway-conformance-infra-test")], kind="TLSRoute"
    )
    route = c.must_get("TLSRoute", INFRA, "gateway-conformance-infra-test")
    hostnames = route["spec"].get("hostnames") or []
    assert len(hostnames) == 1, f"found {len(hostnames)} hostnames"
    host = hostnames[0]
    assert c.certs is not None
    cert, _key = c.certs.pem[(INFRA, "tls-checks-certificate")]
    with tempfile.NamedTemporaryFile("wb", suffix=".pem") as ca:
        ca.write(c.certs.ca.cert_pem)
        ca.flush()
        e = E("/", "tls-backend", host=host, sni=host)
        from .client import await_convergence

        await_convergence(
            lambda: compare(addr, "https", e, request(addr, e, scheme="https")),
            what="TLS passthrough to tls-backend",
        )
    del ssl, cert


@conformance(
    "TLSRouteInvalidReferenceGrant",
    ["TLSRoute", "ReferenceGrant"],
    ["tlsroute-invalid-reference-grant.yaml"],
)
def tlsroute_invalid_reference_grant(c: Cluster) -> None:
    gw = (INFRA, "gateway-tlsroute-referencegrant")
    rnn = (INFRA, "gateway-conformance-infra-test")
    checks.gateway_and_routes_accepted(c, gw, [rnn], kind="TLSRoute")
    checks.route_condition(c, rnn, gw, "ResolvedRefs", "False", "RefNotPermitted", kind="TLSRoute")
