"""The dev cluster's network: a bridge in the host namespace (the outside world and the API
server's address) and one network namespace per node, each with a bridge for its pods.

Every address comes from 198.18.0.0/15 (RFC 2544, never routed) on interfaces made here,
and no namespace made here has a default route: an address outside the cluster's ranges is
unreachable from a node or a pod instead of leaking onto the machine's real network.

    host   pdc-br0 198.18.0.1/24 ──veth── node-i eth0 198.18.0.(10+i)/24
                                           node-i cbr0 198.18.(16+i).1/24 ── pods

(instance 0; instance k shifts the third octet by 32*k and names things pdc-brk, pdcK-n,
ck-node-i.)
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
from dataclasses import dataclass

# Several clusters can run side by side on one machine (one per developer task), each
# with its own addresses, names and run folder: $PROPYLON_DEVCLUSTER_INSTANCE (0-5).
# Six fit the plan: instance k's /24s are 198.18.32k.0 + 0..31, its services
# 198.19.32k.0/19 (k <= 5 stays below the LB pools at 198.19.200+k.0/24).
# Instance 0 is the default, and the one CI and the README use.
INSTANCE = int(os.environ.get("PROPYLON_DEVCLUSTER_INSTANCE", "0"))
if not 0 <= INSTANCE <= 5:
    raise SystemExit("PROPYLON_DEVCLUSTER_INSTANCE must be 0 to 5")
_BASE = 32 * INSTANCE  # third octet of this instance's node subnet in 198.18.0.0/16

PREFIX = "pdc-"
NODE_PREFIX = "node-" if INSTANCE == 0 else f"c{INSTANCE}-node-"
HOST_BRIDGE = f"pdc-br{INSTANCE}"
LINK_PREFIX = "pdc-n" if INSTANCE == 0 else f"pdc{INSTANCE}-n"
HOST_ADDRESS = f"198.18.{_BASE}.1"
NODE_SUBNET = ipaddress.ip_network(f"198.18.{_BASE}.0/24")
CLUSTER_RANGE = ipaddress.ip_network("198.18.0.0/15")
SERVICE_RANGE = ipaddress.ip_network(f"198.19.{32 * INSTANCE}.0/19")
LB_POOL = ipaddress.ip_network(f"198.19.{200 + INSTANCE}.0/24")
MAX_NODES = 15  # node i's pod CIDR is 198.18.(base+16+i).0/24
LB_REFUSE_TABLE = "100"  # a node's routing table for pool addresses it does not hold


@dataclass(frozen=True)
class NodeNet:
    index: int
    name: str

    @property
    def netns(self) -> str:
        return f"{PREFIX}{self.name}"

    @property
    def host_veth(self) -> str:
        return f"{LINK_PREFIX}{self.index}"

    @property
    def ip(self) -> str:
        return f"198.18.{_BASE}.{10 + self.index}"

    @property
    def pod_cidr(self) -> str:
        return f"198.18.{_BASE + 16 + self.index}.0/24"

    @property
    def pod_gateway(self) -> str:
        return f"198.18.{_BASE + 16 + self.index}.1"


def nodes(count: int) -> list[NodeNet]:
    if not 1 <= count <= MAX_NODES:
        raise ValueError(f"--nodes must be between 1 and {MAX_NODES}")
    return [NodeNet(i, f"{NODE_PREFIX}{i}") for i in range(1, count + 1)]


def _ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    argv = ["ip", *(("-n", netns) if netns else ()), *args]
    done = subprocess.run(argv, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")
    return done.stdout


def _sysctl(netns: str, key: str, value: str) -> None:
    subprocess.run(
        ["ip", "netns", "exec", netns, "sysctl", "-qw", f"{key}={value}"],
        check=True,
        capture_output=True,
    )


def create(layout: list[NodeNet]) -> None:
    """Make the host bridge, every node's namespace and the routes between them."""
    _ip("link", "add", HOST_BRIDGE, "type", "bridge")
    _ip("addr", "add", f"{HOST_ADDRESS}/{NODE_SUBNET.prefixlen}", "dev", HOST_BRIDGE)
    _ip("link", "set", HOST_BRIDGE, "up")
    for node in layout:
        _ip("netns", "add", node.netns)
        _ip("link", "set", "lo", "up", netns=node.netns)
        veth = ("type", "veth", "peer", "name", "eth0", "netns", node.netns)
        _ip("link", "add", node.host_veth, *veth)
        _ip("link", "set", node.host_veth, "master", HOST_BRIDGE, "up")
        _ip("addr", "add", f"{node.ip}/{NODE_SUBNET.prefixlen}", "dev", "eth0", netns=node.netns)
        _ip("link", "set", "eth0", "up", netns=node.netns)
        # The cluster's whole range goes to the host (the API server, the outside world);
        # other nodes' pod ranges go straight to those nodes (below). Nothing else.
        _ip("route", "add", str(CLUSTER_RANGE), "via", HOST_ADDRESS, netns=node.netns)
        _ip("link", "add", "cbr0", "type", "bridge", netns=node.netns)
        _ip("addr", "add", f"{node.pod_gateway}/24", "dev", "cbr0", netns=node.netns)
        _ip("link", "set", "cbr0", "up", netns=node.netns)
        _sysctl(node.netns, "net.ipv4.ip_forward", "1")
        # From the host, an address of the LoadBalancer pool that this node does not hold
        # (its Gateway agent adds the ones it serves to lo: the local table, looked up
        # first) is refused, not routed back to the host to die in the loop. The load
        # balancer routes an address only to nodes holding it; this covers the moments
        # in between. Pods' own traffic (from cbr0) is routed as before.
        _ip("route", "add", "unreachable", str(LB_POOL), "table", LB_REFUSE_TABLE, netns=node.netns)
        rule = ("iif", "eth0", "to", str(LB_POOL), "table", LB_REFUSE_TABLE, "priority", "100")
        _ip("rule", "add", *rule, netns=node.netns)
        _ip("route", "add", node.pod_cidr, "via", node.ip)
    for node in layout:
        for other in layout:
            if other is not node:
                _ip("route", "add", other.pod_cidr, "via", other.ip, netns=node.netns)


