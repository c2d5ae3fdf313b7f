"""Issue #11's reproductions, one test each (what a user saw, now refused or fixed).

Envoy-side behaviour (9, 10) and the running instance's NACK isolation are tested with
the translator and the xDS stream; here: validation, statuses and the model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import re2
import yaml
from validation_support import b64, route_conditions, run, served_route_names, tls_pair

from propylon.gatewayapi.backends import cluster_name
from propylon.model import AppProtocol, PathMatchType
from propylon.resources import ObjectKey, ResourceError, parse_object
from propylon.sources.documents import DocumentError, load_documents
from propylon.sources.files import load_paths


def http_route(name: str, rule: str, hostnames: str = "[bad.example]") -> str:
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: {hostnames}
  rules:
  - {rule}
"""


def assert_refused(text: str, name: str, field: str, reason: str = "UnsupportedValue") -> None:
    """The route is not accepted, says which field, and is not served; the other
    route on the same listener still is."""
    result = run(text)
    accepted = route_conditions(result, name)["Accepted"]
    assert (accepted["status"], accepted["reason"]) == ("False", reason)
    assert field in accepted["message"]
    assert served_route_names(result) == {"good"}


# --- 1. regular expressions Envoy's RE2 rejects --------------------------------------------


@pytest.mark.parametrize("pattern", ["/foo(?=x)", "(?<=a)b", r"(a)\\1", "a{1001}", "(a+){100}"])
def test_1_path_regex_rejected_by_re2(pattern: str) -> None:
    rule = f'matches: [{{path: {{type: RegularExpression, value: "{pattern}"}}}}]'
    assert_refused(http_route("bad", rule), "bad", "spec.rules[0].matches[0].path.value")


def test_1_header_and_query_regex() -> None:
    rule = 'matches: [{headers: [{type: RegularExpression, name: x, value: "(?=x)"}]}]'
    assert_refused(http_route("bad", rule), "bad", "spec.rules[0].matches[0].headers[0].value")
    rule = 'matches: [{queryParams: [{type: RegularExpression, name: q, value: "(?<=a)b"}]}]'
    assert_refused(http_route("bad", rule), "bad", "spec.rules[0].matches[0].queryParams[0].value")


def test_1_grpc_method_regex() -> None:
    text = """
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: bad}
spec:
  parentRefs: [{name: gw}]
  hostnames: [bad.example]
  rules:
  - matches: [{method: {type: RegularExpression, service: "a(?=b)", method: M}}]
"""
    result = run(text)
    accepted = route_conditions(result, "bad", "GRPCRoute")["Accepted"]
    assert accepted["status"] == "False"
    assert "spec.rules[0].matches[0].method.service" in accepted["message"]
    assert "invalid perl operator" in accepted["message"]
    assert served_route_names(result) == {"good"}


# --- 2. other things Envoy rejects -----------------------------------------------------------


@pytest.mark.parametrize("verb", ["set", "add"])
def test_2_host_header_cannot_be_set(verb: str) -> None:
    rule = (
        "filters: [{type: RequestHeaderModifier, requestHeaderModifier: "
        f"{{{verb}: [{{name: Host, value: evil.example}}]}}}}]"
    )
    field = f"spec.rules[0].filters[0].requestHeaderModifier.{verb}[0].name"
    assert_refused(http_route("bad", rule), "bad", field)


def test_2_host_header_cannot_be_removed() -> None:
    rule = "filters: [{type: RequestHeaderModifier, requestHeaderModifier: {remove: [host]}}]"
    assert_refused(
        http_route("bad", rule), "bad", "spec.rules[0].filters[0].requestHeaderModifier.remove[0]"
    )


def test_2_control_characters_in_header_value_and_path() -> None:
    rule = (
        "filters: [{type: ResponseHeaderModifier, responseHeaderModifier: "
        '{set: [{name: x, value: "a\\r\\nSet-Cookie: b"}]}}]'
    )
    assert_refused(
        http_route("bad", rule), "bad", "spec.rules[0].filters[0].responseHeaderModifier.set[0]"
    )
    rule = (
        "filters: [{type: URLRewrite, urlRewrite: "
        '{path: {type: ReplaceFullPath, replaceFullPath: "/a\\u0000b"}}}]'
    )
    assert_refused(
        http_route("bad", rule), "bad", "spec.rules[0].filters[0].urlRewrite.path.replaceFullPath"
    )


