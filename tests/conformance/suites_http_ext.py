"""HTTP extended conformance tests (v1.4.1), transcribed from conformance/tests/*.go.

Redirects, rewrites, response/backend header modifiers, method and query-param matching,
named rules, listener isolation and timeouts; the expectations are upstream's. Redirect
comparisons follow conformance/utils/http CompareRoundTrip (see ``client.compare``): an
unset expected host/scheme/path defaults to what was sent or received, and an unset
expected port allows only the scheme's well-known port or no port.
"""

from __future__ import annotations

from typing import Any

from .client import Expect, request
from .harness import Cluster, Failure
from .runner import conformance
from .suites import INFRA, SAME, E, _request_header_modifier_cases, expect_all, routes_ready


def R(
    path: str,
    status: int = 302,
    *,
    host: str = "",
    to_scheme: str | None = None,
    to_host: str | None = None,
    to_port: str | None = None,
    to_path: str | None = None,
) -> Expect:
    """An upstream redirect expectation: the request (UnfollowRedirect) and RedirectRequest."""
    return E(
        path,
        host=host,
        status=status,
        check_redirect=True,
        redirect_scheme=to_scheme,
        redirect_host=to_host,
        redirect_port=to_port,
        redirect_path=to_path,
    )


# --- redirects ----------


@conformance(
    "HTTPRouteRedirectPath",
    ["HTTPRoute", "HTTPRoutePathRedirect"],
    ["httproute-redirect-path.yaml"],
)
def redirect_path(c: Cluster) -> None:
    addr = routes_ready(c, SAME, [(INFRA, "redirect-path")])
    expect_all(
        addr,
        [
            R("/original-prefix/lemon", to_path="/replacement-prefix/lemon"),
            R("/full/path/original", to_path="/full-path-replacement"),
            R("/path-and-host", to_path="/replacement-prefix", to_host="example.org"),
            R("/path-and-status", 301, to_path="/replacement-prefix"),
            R("/full-path-and-host", to_path="/replacement-full", to_host="example.org"),
            R("/full-path-and-status", 301, to_path="/replacement-full"),
        ],
    )


@conformance(
    "HTTPRouteRedirectPort",
    ["HTTPRoute", "HTTPRoutePortRedirect"],
    ["httproute-redirect-port.yaml"],
    fast=True,
)
def redirect_port(c: Cluster) -> None:
    addr = routes_ready(c, SAME, [(INFRA, "redirect-port")])
    expect_all(
        addr,
        [
            R("/port", to_port="8083"),
            R("/port-and-host", to_port="8083", to_host="example.org"),
            R("/port-and-status", 301, to_port="8083"),
            R("/port-and-host-and-status", to_port="8083", to_host="example.org"),
        ],
    )


@conformance(
    "HTTPRouteRedirectScheme",
    ["HTTPRoute", "HTTPRouteSchemeRedirect"],
    ["httproute-redirect-scheme.yaml"],
)
def redirect_scheme(c: Cluster) -> None:
    addr = routes_ready(c, SAME, [(INFRA, "redirect-scheme")])
    expect_all(
        addr,
        [
            R("/scheme", to_scheme="https"),
            R("/scheme-and-host", to_scheme="https", to_host="example.org"),
            R("/scheme-and-status", 301, to_scheme="https"),
            R("/scheme-and-host-and-status", to_scheme="https", to_host="example.org"),
        ],
    )


