"""Gateways whose class config makes the generated Service NodePort or ClusterIP, in
Kubernetes. LB-IPAM allocates for LoadBalancer Services only, so these get no pool
address:

- NodePort: clients reach the Gateway on <node address>:<node port>, so its status
  addresses are the Ready nodes' InternalIPs (every Ready node: an agent runs on each and
  answers every node port, so with externalTrafficPolicy Local too). spec.addresses
  (a static address) needs LB-IPAM: Programmed=False AddressNotUsable.
- ClusterIP: no address to report (no kube-proxy routes the cluster IP to Envoy):
  Programmed=False AddressNotAssigned.

Envoy still needs an address for the listener itself: a loopback one per Gateway
(`anchor_address`), which nothing outside the node reaches; the traffic arrives on the
listener's additional 0.0.0.0:<node port> address (`ProxyOptions.node_ports`).
Standalone (`propylon run`) has no node ports: the type is ignored there and the Gateway
gets a pool address as any other."""

from __future__ import annotations

import hashlib
import ipaddress

from propylon.gatewayapi import conditions as c
from propylon.gatewayapi.addresses import Allocation
from propylon.gatewayapi.gateway import GatewayState
from propylon.gatewayapi.index import Index
from propylon.resources.common import is_ip_address

# Listener anchors: 127.64.0.0/10, away from 127.0.0.1 and the addresses people pick.
_ANCHOR_NET = ipaddress.IPv4Network("127.64.0.0/10")


def service_type(state: GatewayState) -> str:
    config = state.class_state.config
    return config.spec.service.type if config is not None else "LoadBalancer"


def ready_node_addresses(index: Index) -> tuple[str, ...]:
    """The InternalIPs (else ExternalIPs) of the Ready nodes, by node name."""
    out: list[str] = []
    for name in sorted(index.nodes):
        node = index.nodes[name]
        if node.ready:
            out.extend(a for a in node.internal_addresses if a not in out and is_ip_address(a))
    return tuple(out)


def anchor_address(namespace: str, name: str, taken: set[str]) -> str:
    """A loopback address of the Gateway's own (stable: from its name; the next free one
    on the rare collision), so two Gateways' listeners on one port never clash."""
    digest = int.from_bytes(hashlib.sha256(f"{namespace}/{name}".encode()).digest()[:4], "big")
    hosts = _ANCHOR_NET.num_addresses - 2
    offset = digest % hosts
    while True:
        address = str(_ANCHOR_NET.network_address + 1 + offset)
        if address not in taken:
            taken.add(address)
            return address
        offset = (offset + 1) % hosts


def node_port_allocation(
    state: GatewayState, nodes: tuple[str, ...] | None, anchor: str
) -> tuple[Allocation, tuple[str, ...]]:
    """(allocation, status addresses) of a NodePort or ClusterIP Gateway. `nodes`: the
    Ready nodes' addresses, None where Nodes are not watched (a node agent: it serves the
    Gateway, and writes no status)."""
    kind = service_type(state)
    gw = state.gateway
    if gw.spec.addresses:
        values = ", ".join(a.value or "?" for a in gw.spec.addresses)
        return Allocation(
            None,
            c.R_ADDRESS_NOT_USABLE,
            f"spec.addresses ({values}): a static address needs a LoadBalancer Service "
            f"(LB-IPAM), and the GatewayClass's CiliumGatewayClassConfig sets "
            f"service.type {kind}",
        ), ()
    if kind != "NodePort":
        return Allocation(
            None,
            c.R_ADDRESS_NOT_ASSIGNED,
            f"service.type {kind}: the Gateway gets no address (LB-IPAM allocates for "
            "LoadBalancer Services only; use LoadBalancer or NodePort)",
        ), ()
    if nodes is None:
        return Allocation(anchor), ()
    if not nodes:
        return Allocation(
            None,
            c.R_ADDRESS_NOT_ASSIGNED,
            "service.type NodePort: no Ready node has an address to reach the node port on",
        ), ()
    return Allocation(anchor), nodes
