"""What `propylon run` is asked to do, parsed and validated by the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from propylon.values import Values

# The standalone IP pool: Gateways without a CiliumLoadBalancerIPPool get loopback
# addresses from here, so every Gateway has its own address and port 80 stays free for each.
DEFAULT_POOL: tuple[str, ...] = ("127.10.0.0/16",)


class RunError(Exception):
    """Why `propylon run` cannot start or go on, in one line for the user."""


@dataclass(frozen=True)
class RunOptions:
    paths: tuple[Path, ...]
    state_dir: Path
    values: Values = field(default_factory=Values)
    envoy_binary: Path | None = None
    log_level: str = "info"
    admin_port: int | None = None
    default_pool: tuple[str, ...] = DEFAULT_POOL
    node_id: str = "propylon-standalone"
    metrics_address: str | None = None  # HOST:PORT for /metrics; None: not served
    crds: tuple[Path, ...] = ()  # CRD files: objects of their kinds are validated against them