def test_2_endpoint_address_that_is_not_an_ip() -> None:
    doc = yaml.safe_load(
        """
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: svc-1, labels: {kubernetes.io/service-name: svc}}
addressType: IPv4
endpoints: [{addresses: [127.0.0.1]}, {addresses: [not-an-ip]}]
ports: [{port: 8080}]
"""
    )
    with pytest.raises(ResourceError) as exc:
        parse_object(doc)
    assert str(exc.value) == (
        "EndpointSlice default/svc-1: endpoints[1].addresses[0]: 'not-an-ip' must be a valid "
        "IPv4 address"
    )


def test_2_tls_key_that_does_not_match_the_certificate() -> None:
    crt, _ = tls_pair()
    _, other_key = tls_pair()
    text = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: tls}}
spec:
  gatewayClassName: cilium
  listeners:
  - name: https
    port: 443
    protocol: HTTPS
    tls: {{certificateRefs: [{{name: cert}}]}}
---
apiVersion: v1
kind: Secret
metadata: {{name: cert}}
type: kubernetes.io/tls
data: {{tls.crt: {b64(crt)}, tls.key: {b64(other_key)}}}
"""
    result = run(text)
    status = result.statuses[ObjectKey("Gateway", "default", "tls")]
    (listener,) = status["listeners"]
    conditions = {c["type"]: c for c in listener["conditions"]}
    assert conditions["ResolvedRefs"]["status"] == "False"
    assert conditions["ResolvedRefs"]["reason"] == "InvalidCertificateRef"
    assert "tls.key does not match the certificate" in conditions["ResolvedRefs"]["message"]
    assert conditions["Programmed"]["status"] == "False"
    assert not any(s.name == "default/cert" for s in result.model.secrets)


# --- 3. the CRDs' CEL rules (without CRD files: checked by hand) ---------------------------


CEL_CASES = {
    "backendRequest timeout cannot be longer than request timeout": (
        "{timeouts: {request: 1s, backendRequest: 2s}, backendRefs: [{name: svc, port: 8080}]}"
    ),
    "RequestRedirect filter must not be used together with backendRefs": (
        "{filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}], "
        "backendRefs: [{name: svc, port: 8080}]}"
    ),
    "May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite": (
        "{filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}, "
        "{type: URLRewrite, urlRewrite: {hostname: a.example}}]}"
    ),
    "RequestHeaderModifier filter cannot be repeated": (
        "{filters: [{type: RequestHeaderModifier, requestHeaderModifier: {remove: [a]}}, "
        "{type: RequestHeaderModifier, requestHeaderModifier: {remove: [b]}}]}"
    ),
    "When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix": (
        "{matches: [{path: {type: Exact, value: /a}}], filters: [{type: URLRewrite, "
        "urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}]}"
    ),
}


@pytest.mark.parametrize("message", sorted(CEL_CASES))
def test_3_route_rules_of_the_crd(message: str) -> None:
    doc = yaml.safe_load(http_route("r", CEL_CASES[message]))
    with pytest.raises(ResourceError) as exc:
        parse_object(doc)
    assert message in str(exc.value)
    assert exc.value.field.startswith("spec.rules[0]")


def test_3_more_than_128_matches_across_rules() -> None:
    matches = "[" + ", ".join(["{path: {value: /}}"] * 43) + "]"
    rules = "\n  - ".join([f"matches: {matches}"] * 3)  # 129 matches
    with pytest.raises(ResourceError) as exc:
        parse_object(yaml.safe_load(http_route("r", rules)))
    assert "the total number of matches across all rules in a route must be less than 128" in (
        str(exc.value)
    )


def test_3_two_parent_refs_to_one_gateway_without_section_name() -> None:
    doc = yaml.safe_load(http_route("r", "{}"))
    doc["spec"]["parentRefs"] = [{"name": "gw"}, {"name": "gw", "sectionName": "http"}]
    with pytest.raises(ResourceError) as exc:
        parse_object(doc)
    assert "sectionName or port must be specified when parentRefs includes 2 or more" in str(
        exc.value
    )


# --- 4. names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "name", "namespace", "field"),
    [
        ("HTTPRoute", "Bad_Name.With Spaces", "default", "metadata.name"),
        ("HTTPRoute", "ok", "ns/with/slash", "metadata.namespace"),
        ("Service", "Svc_X", "default", "metadata.name"),
        ("Service", "s" * 100, "default", "metadata.name"),
        ("Service", "a.b", "default", "metadata.name"),  # DNS-1035: no dots
        ("Gateway", "GW:1", "default", "metadata.name"),
    ],
)
def test_4_names_the_api_server_refuses(kind: str, name: str, namespace: str, field: str) -> None:
    api = "v1" if kind == "Service" else "gateway.networking.k8s.io/v1"
    spec = {"ports": [{"port": 80}]} if kind == "Service" else {}
    if kind == "Gateway":
        spec = {
            "gatewayClassName": "c",
            "listeners": [{"name": "h", "port": 80, "protocol": "HTTP"}],
        }
    doc = {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": namespace}}
    doc["spec"] = spec
    with pytest.raises(ResourceError) as exc:
        parse_object(doc)
    assert exc.value.field == field


def test_4_labels_and_annotations() -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s", "labels": {"bad key!": "v"}},
        "spec": {"ports": [{"port": 80}]},
    }
    with pytest.raises(ResourceError) as exc:
        parse_object(doc)
    assert exc.value.field == "metadata.labels"


def test_4_generated_names_are_injective() -> None:
    # Service a:b in namespace x and Service b in namespace x:a used to share a cluster.
    assert cluster_name("x", "a:b", 80, None) != cluster_name("x:a", "b", 80, None)
    assert cluster_name("x", "a%3Ab", 80, None) != cluster_name("x", "a:b", 80, None)
    assert cluster_name("default", "svc", 80, None) == "default:svc:80"


# --- 5. long Gateway names ---------------------------------------------------------------


def test_5_long_gateway_name_gets_cilium_shortened_service() -> None:
    name = "g" * 240
    result = run(
        f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}}}
spec:
  gatewayClassName: cilium
  listeners: [{{name: http, port: 81, protocol: HTTP}}]
"""
    )
    (svc,) = [s for s in result.services if s.metadata.name.startswith("cilium-gateway-ggg")]
    # Cilium's rule: the first 52 characters, "-", ten hex digits of the name's SHA-256
    # with 0 1 3 a e spelt g h k m t (so the result is a DNS label of 63 characters).
    full = f"cilium-gateway-{name}"
    digest = hashlib.sha256(full.encode()).hexdigest()[:10]
    assert svc.metadata.name == f"{full[:52]}-{digest.translate(str.maketrans('013ae', 'ghkmt'))}"
    assert len(svc.metadata.name) == 63
    assert all(len(v) <= 63 for v in svc.metadata.labels.values())
    assert result.statuses[ObjectKey("Gateway", "default", name)]["conditions"][0]["status"] == (
        "True"
    )