def route_to_node(prefix: str, node: NodeNet) -> None:
    """Route `prefix` (e.g. a LoadBalancer address) from the host to `node`."""
    _ip("route", "replace", prefix, "via", node.ip)


def namespaces() -> list[str]:
    """This instance's network namespaces: its nodes' and their pods' (`pdc-pod-<node>-...`)."""
    prefixes = (f"{PREFIX}{NODE_PREFIX}", f"{PREFIX}pod-{NODE_PREFIX}")
    names = []
    for line in _ip("netns", "list", check=False).splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(prefixes):
            names.append(name)
    return names


def destroy() -> list[str]:
    """Remove every namespace and host link this instance made (its node namespaces, the
    pod namespaces its node agents name `pdc-pod-<node>-...`, its bridge and veths);
    return what was removed. Safe to call when nothing is there."""
    removed: list[str] = []
    for name in namespaces():
        _ip("netns", "delete", name, check=False)
        removed.append(name)
    for line in _ip("-o", "link", "show", check=False).splitlines():
        parts = line.split(":", 2)
        if len(parts) < 2:
            continue
        name = parts[1].strip().split("@")[0]
        if name == HOST_BRIDGE or name.startswith(LINK_PREFIX):
            _ip("link", "delete", name, check=False)
            removed.append(name)
    # The load balancer's, if it could not remove it (killed): tied to no link.
    if _ip("route", "show", "type", "unreachable", str(LB_POOL), check=False).strip():
        _ip("route", "del", "unreachable", str(LB_POOL), check=False)
        removed.append(f"route unreachable {LB_POOL}")
    return removed


def is_up() -> bool:
    return bool(_ip("link", "show", HOST_BRIDGE, check=False).strip())
