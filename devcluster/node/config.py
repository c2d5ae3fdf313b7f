"""The node agent's settings (its command line)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

KUBELET_VERSION = "v1.36.3"


@dataclass(frozen=True)
class NodeConfig:
    name: str
    kubeconfig: Path
    node_ip: str
    pod_cidr: str
    bridge: str
    api_host: str
    api_port: int
    ca: Path  # the launcher passes it; the API client takes its CA from the kubeconfig
    state_dir: Path
    labels: dict[str, str] = field(default_factory=dict)
    # The kubelet API's serving certificate (container logs, devcluster.node.logserver);
    # without one the node serves no kubelet port.
    serving_cert: Path | None = None
    serving_key: Path | None = None
    # How often the Lease is renewed and the Ready condition refreshed (the kubelet
    # renews its Lease every 10 s; node-lifecycle waits 50 s before NotReady).
    heartbeat_seconds: float = 10.0
    lease_duration_seconds: int = 40
    # Cap on a pod's grace period when the agent itself is stopped.
    shutdown_grace_seconds: float = 10.0

    @property
    def pod_network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.pod_cidr)

    @property
    def pods_dir(self) -> Path:
        return self.state_dir / "pods"

    def netns_prefix(self) -> str:
        return f"pdc-pod-{self.name}-"
