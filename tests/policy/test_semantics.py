"""Cilium's policy semantics on single flows (pure): selection, default deny, deny wins,
CIDR `except`, entities, namespaced scoping, ports and L7 rules."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from propylon.policy import build_world
from propylon.policy.engine import World
from propylon.policy.identity import INGRESS, world
from propylon.resources import ResourceError, parse_object

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: data, labels: {app: db}}
status: {podIP: 10.0.0.2}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: blue}}
"""


def world_of(*policies: str) -> World:
    objects = {}
    for text in (PODS, *policies):
        for doc in yaml.safe_load_all(text):
            obj = parse_object(doc)
            objects[obj.key] = obj
    found = build_world(objects)
    assert found is not None
    return found


def ccnp(name: str, spec: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumClusterwideNetworkPolicy",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def cnp(name: str, namespace: str, spec: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumNetworkPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )


SELECT_INGRESS = {"matchExpressions": [{"key": "reserved:ingress", "operator": "Exists"}]}


def client_verdict(w: World, address: str, port: int = 80) -> bool:
    return w.decide("ingress", INGRESS, w.source(address), port).allowed


def test_no_rule_selecting_the_endpoint_allows() -> None:
    w = world_of(
        cnp("p", "shop", {"endpointSelector": {}, "ingress": [{"fromEntities": ["cluster"]}]})
    )
    # A namespaced policy never selects the ingress identity (it has no namespace).
    assert client_verdict(w, "192.0.2.1")
    v = w.decide("ingress", w.pods["data/db"], INGRESS, 5432)
    assert v.allowed and "no policy selects" in v.why


def test_selected_endpoint_is_default_deny_and_names_the_policy() -> None:
    w = world_of(ccnp("lock", {"endpointSelector": {}, "ingress": [{"fromEntities": ["cluster"]}]}))
    v = w.decide("ingress", INGRESS, world("192.0.2.1"), 80)
    assert not v.allowed
    assert "CiliumClusterwideNetworkPolicy/lock" in v.why
    assert client_verdict(w, "10.0.0.1")  # a pod's address is in-cluster


def test_deny_wins_over_allow() -> None:
    w = world_of(
        ccnp(
            "both",
            {
                "endpointSelector": SELECT_INGRESS,
                "ingress": [{"fromEntities": ["all"]}],
                "ingressDeny": [{"fromCIDR": ["192.0.2.0/24"]}],
            },
        )
    )
    v = w.decide("ingress", INGRESS, world("192.0.2.9"), 80)
    assert not v.allowed and "spec.ingressDeny[0]" in v.rules[0]
    assert client_verdict(w, "198.51.100.1")


def test_deny_only_policy_puts_the_endpoint_into_default_deny() -> None:
    w = world_of(
        ccnp(
            "d",
            {"endpointSelector": SELECT_INGRESS, "ingressDeny": [{"fromCIDR": ["192.0.2.0/24"]}]},
        )
    )
    assert not client_verdict(w, "198.51.100.1")


def test_cidr_set_except() -> None:
    w = world_of(
        ccnp(
            "c",
            {
                "endpointSelector": SELECT_INGRESS,
                "ingress": [
                    {"fromCIDRSet": [{"cidr": "192.0.2.0/24", "except": ["192.0.2.128/25"]}]}
                ],
            },
        )
    )
    assert client_verdict(w, "192.0.2.1")
    assert not client_verdict(w, "192.0.2.200")
    assert not client_verdict(w, "10.0.0.1")  # a CIDR rule does not match a pod's identity


@pytest.mark.parametrize(
    ("entity", "world_ok", "pod_ok"),
    [("world", True, False), ("cluster", False, True), ("all", True, True), ("host", False, False)],
)
def test_entities(entity: str, world_ok: bool, pod_ok: bool) -> None:
    w = world_of(
        ccnp("e", {"endpointSelector": SELECT_INGRESS, "ingress": [{"fromEntities": [entity]}]})
    )
    assert client_verdict(w, "192.0.2.1") is world_ok
    assert client_verdict(w, "10.0.0.1") is pod_ok


def test_namespaced_from_endpoints_stay_in_the_namespace() -> None:
    spec = {
        "endpointSelector": {"matchLabels": {"app": "db"}},
        "ingress": [{"fromEndpoints": [{}]}],
    }
    w = world_of(cnp("p", "data", spec))
    web = w.pods["shop/web"]
    assert not w.decide("ingress", w.pods["data/db"], web, 5432).allowed
    spec["ingress"] = [
        {"fromEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "shop"}}]}
    ]
    w = world_of(cnp("p", "data", spec))
    assert w.decide("ingress", w.pods["data/db"], web, 5432).allowed


def test_namespace_labels_are_selectable() -> None:
    spec = {
        "endpointSelector": {"matchLabels": {"app": "db"}},
        "ingress": [
            {"fromEndpoints": [{"matchLabels": {"io.cilium.k8s.namespace.labels.team": "blue"}}]}
        ],
    }
    w = world_of(ccnp("ns", spec))
    assert w.decide("ingress", w.pods["data/db"], w.pods["shop/web"], 5432).allowed


def test_ports_and_l7_rules() -> None:
    spec = {
        "endpointSelector": {"matchLabels": {"app": "web"}},
        "ingress": [
            {
                "fromEntities": ["ingress"],
                "toPorts": [
                    {
                        "ports": [{"port": "8080", "protocol": "TCP"}],
                        "rules": {"http": [{"method": "GET", "path": "/public/.*"}]},
                    }
                ],
            }
        ],
    }
    w = world_of(cnp("l7", "shop", spec))
    web = w.pods["shop/web"]
    v = w.decide("ingress", web, INGRESS, 8080)
    assert v.allowed and v.http is not None and v.http[0].path == "/public/.*"
    assert not w.decide("ingress", web, INGRESS, 9090).allowed


def test_l4_only_rule_allows_every_peer_and_an_empty_rule_none() -> None:
    l4 = {
        "endpointSelector": SELECT_INGRESS,
        "ingress": [{"toPorts": [{"ports": [{"port": "80"}]}]}],
    }
    w = world_of(ccnp("l4", l4))
    assert client_verdict(w, "192.0.2.1", 80) and not client_verdict(w, "192.0.2.1", 81)
    w = world_of(ccnp("none", {"endpointSelector": SELECT_INGRESS, "ingress": [{}]}))
    assert not client_verdict(w, "192.0.2.1")


def test_egress_of_the_ingress_identity() -> None:
    spec = {
        "endpointSelector": {"matchExpressions": [{"key": "ingress", "operator": "Exists"}]},
        "egress": [{"toEndpoints": [{"matchLabels": {"app": "web"}}]}],
    }
    w = world_of(ccnp("eg", spec))
    assert w.decide("egress", INGRESS, w.pods["shop/web"], 80).allowed
    assert not w.decide("egress", INGRESS, w.pods["data/db"], 80).allowed


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"ingress": []}, "spec", "exactly one of endpointSelector and nodeSelector"),
        (
            {"endpointSelector": {}, "ingress": [{"fromCIDR": ["300.1.1.1/8"]}]},
            "spec.ingress[0].fromCIDR",
            "not a valid CIDR",
        ),
        (
            {"endpointSelector": {}, "ingress": [{"fromEntities": ["everyone"]}]},
            "spec.ingress[0].fromEntities[0]",
            "Input should be",
        ),
        (
            {"endpointSelector": {}, "ingress": [{"toPorts": [{"ports": [{"port": "http"}]}]}]},
            "spec.ingress[0].toPorts[0].ports[0].port",
            "named port",
        ),
        (
            {
                "endpointSelector": {},
                "ingress": [
                    {"toPorts": [{"ports": [{"port": "80"}], "rules": {"http": [{"path": "(/"}]}}]}
                ],
            },
            "spec.ingress[0].toPorts[0].rules.http[0].path",
            "regular expression",
        ),
    ],
)
def test_invalid_policies_name_the_field(spec: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ResourceError) as info:
        parse_object(yaml.safe_load(ccnp("bad", spec)))
    assert info.value.field == field
    assert message in info.value.message
    assert "CiliumClusterwideNetworkPolicy bad" in str(info.value)