@conformance(
    "HTTPRouteRedirectPortAndScheme",
    ["HTTPRoute", "HTTPRoutePortRedirect", "GatewayPort8080"],
    ["httproute-redirect-port-and-scheme.yaml"],
)
def redirect_port_and_scheme(c: Cluster) -> None:
    org = "example.org"
    addr80 = routes_ready(c, SAME, [(INFRA, "http-route-for-listener-on-port-80")])
    addr8080 = routes_ready(
        c,
        (INFRA, "same-namespace-with-http-listener-on-8080"),
        [(INFRA, "http-route-for-listener-on-port-8080")],
    )
    addr443 = routes_ready(
        c,
        (INFRA, "same-namespace-with-https-listener"),
        [(INFRA, "http-route-for-listener-on-port-443")],
    )
    expect_all(
        addr80,
        [
            R("/scheme-nil-and-port-nil", to_scheme="http", to_host=org),
            R("/scheme-nil-and-port-80", to_scheme="http", to_host=org),
            R("/scheme-nil-and-port-8080", to_scheme="http", to_port="8080", to_host=org),
            R("/scheme-https-and-port-nil", to_scheme="https", to_host=org),
            R("/scheme-https-and-port-443", to_scheme="https", to_host=org),
            R("/scheme-https-and-port-8443", to_scheme="https", to_port="8443", to_host=org),
        ],
    )
    expect_all(
        addr8080,
        [
            R("/scheme-nil-and-port-nil", to_scheme="http", to_port="8080", to_host=org),
            R("/scheme-nil-and-port-80", to_scheme="http", to_host=org),
            R("/scheme-https-and-port-nil", to_scheme="https", to_host=org),
        ],
    )
    # tls.MakeTLSRequestAndExpectEventuallyConsistentResponse: SNI and Host example.org
    expect_all(
        addr443,
        [
            R("/scheme-nil-and-port-nil", host=org, to_scheme="https", to_host=org),
            R("/scheme-nil-and-port-443", host=org, to_scheme="https", to_host=org),
            R(
                "/scheme-nil-and-port-8443",
                host=org,
                to_scheme="https",
                to_port="8443",
                to_host=org,
            ),
            R("/scheme-http-and-port-nil", host=org, to_scheme="http", to_host=org),
            R("/scheme-http-and-port-80", host=org, to_scheme="http", to_host=org),
            R(
                "/scheme-http-and-port-8080",
                host=org,
                to_scheme="http",
                to_port="8080",
                to_host=org,
            ),
        ],
        scheme="https",
    )


# --- rewrites ----------

_MODIFIED = {
    "X-Header-Add": "header-val-1",
    "X-Header-Add-Append": "append-val-1,header-val-2",
    "X-Header-Set": "set-overwrites-values",
}


@conformance(
    "HTTPRouteRewriteHost",
    ["HTTPRoute", "HTTPRouteHostRewrite"],
    ["httproute-rewrite-host.yaml"],
)
def rewrite_host(c: Cluster) -> None:
    addr = routes_ready(c, SAME, [(INFRA, "rewrite-host")])
    host = "rewrite.example"
    expect_all(
        addr,
        [
            E("/one", "infra-backend-v1", host=host, expected_host="one.example.org"),
            E("/two", "infra-backend-v2", host=host, expected_host="example.org"),
            E(
                "/rewrite-host-and-modify-headers",
                "infra-backend-v2",
                host=host,
                headers={"X-Header-Remove": "remove-val", "X-Header-Add-Append": "append-val-1"},
                expected_host="test.example.org",
                expected_headers=_MODIFIED,
                absent_headers=["X-Header-Remove"],
            ),
        ],
    )


@conformance(
    "HTTPRouteRewritePath",
    ["HTTPRoute", "HTTPRoutePathRewrite"],
    ["httproute-rewrite-path.yaml"],
)
def rewrite_path(c: Cluster) -> None:
    addr = routes_ready(c, SAME, [(INFRA, "rewrite-path")])
    sent = {
        "X-Header-Remove": "remove-val",
        "X-Header-Add-Append": "append-val-1",
        "X-Header-Set": "set-val",
    }
    b = "infra-backend-v1"
    expect_all(
        addr,
        [
            E("/prefix/one/two", b, expected_path="/one/two"),
            E("/strip-prefix/three", b, expected_path="/three"),
            E("/strip-prefix", b, expected_path="/"),
            E("/full/one/two", b, expected_path="/one"),
            E(
                "/full/rewrite-path-and-modify-headers/test",
                b,
                headers=sent,
                expected_path="/test",
                expected_headers=_MODIFIED,
                absent_headers=["X-Header-Remove"],
            ),
            E(
                "/prefix/rewrite-path-and-modify-headers/one",
                b,
                headers=sent,
                expected_path="/prefix/one",
                expected_headers=_MODIFIED,
                absent_headers=["X-Header-Remove"],
            ),
        ],
    )


