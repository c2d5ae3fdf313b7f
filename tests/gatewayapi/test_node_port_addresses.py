"""CiliumGatewayClassConfig service.type NodePort (and ClusterIP) in Kubernetes: no
LB-IPAM address; a NodePort Gateway's addresses are the Ready nodes', Envoy's listener
anchors on a loopback address of its own; standalone ignores the type."""

from __future__ import annotations

import ipaddress
from typing import Any

import yaml

from propylon.gatewayapi import Builder, Inputs, build
from propylon.resources import ObjectKey, Resource, parse_object

GW = ObjectKey("Gateway", "default", "gw")
OTHER = ObjectKey("Gateway", "default", "other")


def classes(service_type: str) -> str:
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: np}}
spec:
  controllerName: io.cilium/gateway-controller
  parametersRef: {{group: cilium.io, kind: CiliumGatewayClassConfig, name: np, namespace: default}}
---
apiVersion: cilium.io/v2alpha1
kind: CiliumGatewayClassConfig
metadata: {{name: np, namespace: default}}
spec: {{service: {{type: {service_type}}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: lb}}
spec: {{controllerName: io.cilium/gateway-controller}}
---
apiVersion: cilium.io/v2
kind: CiliumLoadBalancerIPPool
metadata: {{name: pool}}
spec: {{blocks: [{{start: 198.19.202.1, stop: 198.19.202.2}}]}}
"""


def gateway(name: str, gw_class: str, created: str, extra: str = "") -> str:
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: default, creationTimestamp: "{created}"}}
spec:
  gatewayClassName: {gw_class}
  listeners: [{{name: http, protocol: HTTP, port: 8080}}]
  {extra}
"""


def node(name: str, address: str, ready: str = "True") -> str:
    return f"""
apiVersion: v1
kind: Node
metadata: {{name: {name}}}
status:
  addresses: [{{type: Hostname, address: {name}}}, {{type: InternalIP, address: {address}}}]
  conditions: [{{type: MemoryPressure, status: "False"}}, {{type: Ready, status: "{ready}"}}]
"""


NODES = (
    node("n1", "198.18.160.11"),
    node("n2", "198.18.160.12", ready="False"),
    node("n3", "198.18.160.13"),
)


def objects(*docs: str) -> dict[ObjectKey, Resource]:
    out = {}
    for doc in yaml.safe_load_all("\n---\n".join(docs)):
        if doc:
            obj = parse_object(doc)
            out[obj.key] = obj
    return out


def operator(objs: dict[ObjectKey, Resource], **kw: Any) -> Inputs:
    return Inputs(objects=objs, kubernetes=True, **kw)


def addresses(st: dict[str, Any]) -> list[str]:
    return [a["value"] for a in st.get("addresses", [])]


def programmed(st: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in st["conditions"] if c["type"] == "Programmed")


def test_node_port_gateway_gets_the_ready_nodes_addresses_not_a_pool_one() -> None:
    objs = objects(
        classes("NodePort"),
        gateway("gw", "np", "2026-01-01T00:00:00Z"),
        gateway("other", "lb", "2026-01-02T00:00:00Z"),
        *NODES,
    )
    result = build(operator(objs))
    st = result.statuses[GW]
    assert addresses(st) == ["198.18.160.11", "198.18.160.13"]  # n2 is not Ready
    assert all(a["type"] == "IPAddress" for a in st["addresses"])
    assert programmed(st)["status"] == "True"
    # The older NodePort Gateway took no pool address: the LoadBalancer one has the first.
    assert addresses(result.statuses[OTHER]) == ["198.19.202.1"]
    services = {s.metadata.name: s for s in result.services}
    np_service = services["cilium-gateway-gw"]
    assert np_service.spec.type == "NodePort"
    assert np_service.status is None  # no status.loadBalancer.ingress
    # Envoy's listener anchors on a loopback address (the node port does the rest).
    anchor = result.addresses[GW]
    assert ipaddress.ip_address(anchor) in ipaddress.ip_network("127.64.0.0/10")
    (listener,) = [li for li in result.model.listeners if li.address == anchor]
    assert listener.port == 8080


def test_switching_the_type_releases_the_pool_address_and_takes_one_back() -> None:
    def world(service_type: str) -> dict[ObjectKey, Resource]:
        return objects(
            classes(service_type),
            gateway("gw", "np", "2026-01-01T00:00:00Z"),
            gateway("other", "lb", "2026-01-02T00:00:00Z"),
            *NODES,
        )

    builder = Builder()
    first = builder.build(operator(world("LoadBalancer")))
    assert addresses(first.statuses[GW]) == ["198.19.202.1"]
    assert addresses(first.statuses[OTHER]) == ["198.19.202.2"]
    previous = {GW: "198.19.202.1", OTHER: "198.19.202.2"}

    switched = builder.build(operator(world("NodePort"), previous_addresses=previous))
    assert addresses(switched.statuses[GW]) == ["198.18.160.11", "198.18.160.13"]
    assert "198.19.202.1" not in switched.addresses.values()
    # Released: a third Gateway can have it.
    third = objects(gateway("third", "lb", "2026-01-03T00:00:00Z"))
    previous = {GW: "198.18.160.11", OTHER: "198.19.202.2"}
    more = builder.build(operator({**world("NodePort"), **third}, previous_addresses=previous))
    assert addresses(more.statuses[ObjectKey("Gateway", "default", "third")]) == ["198.19.202.1"]

    back = builder.build(operator(world("LoadBalancer"), previous_addresses=previous))
    assert addresses(back.statuses[GW]) == ["198.19.202.1"]
    assert programmed(back.statuses[GW])["status"] == "True"


def test_node_changes_move_the_addresses() -> None:
    builder = Builder()
    base = (classes("NodePort"), gateway("gw", "np", "2026-01-01T00:00:00Z"))
    one = builder.build(operator(objects(*base, node("n1", "198.18.160.11"))))
    assert addresses(one.statuses[GW]) == ["198.18.160.11"]
    two = builder.build(
        operator(objects(*base, node("n1", "198.18.160.21"), node("n4", "198.18.160.14")))
    )
    assert addresses(two.statuses[GW]) == ["198.18.160.21", "198.18.160.14"]
    gone = builder.build(operator(objects(*base, node("n1", "198.18.160.21", ready="Unknown"))))
    st = gone.statuses[GW]
    assert "addresses" not in st
    cond = programmed(st)
    assert (cond["status"], cond["reason"]) == ("False", "AddressNotAssigned")
    assert "no Ready node" in cond["message"]


def test_an_agent_serves_node_port_gateways_without_watching_nodes() -> None:
    """A node agent (assigns no address, sees no Nodes) still has the listener."""
    objs = objects(classes("NodePort"), gateway("gw", "np", "2026-01-01T00:00:00Z"))
    result = build(Inputs(objects=objs, kubernetes=True, assign_addresses=False))
    anchor = result.addresses[GW]
    assert [li.address for li in result.model.listeners] == [anchor]
    # ... the same anchor the operator's build has.
    with_nodes = build(operator(objects(classes("NodePort"), gateway("gw", "np", "x"), *NODES)))
    assert with_nodes.addresses[GW] == anchor


def test_two_node_port_gateways_on_one_port_have_their_own_anchors() -> None:
    objs = objects(
        classes("NodePort"),
        gateway("gw", "np", "2026-01-01T00:00:00Z"),
        gateway("other", "np", "2026-01-02T00:00:00Z"),
        *NODES,
    )
    result = build(operator(objs))
    assert result.addresses[GW] != result.addresses[OTHER]
    assert len({(li.address, li.port) for li in result.model.listeners}) == 2


def test_static_addresses_on_a_node_port_gateway_are_not_usable() -> None:
    objs = objects(
        classes("NodePort"),
        gateway(
            "gw",
            "np",
            "2026-01-01T00:00:00Z",
            "addresses: [{type: IPAddress, value: 198.19.202.2}]",
        ),
        *NODES,
    )
    result = build(operator(objs))
    st = result.statuses[GW]
    assert "addresses" not in st
    cond = programmed(st)
    assert (cond["status"], cond["reason"]) == ("False", "AddressNotUsable")
    assert "needs a LoadBalancer Service" in cond["message"]
    assert "service.type NodePort" in cond["message"]
    assert GW not in result.addresses
    assert result.model.listeners == ()


def test_lb_ipam_annotation_on_a_node_port_gateway_is_ignored_with_a_warning() -> None:
    objs = objects(
        classes("NodePort"),
        gateway(
            "gw",
            "np",
            "2026-01-01T00:00:00Z",
            "infrastructure: {annotations: {io.cilium/lb-ipam-ips: 198.19.202.2}}",
        ),
        *NODES,
    )
    result = build(operator(objs))
    assert addresses(result.statuses[GW]) == ["198.18.160.11", "198.18.160.13"]
    assert any("lb-ipam annotation is ignored" in str(d) for d in result.diagnostics)


def test_cluster_ip_gateway_gets_no_address() -> None:
    objs = objects(classes("ClusterIP"), gateway("gw", "np", "2026-01-01T00:00:00Z"), *NODES)
    result = build(operator(objs))
    st = result.statuses[GW]
    assert "addresses" not in st
    cond = programmed(st)
    assert (cond["status"], cond["reason"]) == ("False", "AddressNotAssigned")
    assert "service.type ClusterIP" in cond["message"]
    assert result.services[0].spec.type == "ClusterIP"


def test_standalone_ignores_the_service_type() -> None:
    objs = objects(classes("NodePort"), gateway("gw", "np", "2026-01-01T00:00:00Z"))
    result = build(Inputs(objects=objs))
    assert addresses(result.statuses[GW]) == ["198.19.202.1"]
    assert programmed(result.statuses[GW])["status"] == "True"
