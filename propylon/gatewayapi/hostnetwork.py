"""gatewayAPI.hostNetwork in Kubernetes: a Gateway's listeners bind 0.0.0.0:<port> on the
nodes that `nodes.matchLabels` selects, so its addresses are those nodes' addresses
(not an LB-IPAM one, and there is no LoadBalancer Service)."""

from __future__ import annotations

from collections.abc import Mapping

from propylon.gatewayapi import conditions as c
from propylon.gatewayapi.addresses import Allocation
from propylon.gatewayapi.index import Index
from propylon.resources.common import is_ip_address


def node_addresses(index: Index, match_labels: Mapping[str, str]) -> tuple[str, ...] | None:
    """The addresses of the selected nodes (every node when `match_labels` is empty),
    by node name; None when no Node is known at all (standalone: this machine)."""
    if not index.nodes:
        return None
    out: list[str] = []
    for name in sorted(index.nodes):
        node = index.nodes[name]
        labels = node.metadata.labels
        if all(labels.get(k) == v for k, v in match_labels.items()):
            out.extend(a for a in node.internal_addresses if a not in out and is_ip_address(a))
    return tuple(out)


def node_allocation(addresses: tuple[str, ...], match_labels: Mapping[str, str]) -> Allocation:
    if addresses:
        return Allocation(addresses[0])
    wanted = ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))
    return Allocation(
        None,
        c.R_ADDRESS_NOT_ASSIGNED,
        f"gatewayAPI.hostNetwork: no node matches nodes.matchLabels ({wanted or 'any'})",
    )