# --- 6. parsers and limits -----------------------------------------------------------------


def test_6_deep_json_is_a_clear_error() -> None:
    with pytest.raises(DocumentError, match="nested more than 100 levels deep"):
        load_documents('{"a":' * 1000 + "1" + "}" * 1000, json_file=True)


def test_6_yaml_alias_bomb_is_refused_quickly() -> None:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    text = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: b}\n"
    text += "spec:\n  rules:\n  - retry:\n" + "".join(f"      {line}\n" for line in lines)
    # Expanded, this document would hold 9**10 strings: refusing it at all means the
    # expansion was cut short (pytest-timeout bounds the run).
    with pytest.raises(DocumentError, match="aliases expand a document to more than"):
        load_documents(text)


def test_6_annotations_over_256_kib() -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s", "annotations": {"a": "x" * (20 * 1024 * 1024)}},
        "spec": {"ports": [{"port": 80}]},
    }
    with pytest.raises(ResourceError) as exc:
        parse_object(doc)
    assert exc.value.field == "metadata.annotations"
    assert "262144 bytes" in exc.value.message


def test_6_json_duplicate_keys_refused_like_yaml() -> None:
    with pytest.raises(DocumentError, match="'kind' is defined twice"):
        load_documents(json.dumps({"kind": "a"})[:-1] + ', "kind": "b"}', json_file=True)
    with pytest.raises(DocumentError, match="'kind' is defined twice"):
        load_documents("kind: a\nkind: b\n")


