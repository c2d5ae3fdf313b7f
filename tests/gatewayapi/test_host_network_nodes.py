"""gatewayAPI.hostNetwork where Nodes are known (Kubernetes): a Gateway's addresses are
the selected nodes' addresses, there is no generated Service, and a Node label change
changes them; without Nodes (standalone) the pool address stays."""

from __future__ import annotations

from typing import Any

import yaml

from propylon.gatewayapi import Builder, Inputs, build
from propylon.resources import ObjectKey, Resource, parse_object
from propylon.values import Values

GATEWAY = """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: cilium}
spec: {controllerName: io.cilium/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: cilium
  listeners: [{name: http, protocol: HTTP, port: 18080}]
"""


def node(name: str, address: str, **labels: str) -> str:
    return f"""
apiVersion: v1
kind: Node
metadata: {{name: {name}, labels: {labels or {}}}}
status:
  addresses: [{{type: Hostname, address: {name}}}, {{type: InternalIP, address: {address}}}]
"""


def objects(*docs: str) -> dict[ObjectKey, Resource]:
    out = {}
    for doc in yaml.safe_load_all("\n---\n".join([GATEWAY, *docs])):
        if doc:
            obj = parse_object(doc)
            out[obj.key] = obj
    return out


VALUES = Values.model_validate(
    {"gatewayAPI": {"hostNetwork": {"enabled": True, "nodes": {"matchLabels": {"role": "gw"}}}}}
)


def inputs(objs: dict[ObjectKey, Resource]) -> Inputs:
    return Inputs(objects=objs, values=VALUES, default_pool=("127.10.0.0/16",))


def status(result: Any) -> dict[str, Any]:
    return dict(result.statuses[ObjectKey("Gateway", "default", "gw")])


def programmed(st: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in st["conditions"] if c["type"] == "Programmed")


def test_addresses_are_the_selected_nodes() -> None:
    result = build(
        inputs(
            objects(
                node("n1", "198.18.160.11", role="gw"),
                node("n2", "198.18.160.12"),
                node("n3", "198.18.160.13", role="gw"),
            )
        )
    )
    st = status(result)
    assert [a["value"] for a in st["addresses"]] == ["198.18.160.11", "198.18.160.13"]
    assert programmed(st)["status"] == "True"
    assert result.services == ()  # no LoadBalancer Service in front of node ports
    (listener,) = result.model.listeners
    assert listener.port == 18080


def test_no_selected_node_is_not_programmed() -> None:
    st = status(build(inputs(objects(node("n1", "198.18.160.11")))))
    assert "addresses" not in st
    cond = programmed(st)
    assert (cond["status"], cond["reason"]) == ("False", "AddressNotAssigned")
    assert "nodes.matchLabels (role=gw)" in cond["message"]


def test_a_label_change_moves_the_addresses() -> None:
    builder = Builder()
    before = objects(node("n1", "198.18.160.11", role="gw"), node("n2", "198.18.160.12"))
    first = builder.build(inputs(before))
    assert [a["value"] for a in status(first)["addresses"]] == ["198.18.160.11"]
    after = objects(node("n1", "198.18.160.11"), node("n2", "198.18.160.12", role="gw"))
    changed = {ObjectKey("Node", "", "n1"), ObjectKey("Node", "", "n2")}
    second = builder.build(inputs(after), changed)
    assert [a["value"] for a in status(second)["addresses"]] == ["198.18.160.12"]
    assert second.statuses == build(inputs(after)).statuses


def test_standalone_without_nodes_keeps_the_pool_address() -> None:
    st = status(build(inputs(objects())))
    assert [a["value"] for a in st["addresses"]] == ["127.10.0.1"]