# --- header modifiers ----------


@conformance(
    "HTTPRouteResponseHeaderModifier",
    ["HTTPRoute", "HTTPRouteResponseHeaderModification"],
    ["httproute-response-header-modifier.yaml"],
    fast=True,
)
def response_header_modifier(c: Cluster) -> None:
    addr = routes_ready(c, SAME, [(INFRA, "response-header-modifier")])
    b = "infra-backend-v1"
    expect_all(
        addr,
        [
            E(
                "/set",
                b,
                backend_set_response_headers={"Some-Other-Header": "val"},
                response_headers={
                    "Some-Other-Header": "val",
                    "X-Header-Set": "set-overwrites-values",
                },
            ),
            E(
                "/set",
                b,
                backend_set_response_headers={
                    "Some-Other-Header": "val",
                    "X-Header-Set": "some-other-value",
                },
                response_headers={
                    "Some-Other-Header": "val",
                    "X-Header-Set": "set-overwrites-values",
                },
            ),
            E(
                "/add",
                b,
                backend_set_response_headers={"Some-Other-Header": "val"},
                response_headers={"Some-Other-Header": "val", "X-Header-Add": "add-appends-values"},
            ),
            E(
                "/add",
                b,
                backend_set_response_headers={
                    "Some-Other-Header": "val",
                    "X-Header-Add": "some-other-value",
                },
                response_headers={
                    "Some-Other-Header": "val",
                    "X-Header-Add": "some-other-value,add-appends-values",
                },
            ),
            E(
                "/remove",
                b,
                backend_set_response_headers={"X-Header-Remove": "val"},
                response_absent_headers=["X-Header-Remove"],
            ),
            E(
                "/multiple",
                b,
                backend_set_response_headers={
                    "X-Header-Set-2": "set-val-2",
                    "X-Header-Add-2": "add-val-2",
                    "X-Header-Remove-2": "remove-val-2",
                    "Another-Header": "another-header-val",
                    "X-Header-Remove-1": "val",
                },
                response_headers={
                    "X-Header-Set-1": "header-set-1",
                    "X-Header-Set-2": "header-set-2",
                    "X-Header-Add-1": "header-add-1",
                    "X-Header-Add-2": "add-val-2,header-add-2",
                    "X-Header-Add-3": "header-add-3",
                    "Another-Header": "another-header-val",
                },
                response_absent_headers=["X-Header-Remove-1", "X-Header-Remove-2"],
            ),
            E(
                "/case-insensitivity",
                b,
                backend_set_response_headers={
                    "x-header-set": "original-val-set",
                    "x-header-add": "original-val-add",
                    "x-header-remove": "original-val-remove",
                    "Another-Header": "another-header-val",
                },
                response_headers={
                    "X-Header-Set": "header-set",
                    "X-Header-Add": "original-val-add,header-add",
                    "X-Lowercase-Add": "lowercase-add",
                    "X-Mixedcase-Add-1": "mixedcase-add-1",
                    "X-Mixedcase-Add-2": "mixedcase-add-2",
                    "X-Uppercase-Add": "uppercase-add",
                    "Another-Header": "another-header-val",
                },
                response_absent_headers=["x-header-remove", "X-Header-Remove"],
            ),
            E(
                "/response-and-request-header-modifiers",
                b,
                headers={
                    "X-Header-Remove": "remove-val",
                    "X-Header-Add-Append": "append-val-1",
                    "X-Header-Echo": "echo",
                },
                backend_set_response_headers={
                    "X-Header-Set-2": "set-val-2",
                    "X-Header-Add-2": "add-val-2",
                    "X-Header-Remove-2": "remove-val-2",
                    "Another-Header": "another-header-val",
                    "X-Header-Remove-1": "remove-val-1",
                    "X-Header-Echo": "echo",
                },
                expected_headers={**_MODIFIED, "X-Header-Echo": "echo"},
                absent_headers=["X-Header-Remove"],
                response_headers={
                    "X-Header-Set-1": "header-set-1",
                    "X-Header-Set-2": "header-set-2",
                    "X-Header-Add-1": "header-add-1",
                    "X-Header-Add-2": "add-val-2,header-add-2",
                    "Another-Header": "another-header-val",
                    "X-Header-Echo": "echo",
                },
                response_absent_headers=["X-Header-Remove-1", "X-Header-Remove-2"],
            ),
        ],
    )


