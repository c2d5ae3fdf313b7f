"""BackendTLSPolicy: status per ancestor Gateway, conflicts, CA references, and what an
invalid policy does to traffic."""

from __future__ import annotations

import json
from typing import Any

import yaml

from propylon.gatewayapi import Inputs, build
from propylon.model import DirectResponse, Forward
from propylon.resources import ObjectKey, Resource, parse_object

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

BASE = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: cilium}}
spec: {{controllerName: io.cilium/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw}}
spec:
  gatewayClassName: cilium
  listeners: [{{name: http, port: 80, protocol: HTTP}}]
---
apiVersion: v1
kind: Service
metadata: {{name: svc}}
spec: {{ports: [{{name: https-1, port: 443}}, {{name: https-2, port: 8443}}]}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: ca}}
data: {{ca.crt: {json.dumps(CA)}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: empty}}
data: {{}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: route}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - matches: [{{path: {{type: Exact, value: /one}}}}]
    backendRefs: [{{name: svc, port: 443}}]
  - matches: [{{path: {{type: Exact, value: /two}}}}]
    backendRefs: [{{name: svc, port: 8443}}]
"""


def policy(
    name: str,
    *,
    section: str | None = None,
    hostname: str = "abc.example.com",
    refs: str = "[{group: '', kind: ConfigMap, name: ca}]",
    created: str = "2024-01-01T00:00:00Z",
) -> str:
    section_line = f", sectionName: {section}" if section else ""
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {{name: {name}, creationTimestamp: "{created}"}}
spec:
  targetRefs: [{{group: "", kind: Service, name: svc{section_line}}}]
  validation: {{caCertificateRefs: {refs}, hostname: {hostname}}}
"""


def run(*docs: str) -> Any:
    out: dict[ObjectKey, Resource] = {}
    for doc in yaml.safe_load_all("\n---\n".join([BASE, *docs])):
        if doc:
            obj = parse_object(doc)
            out[obj.key] = obj
    return build(Inputs(objects=out, default_pool=("127.10.0.0/16",)))


def ancestor(result: Any, name: str) -> dict[str, Any]:
    status = result.statuses[ObjectKey("BackendTLSPolicy", "default", name)]
    (entry,) = status["ancestors"]
    return dict(entry)


def conditions(result: Any, name: str) -> dict[str, tuple[str, str]]:
    return {
        cond["type"]: (cond["status"], cond["reason"])
        for cond in ancestor(result, name)["conditions"]
    }


def cluster_tls(result: Any, port: int) -> Any:
    (cluster,) = [c for c in result.model.clusters if c.name == f"default:svc:{port}"]
    return cluster.tls


def test_valid_policy_status_and_upstream_tls() -> None:
    result = run(policy("p"))
    entry = ancestor(result, "p")
    assert entry["ancestorRef"] == {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "namespace": "default",
        "name": "gw",
    }
    assert entry["controllerName"] == "io.cilium/gateway-controller"
    assert conditions(result, "p") == {
        "Accepted": ("True", "Accepted"),
        "ResolvedRefs": ("True", "ResolvedRefs"),
    }
    assert all(c["observedGeneration"] == 1 for c in entry["conditions"])
    tls = cluster_tls(result, 443)
    assert tls.sni == "abc.example.com" and tls.ca_pem == CA


def test_no_ancestor_without_a_route_using_the_service() -> None:
    result = run(
        policy("p").replace("name: svc", "name: unused"),
    )
    assert ObjectKey("BackendTLSPolicy", "default", "p") not in result.statuses


def test_conflict_oldest_then_name_wins() -> None:
    result = run(
        policy("b-old", hostname="old.example.com", created="2024-01-01T00:00:00Z"),
        policy("a-new", created="2024-02-01T00:00:00Z"),
        policy("c-old", created="2024-01-01T00:00:00Z"),
    )
    assert conditions(result, "b-old")["Accepted"] == ("True", "Accepted")
    assert conditions(result, "a-new")["Accepted"] == ("False", "Conflicted")
    assert conditions(result, "c-old")["Accepted"] == ("False", "Conflicted")
    assert cluster_tls(result, 443).sni == "old.example.com"


def test_section_name_is_more_specific_and_not_a_conflict() -> None:
    result = run(
        policy("whole", hostname="whole.example.com"),
        policy("port", section="https-1", hostname="port.example.com"),
    )
    assert conditions(result, "whole")["Accepted"] == ("True", "Accepted")
    assert conditions(result, "port")["Accepted"] == ("True", "Accepted")
    assert cluster_tls(result, 443).sni == "port.example.com"
    assert cluster_tls(result, 8443).sni == "whole.example.com"


def test_missing_and_malformed_ca_refs() -> None:
    for refs in (
        "[{group: '', kind: ConfigMap, name: nope}]",
        "[{group: '', kind: ConfigMap, name: empty}]",
    ):
        result = run(policy("p", refs=refs, section="https-1"))
        assert conditions(result, "p") == {
            "Accepted": ("False", "NoValidCACertificate"),
            "ResolvedRefs": ("False", "InvalidCACertificateRef"),
        }
        # the route's refs are fine; the backend answers 500 rather than plaintext
        route = result.statuses[ObjectKey("HTTPRoute", "default", "route")]
        refs_cond = [c for c in route["parents"][0]["conditions"] if c["type"] == "ResolvedRefs"]
        assert refs_cond[0]["status"] == "True"
        assert all(c.name != "default:svc:443" for c in result.model.clusters)
        routes = result.model.listeners[0].http[0].routes
        actions = {r.match.path.value: r.action for r in routes}
        assert actions["/one"] == DirectResponse(500)
        assert isinstance(actions["/two"], Forward)  # the other port is not targeted


def test_invalid_kind() -> None:
    result = run(policy("p", refs="[{group: invalid.io, kind: InvalidKind, name: x}]"))
    assert conditions(result, "p") == {
        "Accepted": ("False", "NoValidCACertificate"),
        "ResolvedRefs": ("False", "InvalidKind"),
    }


def test_one_valid_ref_of_two_is_accepted_with_refs_false() -> None:
    refs = "[{group: '', kind: ConfigMap, name: ca}, {group: '', kind: ConfigMap, name: nope}]"
    result = run(policy("p", refs=refs))
    assert conditions(result, "p") == {
        "Accepted": ("True", "Accepted"),
        "ResolvedRefs": ("False", "InvalidCACertificateRef"),
    }
    assert cluster_tls(result, 443).ca_pem == CA