def test_6_route_hostname_that_is_an_ip() -> None:
    text = http_route("bad", "{backendRefs: [{name: svc, port: 8080}]}", "[192.0.2.1]")
    assert_refused(text, "bad", "spec.hostnames[0]")


# --- 7. gRPC regex method matches are grouped ---------------------------------------------


def test_7_grpc_regex_alternation_is_grouped() -> None:
    text = """
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g}
spec:
  parentRefs: [{name: gw}]
  hostnames: [g.example]
  rules:
  - matches: [{method: {type: RegularExpression, service: "a\\\\.S|b\\\\.T", method: "Ping|Pong"}}]
    backendRefs: [{name: svc, port: 8080}]
"""
    result = run(text)
    (path,) = {
        r.match.path
        for li in result.model.listeners
        for vh in li.http or ()
        for r in vh.routes
        if r.name.startswith("GRPCRoute/")
    }
    assert path.type is PathMatchType.REGEX
    regex = re2.compile(path.value)
    assert regex.fullmatch("/a.S/Ping") and regex.fullmatch("/b.T/Pong")
    assert not regex.fullmatch("/a.S/Other") and not regex.fullmatch("/c.S/Ping")


# --- 8. duplicate header names: only the first counts ---------------------------------------


def test_8_first_of_equivalent_header_names() -> None:
    rule = (
        "{matches: [{headers: [{name: X-A, value: '1'}, {name: x-a, value: '2'}]}], "
        "filters: [{type: RequestHeaderModifier, requestHeaderModifier: "
        "{set: [{name: X-B, value: first}, {name: x-b, value: second}]}}], "
        "backendRefs: [{name: svc, port: 8080}]}"
    )
    result = run(http_route("dup", rule, "[dup.example]"))
    (route,) = [
        r
        for li in result.model.listeners
        for vh in li.http or ()
        for r in vh.routes
        if "/dup/" in r.name
    ]
    assert [(h.name, h.value) for h in route.match.headers] == [("X-A", "1")]
    assert route.request_headers is not None
    assert route.request_headers.set == (("X-B", "first"),)


# --- 11. GRPCRoute and HTTPRoute to one Service port ----------------------------------------


def test_11_grpc_and_http_routes_to_one_service_port_keep_their_protocols() -> None:
    text = """
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g}
spec:
  parentRefs: [{name: gw}]
  hostnames: [g.example]
  rules: [{backendRefs: [{name: svc, port: 8080}]}]
"""
    result = run(text)
    protocols = {c.name: c.protocol for c in result.model.clusters}
    assert protocols == {
        "default:svc:8080": AppProtocol.HTTP1,
        "default:svc:8080:h2c": AppProtocol.H2C,
    }


def test_6_a_bad_file_is_an_error_on_that_file_only(tmp_path: Path) -> None:
    """The deep JSON and the alias bomb as files beside a good one: each is an error
    naming its file, and the good file's objects are there (the run keeps starting)."""
    (tmp_path / "deep.json").write_text('{"a":' * 1000 + "1" + "}" * 1000)
    bomb = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    bomb += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    (tmp_path / "bomb.yaml").write_text("\n".join(bomb) + "\n")
    (tmp_path / "good.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: svc}\nspec: {ports: [{port: 80}]}\n"
    )
    changeset = load_paths([tmp_path])
    errors = {Path(str(d.file)).name: str(d) for d in changeset.errors}
    assert set(errors) == {"deep.json", "bomb.yaml"}
    assert "nested more than 100 levels deep" in errors["deep.json"]
    assert "aliases expand a document" in errors["bomb.yaml"]
    assert ObjectKey("Service", "default", "svc") in changeset.objects
