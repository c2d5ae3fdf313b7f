"""Behaviour of build() beyond the golden cases: precedence, filters, GRPC matches,
hostNetwork ports, address stability and robustness."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]

from propylon.envoy import translate
from propylon.gatewayapi import Inputs, build
from propylon.model import DirectResponse, Forward, PathMatchType, ProxyOptions, Redirect
from propylon.resources import ObjectKey, Resource, parse_object
from propylon.values import Values

BASE = """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: cilium}
spec: {controllerName: io.cilium/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: cilium
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: v1
kind: Service
metadata: {name: svc}
spec: {ports: [{port: 8080}]}
"""


def objects(text: str) -> dict[ObjectKey, Resource]:
    out = {}
    for doc in yaml.safe_load_all(BASE + "---\n" + text):
        if doc:
            obj = parse_object(doc)
            out[obj.key] = obj
    return out


def run(text: str, **kw: Any) -> Any:
    return build(Inputs(objects=objects(text), default_pool=("127.10.0.0/16",), **kw))


def routes_of(result: Any) -> list[Any]:
    (listener,) = result.model.listeners
    (vhost,) = listener.http
    return list(vhost.routes)


def test_precedence() -> None:
    result = run(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b-newer, creationTimestamp: "2024-02-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches:
    - path: {type: PathPrefix, value: /}
    - path: {type: PathPrefix, value: /api}
    - path: {type: PathPrefix, value: /api}
      headers: [{name: x, value: "1"}]
    - path: {type: PathPrefix, value: /api}
      method: GET
    - path: {type: RegularExpression, value: "/re/.*"}
    backendRefs: [{name: svc, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a-older, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches:
    - path: {type: Exact, value: /api}
    - path: {type: PathPrefix, value: /api}
    backendRefs: [{name: svc, port: 8080}]
"""
    )
    names = [r.name.split("/", 2)[2] for r in routes_of(result)]
    assert names == [
        "a-older/rule/0/match/0",  # Exact
        "b-newer/rule/0/match/3",  # /api + method
        "b-newer/rule/0/match/2",  # /api + header
        "a-older/rule/0/match/1",  # /api, older route wins the tie
        "b-newer/rule/0/match/1",
        "b-newer/rule/0/match/0",  # / (shorter prefix)
        "b-newer/rule/0/match/4",  # regex last
    ]


def test_filters_and_timeouts() -> None:
    result = run(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /redirect}}]
    filters:
    - type: RequestRedirect
      requestRedirect:
        scheme: https
        statusCode: 301
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}
  - matches: [{path: {type: PathPrefix, value: /app}}]
    timeouts: {request: 1h2m, backendRequest: 500ms}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-A, value: a}]
        add: [{name: X-B, value: b}]
        remove: [X-C]
    - type: RequestMirror
      requestMirror: {backendRef: {name: svc, port: 8080}, percent: 25}
    - type: RequestMirror
      requestMirror: {backendRef: {name: svc, port: 8080}, fraction: {numerator: 1, denominator: 3}}
    - type: CORS
      cors: {allowOrigins: ["https://*.example.com"], allowMethods: [GET], allowCredentials: true}
    - type: URLRewrite
      urlRewrite: {hostname: backend.internal, path: {type: ReplaceFullPath, replaceFullPath: /x}}
    backendRefs:
    - name: svc
      port: 8080
      filters:
      - type: ResponseHeaderModifier
        responseHeaderModifier: {set: [{name: X-From, value: svc}]}
  - matches: [{path: {type: PathPrefix, value: /nothing}}]
