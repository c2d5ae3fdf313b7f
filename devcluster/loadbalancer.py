"""The dev cluster's external load balancer, in the host namespace (the "cloud").

Kubernetes leaves LoadBalancer Services to something outside the cluster: here, this
process. It watches Services of type LoadBalancer and routes each address in
`status.loadBalancer.ingress` (the Gateway controller's LB-IPAM writes it) from the host to
the nodes that should receive it, as a cloud load balancer would forward to node ports:

- `externalTrafficPolicy: Cluster`: every Ready node;
- `externalTrafficPolicy: Local` with a `healthCheckNodePort`: the nodes whose
  `http://<node>:<healthCheckNodePort>/healthz` answers 200, checked every second; a node
  that fails is taken out, and back in once it passes.

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
    # A multipath route continues on indented `nexthop` lines: only first words count.
    return {
        line.split()[0].split("/")[0]
        for line in done.stdout.splitlines()
        if line.strip() and not line[0].isspace()
    }


class Balancer:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.lock = threading.Lock()
        self.targets: dict[str, Target] = {}
        self.nodes: list[str] = []
        self.applied: dict[str, list[str]] = {}
        self.stopping = threading.Event()

    def refresh(self) -> None:
        targets = _targets(self.client.list(Service, namespace="*"))
        nodes = _node_ips(self.client.list(Node))
        with self.lock:
            self.targets, self.nodes = targets, nodes
        self.apply()

    def apply(self) -> None:
        with self.lock:
            targets, nodes = dict(self.targets), list(self.nodes)
        desired: dict[str, list[str]] = {}
        for address, target in targets.items():
            if target.local and target.health_port:
                port = target.health_port
                desired[address] = [ip for ip in nodes if _healthy(ip, port)]
            else:
                desired[address] = nodes
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
    client = Client(KubeConfig.from_file(args.kubeconfig), field_manager="devcluster-lb")
    balancer = Balancer(client)

    def stop(_signum: int, _frame: object) -> None:
        balancer.stopping.set()
        for address in _routed():
            _set_route(address, [])
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=balancer.health_forever, daemon=True).start()
    balancer.watch_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