@conformance(
    "HTTPRouteBackendRequestHeaderModifier",
    ["HTTPRoute", "HTTPRouteBackendRequestHeaderModification"],
    ["httproute-request-header-modifier-backend.yaml"],
)
def backend_request_header_modifier(c: Cluster) -> None:
    # upstream reuses HTTPRouteRequestHeaderModifier.Test with filters on the backendRefs
    addr = routes_ready(c, SAME, [(INFRA, "request-header-modifier")])
    expect_all(addr, _request_header_modifier_cases())


@conformance(
    "HTTPRouteRequestHeaderModifierBackendWeights",
    ["HTTPRoute", "HTTPRouteBackendRequestHeaderModification"],
    ["httproute-request-header-modifier-backend-weights.yaml"],
)
def request_header_modifier_backend_weights(c: Cluster) -> None:
    addr = routes_ready(c, SAME, [(INFRA, "request-header-modifier-backend-weights")])
    expected = E("/", ns=INFRA)
    expect_all(addr, [expected])
    for i in range(100):
        res = request(addr, expected)
        if res.status != 200 or res.echo is None:
            raise Failure(f"request {i}: status {res.status}: {res.body[:200]!r}")
        headers: dict[str, Any] = res.echo.get("headers") or {}
        backends = [v for k, vs in headers.items() if k.lower() == "backend" for v in vs]
        if len(backends) != 1:
            raise Failure(f"expected a single 'Backend' header to have been set, got {backends}")
        pod = str(res.echo.get("pod", ""))
        if not pod.startswith(backends[0]):
            raise Failure(f"request {i} went to pod {pod!r}, its Backend header is {backends[0]!r}")


# --- matching ----------


def V(path: str, backend: str, version: str, **kw: Any) -> Expect:
    """A request with a `version` header; with no ExpectedRequest upstream, the backend
    must also have received the request's headers."""
    headers = {"version": version}
    return E(path, backend, headers=headers, expected_headers=headers, **kw)


@conformance(
    "HTTPRouteMethodMatching",
    ["HTTPRoute", "HTTPRouteMethodMatching"],
    ["httproute-method-matching.yaml"],
)
def method_matching(c: Cluster) -> None:
    addr = routes_ready(c, SAME, [(INFRA, "method-matching")])
    v1, v2, v3 = "infra-backend-v1", "infra-backend-v2", "infra-backend-v3"
    expect_all(
        addr,
        [
            E("/", v1, method="POST"),
            E("/", v2, method="GET"),
            E("/", method="HEAD", status=404),
            E("/path1", v1, method="GET"),
            V("/", v2, "one", method="PUT"),
            V("/path2", v3, "two", method="POST"),
            E("/path3", v1, method="PATCH"),
            V("/path4", v1, "three", method="DELETE"),
            E("/", method="PUT", status=404),
            E("/path4", method="DELETE", status=404),
            E("/path5", v1, method="PATCH"),
            V("/", v2, "four", method="PATCH"),
        ],
    )