"""
    )
    by_prefix = {r.match.path.value: r for r in routes_of(result)}
    redirect = by_prefix["/redirect"].action
    assert (
        isinstance(redirect, Redirect)
        and redirect.status_code == 301
        and redirect.scheme == "https"
    )
    app = by_prefix["/app"]
    assert app.timeout_ms == 3_720_000 and app.backend_timeout_ms == 500
    assert app.request_headers is not None and app.request_headers.remove == ("X-C",)
    assert [(m.numerator, m.denominator) for m in app.mirrors] == [(25, 100), (1, 3)]
    assert app.cors is not None and app.cors.allow_credentials and app.cors.max_age_seconds == 5
    assert app.rewrite is not None and app.rewrite.hostname == "backend.internal"
    assert isinstance(app.action, Forward)
    assert app.action.backends[0].response_headers is not None
    assert by_prefix["/nothing"].action == DirectResponse(500)


def test_grpc_method_matches() -> None:
    result = run(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches:
    - method: {service: a.v1.S, method: M}
    - method: {service: a.v1.S}
    - method: {method: M}
    - method: {type: RegularExpression, service: "a\\\\..*"}
    - headers: [{name: version, value: "2"}]
    backendRefs: [{name: svc, port: 8080}]
"""
    )
    got = {(r.match.path.type, r.match.path.value) for r in routes_of(result)}
    assert got == {
        (PathMatchType.EXACT, "/a.v1.S/M"),
        (PathMatchType.PREFIX, "/a.v1.S/"),
        (PathMatchType.REGEX, "/[^/]+/M"),
        (PathMatchType.REGEX, "/(?:a\\..*)/[^/]+"),
        (PathMatchType.PREFIX, "/"),
    }
    assert all(r.match.grpc for r in routes_of(result))
    assert result.model.clusters[0].protocol.value == "kubernetes.io/h2c"


def test_host_network_privileged_port() -> None:
    values = Values.model_validate({"gatewayAPI": {"hostNetwork": {"enabled": True}}})
    result = run("", values=values)
    status = result.statuses[ObjectKey("Gateway", "default", "gw")]
    cond = status["listeners"][0]["conditions"][0]
    assert (cond["status"], cond["reason"]) == ("False", "PortUnavailable")
    allowed = Values.model_validate(
        {
            "gatewayAPI": {"hostNetwork": {"enabled": True}},
            "envoy": {
                "securityContext": {
                    "capabilities": {"keepCapNetBindService": True, "envoy": ["NET_BIND_SERVICE"]}
                }
            },
        }
    )
    status = run("", values=allowed).statuses[ObjectKey("Gateway", "default", "gw")]
    assert status["listeners"][0]["conditions"][0]["status"] == "True"


def test_previous_address_is_kept() -> None:
    key = ObjectKey("Gateway", "default", "gw")
    assert run("").addresses[key] == "127.10.0.1"
    assert run("", previous_addresses={key: "127.10.3.4"}).addresses[key] == "127.10.3.4"
    # An address outside the pool is not kept.
    assert run("", previous_addresses={key: "10.0.0.1"}).addresses[key] == "127.10.0.1"


def test_an_agent_serves_only_the_address_the_operator_assigned() -> None:
    """A Kubernetes node agent builds with assign_addresses=False: it keeps the address
    the Gateway's status holds and picks none itself (agents and the operator choosing
    differently made listeners swap addresses, which Envoy rejects)."""
    key = ObjectKey("Gateway", "default", "gw")
    kept = run("", previous_addresses={key: "127.10.3.4"}, assign_addresses=False)
    assert kept.addresses[key] == "127.10.3.4"
    assert [listener.address for listener in kept.model.listeners] == ["127.10.3.4"]
    waiting = run("", assign_addresses=False)
    assert key not in waiting.addresses
    assert waiting.model.listeners == ()
    programmed = next(c for c in waiting.statuses[key]["conditions"] if c["type"] == "Programmed")
    assert (programmed["status"], programmed["reason"]) == ("False", "AddressNotAssigned")


def test_same_input_same_output() -> None:
    text = BASE
    a = build(Inputs(objects=objects(""), default_pool=("127.10.0.0/16",)))
    b = build(
        Inputs(objects=dict(reversed(list(objects("").items()))), default_pool=("127.10.0.0/16",))
    )
    assert a == b and text


