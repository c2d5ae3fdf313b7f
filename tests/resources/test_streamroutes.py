"""TCPRoute and UDPRoute: parsed as the API server of Gateway API v1.6.3 takes them,
with and without its CRDs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from propylon.resources import ResourceError, TCPRoute, UDPRoute, parse_object
from propylon.resources.crd import CRDSchemas, load_crds
from propylon.resources.unknown import unknown_fields

CRD_DIR = Path("/root/go/pkg/mod/sigs.k8s.io/gateway-api@v1.6.3/config/crd/experimental")


def _route(kind: str, version: str = "v1", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "parentRefs": [{"name": "gw", "sectionName": "tcp"}],
        "rules": [{"backendRefs": [{"name": "echo", "port": 3000}]}],
    }
    base.update(spec)
    return {
        "apiVersion": f"gateway.networking.k8s.io/{version}",
        "kind": kind,
        "metadata": {"name": "r", "namespace": "ns"},
        "spec": base,
    }


@pytest.fixture(scope="module")
def crds() -> CRDSchemas:
    if not CRD_DIR.is_dir():
        pytest.skip("Gateway API v1.6.3 CRDs are not in the Go module cache")
    docs = [
        yaml.safe_load((CRD_DIR / f"gateway.networking.k8s.io_{plural}.yaml").read_text())
        for plural in ("tcproutes", "udproutes")
    ]
    return load_crds(docs)


@pytest.mark.parametrize("kind", ["TCPRoute", "UDPRoute"])
@pytest.mark.parametrize("version", ["v1", "v1alpha2"])
def test_both_versions_parse_with_defaults(kind: str, version: str) -> None:
    route = parse_object(_route(kind, version))
    assert isinstance(route, TCPRoute if kind == "TCPRoute" else UDPRoute)
    ref = route.spec.rules[0].backend_refs[0]
    assert (ref.group, ref.kind, ref.weight, ref.port) == ("", "Service", 1, 3000)


def test_v1_has_one_rule_v1alpha2_several() -> None:
    two = [{"backendRefs": [{"name": "a", "port": 1}]}, {"backendRefs": [{"name": "b", "port": 1}]}]
    with pytest.raises(ResourceError, match="at most 1 item"):
        parse_object(_route("TCPRoute", rules=two))
    assert len(parse_object(_route("TCPRoute", "v1alpha2", rules=two)).spec.rules) == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"rules": []}, "spec.rules", "at least 1 item"),
        ({"rules": [{"backendRefs": []}]}, "spec.rules[0].backendRefs", "at least 1 item"),
        (
            {"rules": [{"backendRefs": [{"name": "echo"}]}]},
            "spec.rules[0].backendRefs[0]",
            "Must have port for Service reference",
        ),
        (
            {"parentRefs": [{"name": "gw"}, {"name": "gw", "sectionName": "udp"}]},
            "spec",
            "sectionName or port must be specified",
        ),
        (
            {
                "parentRefs": [
                    {"name": "gw", "sectionName": "a"},
                    {"name": "gw", "sectionName": "a"},
                ]
            },
            "spec",
            "sectionName or port must be unique",
        ),
    ],
)
def test_invalid_routes_name_the_field(spec: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ResourceError) as caught:
        parse_object(_route("UDPRoute", **spec))
    assert caught.value.field == field
    assert message in str(caught.value)


def test_a_typo_is_an_unknown_field() -> None:
    doc = _route(
        "TCPRoute",
        rules=[
            {"backendRef": [{"name": "e", "port": 1}], "backendRefs": [{"name": "e", "port": 1}]}
        ],
    )
    assert unknown_fields(parse_object(doc), doc) == ["spec.rules[0].backendRef"]


def test_the_crds_agree(crds: CRDSchemas) -> None:
    for kind in ("TCPRoute", "UDPRoute"):
        for version in ("v1", "v1alpha2"):
            parse_object(_route(kind, version), crds)
        with pytest.raises(ResourceError, match="sectionName or port must be specified"):
            parse_object(
                _route(kind, parentRefs=[{"name": "gw"}, {"name": "gw", "sectionName": "x"}]),
                crds,
            )
        with pytest.raises(ResourceError, match="rules"):
            parse_object(_route(kind, rules=[]), crds)
