"""Which Gateway addresses this host can bind (the shell's half of address usability).

A pool may hand out an address no local interface has (a CiliumLoadBalancerIPPool written
for a cluster, or `spec.addresses: 172.18.0.140` copied from one). Envoy would reject the
listener; we find out first, with a bind probe, so the Gateway gets `AddressNotUsable`
and the other Gateways' listeners are not held up by a rejected update.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable


def can_bind(address: str) -> bool:
    """True unless binding `address` fails with "cannot assign requested address"."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    except ValueError:
        return False
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError as exc:
            return exc.errno != errno.EADDRNOTAVAIL
    return True


class BindProbe:
    """Remembers unbindable addresses and re-probes them, so an interface that gains the
    address later is noticed on the next reconcile."""

    def __init__(self) -> None:
        self.unbindable: frozenset[str] = frozenset()

    def refresh(self) -> bool:
        """Re-probe the known-unbindable addresses; True if any became bindable."""
        still = frozenset(a for a in self.unbindable if not can_bind(a))
        changed = still != self.unbindable
        self.unbindable = still
        return changed

    def check(self, addresses: Iterable[str]) -> bool:
        """Probe `addresses`; True if any of them is newly found unbindable."""
        bad = {a for a in addresses if a not in self.unbindable and not can_bind(a)}
        if bad:
            self.unbindable |= bad
        return bool(bad)