def test_generated_service_name_of_a_long_gateway_name_is_a_dns_label() -> None:
    # The conformance suite's gateway-with-two-listeners-and-one-attached-route: the API
    # server refuses a Service name over 63 characters.
    long_names = [
        "gateway-with-two-listeners-and-one-attached-route",
        "gateway-with-two-listeners-and-one-attached-route-2",
    ]
    gateways = "".join(
        f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}}}
spec:
  gatewayClassName: cilium
  listeners: [{{name: http, port: 80, protocol: HTTP}}]
"""
        for name in long_names
    )
    names = {svc.metadata.name for svc in run(gateways).services}
    assert "cilium-gateway-gw" in names  # short names are unchanged
    long = sorted(names - {"cilium-gateway-gw"})
    assert len(long) == 2  # two Gateways with the same head keep distinct Services
    for name in long:
        assert len(name) <= 63
        assert name.startswith("cilium-gateway-gateway-with-two-listeners-and-one")
    assert {svc.metadata.name for svc in run(gateways).services} == names  # stable


@pytest.mark.parametrize(
    ("code", "envoy"),
    [
        (301, None),
        (302, "FOUND"),
        (303, "SEE_OTHER"),
        (307, "TEMPORARY_REDIRECT"),
        (308, "PERMANENT_REDIRECT"),
    ],
)
def test_every_redirect_status_code_of_the_api_reaches_envoy(code: int, envoy: str | None) -> None:
    # Gateway API v1.5 added 303, 307 and 308; a route with them was dropped as invalid
    # (no status at all: conformance HTTPRoute303Redirect, 307, 308).
    result = run(
        f"""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: redirect}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - filters:
    - type: RequestRedirect
      requestRedirect: {{statusCode: {code}}}
"""
    )
    route_status = result.statuses[ObjectKey("HTTPRoute", "default", "redirect")]
    assert route_status["parents"][0]["conditions"][0]["status"] == "True"
    (route,) = routes_of(result)
    assert isinstance(route.action, Redirect) and route.action.status_code == code
    xds = translate(result.model, ProxyOptions())
    (config,) = xds.routes.values()
    redirect = MessageToDict(config)["virtualHosts"][0]["routes"][0]["redirect"]
    assert redirect.get("responseCode") == envoy  # MOVED_PERMANENTLY is proto3's default


def test_gateway_infrastructure_parameters_ref_is_rejected() -> None:
    """No Gateway parameters kind exists: Accepted=False/InvalidParameters, no address,
    nothing served; another Gateway of the class is unaffected."""
    result = run(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: params}
spec:
  gatewayClassName: cilium
  infrastructure: {parametersRef: {group: invalid.io, kind: InvalidParameters, name: x}}
  listeners: [{name: http, port: 80, protocol: HTTP}]
"""
    )
    status = result.statuses[ObjectKey("Gateway", "default", "params")]
    conds = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conds["Accepted"] == ("False", "InvalidParameters")
    assert conds["Programmed"][0] == "False"
    assert "addresses" not in status
    assert ObjectKey("Gateway", "default", "params") not in result.addresses
    assert ObjectKey("Gateway", "default", "gw") in result.addresses
    assert {lst.name.split("/")[1] for lst in result.model.listeners} == {"gw"}


def test_routes_with_the_same_status_share_it() -> None:
    """Thousands of routes on one Gateway have the same status: one object (memory), a
    route whose status differs has its own."""
    route = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [{name}.example]
  rules: [{{backendRefs: [{{name: {backend}, port: 8080}}]}}]
"""
    result = run(
        "---\n".join(
            [
                route.format(name="a", backend="svc"),
                route.format(name="b", backend="svc"),
                route.format(name="c", backend="missing"),
            ]
        )
    )
    a, b, c = (result.statuses[ObjectKey("HTTPRoute", "default", n)] for n in "abc")
    assert a is b
    assert c is not a and c != a  # BackendNotFound
    assert c["parents"][0]["conditions"][1]["reason"] == "BackendNotFound"