@conformance(
    "HTTPRouteQueryParamMatching",
    ["HTTPRoute", "HTTPRouteQueryParamMatching"],
    ["httproute-query-param-matching.yaml"],
)
def query_param_matching(c: Cluster) -> None:
    addr = routes_ready(c, SAME, [(INFRA, "query-param-matching")])
    v1, v2, v3 = "infra-backend-v1", "infra-backend-v2", "infra-backend-v3"
    expect_all(
        addr,
        [
            E("/?animal=whale", v1),
            E("/?animal=dolphin", v2),
            E("/?animal=dolphin&color=blue", v3),
            E("/?ANIMAL=Whale", v3),
            E("/?animal=whale&otherparam=irrelevant", v1),
            E("/?animal=dolphin&color=yellow", v2),
            E("/?color=blue", status=404),
            E("/?animal=dog", status=404),
            E("/?animal=whaledolphin", status=404),
            E("/", status=404),
            E("/path1?animal=whale", v1),
            V("/?animal=whale", v2, "one"),
            V("/path2?animal=whale", v3, "two"),
            E("/path3?animal=shark", v1),
            V("/path4?animal=kraken", v1, "three"),
            E("/?animal=shark", status=404),
            E("/path4?animal=kraken", status=404),
            E("/path5?animal=hydra", v1),
            V("/?animal=hydra", v3, "four"),
        ],
    )


@conformance(
    "HTTPRouteNamedRule",
    ["HTTPRoute", "HTTPRouteNamedRouteRule"],
    ["httproute-named-rule.yaml"],
    provisional=True,
)
def named_rule(c: Cluster) -> None:
    addr = routes_ready(c, SAME, [(INFRA, "http-named-rules")])
    expect_all(addr, [E("/named", ns=INFRA), E("/unnamed", ns=INFRA)])


# --- listener isolation ----------


# the listeners (empty hostname, *.example.com, *.foo.example.com, abc.foo.example.com)
_ISOLATION_LISTENERS = (
    "empty-hostname",
    "wildcard-example-com",
    "wildcard-foo-example-com",
    "abc-foo-example-com",
)


def _isolation_cases() -> list[Expect]:
    paths = [f"/{n}" for n in _ISOLATION_LISTENERS]
    hosts = ("bar.com", "bar.example.com", "bar.foo.example.com", "abc.foo.example.com")
    # each host reaches only the routes of its most specific listener
    return [
        E(path, "infra-backend-v1", host=host) if i == j else E(path, host=host, status=404)
        for i, host in enumerate(hosts)
        for j, path in enumerate(paths)
    ]


@conformance(
    "GatewayHTTPListenerIsolation",
    ["GatewayHTTPListenerIsolation", "HTTPRoute"],
    [
        "gateway-http-listener-isolation.yaml",
        "gateway-http-listener-isolation-with-hostname-intersection.yaml",
    ],
)
def http_listener_isolation(c: Cluster) -> None:
    for gw, suffix in (
        ("http-listener-isolation", ""),  # hostnames are configured only in listeners
        # intersecting hostnames are configured in listeners and HTTPRoutes
        ("http-listener-isolation-with-hostname-intersection", "-with-hostname-intersection"),
    ):
        routes = [(INFRA, f"attaches-to-{n}{suffix}") for n in _ISOLATION_LISTENERS]
        addr = routes_ready(c, (INFRA, gw), routes)
        expect_all(addr, _isolation_cases())


# --- timeouts ----------


@conformance(
    "HTTPRouteTimeoutRequest",
    ["HTTPRoute", "HTTPRouteRequestTimeout"],
    ["httproute-timeout-request.yaml"],
)
def timeout_request(c: Cluster) -> None:
    addr = routes_ready(c, SAME, [(INFRA, "request-timeout")])
    expect_all(
        addr,
        [
            E("/request-timeout", ns=INFRA),
            E("/request-timeout?delay=1s", ns=INFRA, status=504),
            E("/disable-request-timeout?delay=1s", ns=INFRA),
        ],
    )


@conformance(
    "HTTPRouteTimeoutBackendRequest",
    ["HTTPRoute", "HTTPRouteBackendTimeout"],
    ["httproute-timeout-backend-request.yaml"],
)
def timeout_backend_request(c: Cluster) -> None:
    addr = routes_ready(c, SAME, [(INFRA, "backend-request-timeout")])
    expect_all(
        addr,
        [
            E("/backend-timeout", ns=INFRA),
            E("/backend-timeout?delay=1s", ns=INFRA, status=504),
            E("/disable-backend-timeout?delay=1s", ns=INFRA),
        ],
    )
