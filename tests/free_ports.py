"""Free loopback ports for processes the tests start (etcd, kube-apiserver, Envoy).

A port from `bind(("127.0.0.1", 0))` comes from the kernel's ephemeral range, which the
kernel keeps handing out for outgoing connections too: between our probe and the
child's own bind, a client socket may take it (CI saw kube-apiserver fail with
"address already in use"). Ports below the ephemeral range are never chosen by the
kernel, so a probed one stays free unless another test picks the same one; a random
choice per call keeps that unlikely.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_LOWEST = 20000


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A port on `host` that is free now and outside the kernel's ephemeral range."""
    high = max(_ephemeral_low(), _LOWEST + 1000)
    for _ in range(200):
        port = random.randrange(_LOWEST, high)
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port on {host} in {_LOWEST}-{high}")
