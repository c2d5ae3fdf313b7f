"""The dev cluster's external load balancer, in the host namespace (the "cloud").

Kubernetes leaves LoadBalancer Services to something outside the cluster: here, this
process. It watches Services of type LoadBalancer and routes each address in
`status.loadBalancer.ingress` (the Gateway controller's LB-IPAM writes it) from the host to
the nodes that should receive it, as a cloud load balancer would forward to node ports:

- only nodes that hold the address: a node serves a Gateway's address by adding it to
  its loopback (the Gateway agent does, propylon/kube/addresses.py), which is what this
  balancer checks every second, as a BGP router learns the /32 only from the nodes that
  announce it (Cilium's BGP control plane). A node without it (no agent there yet, an
  agent restarting, a node another chart install or label left out) would bounce the
  packets back to the host and they would die in the loop: a connection that hangs
  instead of one that fails;
- among them, `externalTrafficPolicy: Cluster`: every Ready node;
  `externalTrafficPolicy: Local` with a `healthCheckNodePort`: the nodes whose
  `http://<node>:<healthCheckNodePort>/healthz` answers 200; a node that fails is taken
  out, and back in once it passes.

Between a node losing the address and the next check, its namespace refuses (ICMP
unreachable, network.py) what arrives from the host for an address of the pool it does
not hold, and the host refuses an address of the pool that no node holds: a client sees
"no route to host" at once, never a silent drop.

Several nodes become one multipath route (the kernel hashes flows over them, L4 hash
policy). Only addresses inside the cluster's LoadBalancer pool are ever routed.

    python -m devcluster.loadbalancer --kubeconfig PATH
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lightkube import Client, KubeConfig
from lightkube.resources.core_v1 import Node, Service

from devcluster import network

log = logging.getLogger("devcluster.loadbalancer")

HEALTH_INTERVAL_S = 1.0
HEALTH_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class Target:
    address: str
    local: bool
    health_port: int | None


def _targets(services: Iterable[Any]) -> dict[str, Target]:
    wanted: dict[str, Target] = {}
    for service in services:
        spec, status = service.spec, service.status
        if spec is None or spec.type != "LoadBalancer" or status is None:
            continue
        ingress = (status.loadBalancer.ingress if status.loadBalancer else None) or []
        for entry in ingress:
            if not entry.ip or ipaddress.ip_address(entry.ip) not in network.LB_POOL:
                continue
            local = spec.externalTrafficPolicy == "Local"
            wanted[entry.ip] = Target(entry.ip, local, spec.healthCheckNodePort)
    return wanted


def _held_addresses(node_ip: str) -> set[str] | None:
    """The addresses on the interfaces of the node with `node_ip` (its namespace); None
    if that is not a node of this cluster or its namespace cannot be read."""
    netns = _NETNS_BY_IP.get(node_ip)
    if netns is None:
        return None
    done = subprocess.run(["ip", "-n", netns, "-o", "addr", "show"], capture_output=True, text=True)
    if done.returncode != 0:
        return None
    # "1: lo    inet 198.19.203.7/32 scope global lo ..." -> 198.19.203.7
    words = (line.split() for line in done.stdout.splitlines())
    return {w[3].split("/")[0] for w in words if len(w) > 3 and w[2] in ("inet", "inet6")}


_NETNS_BY_IP = {node.ip: node.netns for node in network.nodes(network.MAX_NODES)}


def _node_ips(nodes: Iterable[Any]) -> list[str]:
    ready: list[str] = []
    for node in nodes:
        conditions = (node.status.conditions if node.status else None) or []
        if not any(c.type == "Ready" and c.status == "True" for c in conditions):
            continue
        for address in (node.status.addresses or []) if node.status else []:
            if address.type == "InternalIP":
                ready.append(address.address)
    return sorted(ready)


def _healthy(node_ip: str, port: int) -> bool:
    try:
        url = f"http://{node_ip}:{port}/healthz"
        with urllib.request.urlopen(url, timeout=HEALTH_TIMEOUT_S) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def refuse_unrouted_pool() -> None:
    """Addresses of the pool that no node holds: refused on the host (no /32 route is
    more specific than this one), not sent out by its default route."""
    subprocess.run(
        ["ip", "route", "replace", "unreachable", str(network.LB_POOL)],
        check=True,
        capture_output=True,
    )


def _set_route(address: str, via: list[str]) -> None:
    prefix = f"{address}/32"
    if not via:
        subprocess.run(["ip", "route", "del", prefix], capture_output=True)
        return
    if len(via) == 1:
        hops = ["via", via[0]]
    else:
        hops = [word for ip in via for word in ("nexthop", "via", ip)]
    subprocess.run(["ip", "route", "replace", prefix, *hops], check=True, capture_output=True)


def _routed() -> set[str]:
    done = subprocess.run(
        ["ip", "route", "show", "root", str(network.LB_POOL)], capture_output=True, text=True
    )
    # A multipath route continues on indented `nexthop` lines: only first words count;
    # the pool's own `unreachable` route is not an address's.
    return {
        line.split()[0].split("/")[0]
        for line in done.stdout.splitlines()
        if line.strip() and not line[0].isspace() and not line.startswith("unreachable")
    }


class Balancer:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.lock = threading.Lock()
        self.targets: dict[str, Target] = {}
        self.nodes: list[str] = []
        self.applied: dict[str, list[str]] = {}
        self.stopping = threading.Event()
        self.apply_lock = threading.Lock()  # the watch and the health loop both apply

    def refresh(self) -> None:
        targets = _targets(self.client.list(Service, namespace="*"))
        nodes = _node_ips(self.client.list(Node))
        with self.lock:
            self.targets, self.nodes = targets, nodes
        self.apply()

    def apply(self) -> None:
        with self.apply_lock:
            self._apply()

    def _apply(self) -> None:
        with self.lock:
            targets, nodes = dict(self.targets), list(self.nodes)
        held = {ip: _held_addresses(ip) for ip in nodes} if targets else {}
        desired: dict[str, list[str]] = {}
        for address, target in targets.items():
            # A node we cannot look into (not one of ours) is trusted, as before.
            serving = [ip for ip in nodes if address in (held[ip] or {address})]
            if target.local and target.health_port:
                port = target.health_port
                desired[address] = [ip for ip in serving if _healthy(ip, port)]
            else:
                desired[address] = serving
        for address, via in desired.items():
            if self.applied.get(address) != via:
                _set_route(address, via)
                log.info("route %s via %s", address, ", ".join(via) or "(none)")
        for address in _routed() - desired.keys():
            _set_route(address, [])
            log.info("route %s removed", address)
        self.applied = desired

    def watch_forever(self) -> None:
        """Relist and rewatch Services and Nodes; survive API server restarts."""
        backoff = 0.5
        while not self.stopping.is_set():
            try:
                self.refresh()
                backoff = 0.5
                for _event, _obj in self.client.watch(Service, namespace="*"):
                    if self.stopping.is_set():
                        return
                    self.refresh()
            except Exception as error:  # the API server went away: relist after back-off
                log.warning("watch ended (%s); relisting in %.1f s", error, backoff)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def health_forever(self) -> None:
        while not self.stopping.wait(HEALTH_INTERVAL_S):
            with contextlib.suppress(Exception):
                self.nodes = _node_ips(self.client.list(Node))
                self.apply()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devcluster.loadbalancer")
    parser.add_argument("--kubeconfig", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # Hash flows by ports too, so different connections spread over the nodes.
    subprocess.run(["sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1"], check=False)
    refuse_unrouted_pool()
    client = Client(KubeConfig.from_file(args.kubeconfig), field_manager="devcluster-lb")
    balancer = Balancer(client)

    def stop(_signum: int, _frame: object) -> None:
        balancer.stopping.set()
        for address in _routed():
            _set_route(address, [])
        subprocess.run(["ip", "route", "del", "unreachable", str(network.LB_POOL)], check=False)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=balancer.health_forever, daemon=True).start()
    balancer.watch_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
