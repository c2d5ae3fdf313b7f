"""The CRDs the chart installs (Cilium's kinds Propylon owns): well-formed, and typed so
that the manifests Propylon reads are accepted and a wrong field is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from chart_harness import CHART, REPO
from pydantic import BaseModel

from propylon.resources.cilium import CiliumGatewayClassConfigSpec, CiliumLoadBalancerIPPoolSpec
from propylon.resources.struct import Struct

EXPECTED = {
    "ciliumgatewayclassconfigs.cilium.io": ("CiliumGatewayClassConfig", "Namespaced", ["v2alpha1"]),
    "ciliumloadbalancerippools.cilium.io": (
        "CiliumLoadBalancerIPPool",
        "Cluster",
        ["v2", "v2alpha1"],
    ),
    "ciliumnetworkpolicies.cilium.io": ("CiliumNetworkPolicy", "Namespaced", ["v2"]),
    "ciliumclusterwidenetworkpolicies.cilium.io": (
        "CiliumClusterwideNetworkPolicy",
        "Cluster",
        ["v2"],
    ),
}


def crds() -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted((CHART / "crds").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        out[doc["metadata"]["name"]] = doc
    return out


def schema(crd_name: str, version: str) -> dict[str, Any]:
    crd = crds()[crd_name]
    found = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    return dict(found["schema"]["openAPIV3Schema"])


def test_the_crds_propylon_owns() -> None:
    found = crds()
    assert set(found) == set(EXPECTED)
    for name, (kind, scope, versions) in EXPECTED.items():
        spec = found[name]["spec"]
        assert spec["group"] == "cilium.io"
        assert f"{spec['names']['plural']}.{spec['group']}" == name
        assert (spec["names"]["kind"], spec["scope"]) == (kind, scope)
        assert [v["name"] for v in spec["versions"]] == versions
        assert [v["storage"] for v in spec["versions"]].count(True) == 1
        assert all(v["served"] for v in spec["versions"])
        for version in spec["versions"]:
            root = version["schema"]["openAPIV3Schema"]
            assert root["type"] == "object" and "spec" in root["properties"]


def _objects(path: Path, kind: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == kind]


def test_walkthrough_class_config_is_accepted() -> None:
    docs = _objects(REPO / "examples/walkthrough/00-gatewayclass.yaml", "CiliumGatewayClassConfig")
    assert docs
    for doc in docs:
        jsonschema.validate(doc, schema("ciliumgatewayclassconfigs.cilium.io", "v2alpha1"))


@pytest.mark.parametrize("version", ["v2", "v2alpha1"])
def test_ip_pools_are_accepted_in_both_versions(version: str) -> None:
    docs = _objects(REPO / "tests/golden/ip-pools/input.yaml", "CiliumLoadBalancerIPPool")
    assert docs
    for doc in docs:
        jsonschema.validate(doc, schema("ciliumloadbalancerippools.cilium.io", version))


@pytest.mark.parametrize(
    ("crd", "version", "spec", "where"),
    [
        (
            "ciliumgatewayclassconfigs.cilium.io",
            "v2alpha1",
            {"service": {"type": "Ingress"}},
            ["spec", "service", "type"],
        ),
        (
            "ciliumloadbalancerippools.cilium.io",
            "v2",
            {"blocks": [{"cidr": 5}]},
            ["spec", "blocks", 0, "cidr"],
        ),
        (
            "ciliumloadbalancerippools.cilium.io",
            "v2",
            {"allowFirstLastIPs": "maybe"},
            ["spec", "allowFirstLastIPs"],
        ),
        (
            "ciliumnetworkpolicies.cilium.io",
            "v2",
            {"ingress": {"not": "a list"}},
            ["spec", "ingress"],
        ),
    ],
)
def test_a_wrong_field_is_refused(
    crd: str, version: str, spec: dict[str, Any], where: list[Any]
) -> None:
    doc = {
        "apiVersion": f"cilium.io/{version}",
        "kind": "X",
        "metadata": {"name": "x"},
        "spec": spec,
    }
    with pytest.raises(jsonschema.ValidationError) as refused:
        jsonschema.validate(doc, schema(crd, version))
    assert list(refused.value.absolute_path) == where


def _fields(model: type[Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """The camelCase paths of a parsed kind's fields (pydantic models and `@record`
    dataclasses both list theirs in `__pydantic_fields__`)."""
    out = set()
    for name, info in model.__pydantic_fields__.items():
        key = (*prefix, info.alias or _camel(name))
        out.add(key)
        inner = info.annotation
        for arg in getattr(inner, "__args__", ()) or (inner,):
            candidates = getattr(arg, "__args__", ()) or (arg,)
            for c in candidates:
                if isinstance(c, type) and issubclass(c, (BaseModel, Struct)):
                    out |= _fields(c, key)
    return out


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _has(node: dict[str, Any], path: tuple[str, ...]) -> bool:
    for part in path:
        if node.get("type") == "array":
            node = node["items"]
        props = node.get("properties") or {}
        if part not in props:
            return False
        node = props[part]
    return True


@pytest.mark.parametrize(
    ("crd", "version", "model"),
    [
        ("ciliumgatewayclassconfigs.cilium.io", "v2alpha1", CiliumGatewayClassConfigSpec),
        ("ciliumloadbalancerippools.cilium.io", "v2", CiliumLoadBalancerIPPoolSpec),
    ],
)
def test_every_field_propylon_reads_is_in_the_schema(
    crd: str, version: str, model: type[Any]
) -> None:
    spec = schema(crd, version)["properties"]["spec"]
    missing = sorted(".".join(p) for p in _fields(model) if not _has(spec, p))
    assert not missing, f"{crd} lacks {missing}"


POLICY_CRDS = {
    "CiliumNetworkPolicy": "ciliumnetworkpolicies.cilium.io",
    "CiliumClusterwideNetworkPolicy": "ciliumclusterwidenetworkpolicies.cilium.io",
}


@pytest.mark.parametrize(
    "path", sorted((REPO / "examples/cilium-policies").glob("*.yaml")), ids=lambda p: p.stem
)
def test_ciliums_example_policies_are_accepted(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        jsonschema.validate(doc, schema(POLICY_CRDS[doc["kind"]], "v2"))


@pytest.mark.parametrize(
    ("rule", "where"),
    [
        (
            {"endpointSelector": {}, "ingress": [{"fromEntities": ["everyone"]}]},
            ["spec", "ingress", 0, "fromEntities", 0],
        ),
        (
            {"endpointSelector": {}, "ingress": [{"fromCIDRSet": [{"cidr": "10.0.0.0/33"}]}]},
            ["spec", "ingress", 0, "fromCIDRSet", 0, "cidr"],
        ),
        (
            {"endpointSelector": {}, "ingress": [{"toPorts": [{"ports": [{"port": "http"}]}]}]},
            ["spec", "ingress", 0, "toPorts", 0, "ports", 0, "port"],
        ),
        (
            {"endpointSelector": {"matchExpressions": [{"key": "a", "operator": "Is"}]}},
            ["spec", "endpointSelector", "matchExpressions", 0, "operator"],
        ),
        (
            {
                "endpointSelector": {},
                "egress": [{"toPorts": [{"rules": {"http": [{"headers": "x"}]}}]}],
            },
            ["spec", "egress", 0, "toPorts", 0, "rules", "http", 0, "headers"],
        ),
    ],
)
def test_a_malformed_policy_rule_is_refused(rule: dict[str, Any], where: list[Any]) -> None:
    for kind, crd in POLICY_CRDS.items():
        doc = {"apiVersion": "cilium.io/v2", "kind": kind, "metadata": {"name": "x"}, "spec": rule}
        with pytest.raises(jsonschema.ValidationError) as refused:
            jsonschema.validate(doc, schema(crd, "v2"))
        assert list(refused.value.absolute_path) == where
