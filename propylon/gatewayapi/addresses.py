"""Gateway address allocation from CiliumLoadBalancerIPPools (or the default pool).

Stable: an address a Gateway already had is kept while still valid. Then explicit
requests (lb-ipam annotation or spec.addresses values) are honoured, then the rest get
the lowest free address, in (creationTimestamp, namespace, name) order."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from propylon.resources import CiliumLoadBalancerIPPool, LabelSelector, ObjectKey

IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class AddrRange:
    first: IPAddr
    last: IPAddr


@dataclass(frozen=True)
class Pool:
    name: str
    ranges: tuple[AddrRange, ...]
    selector: LabelSelector | None = None

    def contains(self, ip: IPAddr) -> bool:
        return any(
            r.first.version == ip.version and int(r.first) <= int(ip) <= int(r.last)
            for r in self.ranges
        )

    def lowest_free(self, taken: set[IPAddr]) -> IPAddr | None:
        best: IPAddr | None = None
        for r in self.ranges:
            ip = r.first
            while ip in taken and int(ip) < int(r.last):
                ip = ip + 1
            if ip in taken:
                continue
            if best is None or (ip.version, int(ip)) < (best.version, int(best)):
                best = ip
        return best


def _cidr_range(cidr: str, keep_first_last: bool) -> AddrRange | None:
    net = ipaddress.ip_network(cidr, strict=False)
    first, last = net.network_address, net.broadcast_address
    # Network and broadcast addresses are not handed out unless the pool says so
    # (Cilium's allowFirstLastIPs); /31, /32 (and v6 /127, /128) have none to skip.
    if not keep_first_last and net.num_addresses > 2:
        first, last = first + 1, last - 1
    return AddrRange(first, last)


def pools_from(
    ip_pools: Mapping[str, CiliumLoadBalancerIPPool], default_pool: Sequence[str]
) -> tuple[Pool, ...]:
    """The CiliumLoadBalancerIPPools when any exist (disabled ones give nothing), else the
    default pool."""
    if not ip_pools:
        ranges = tuple(
            r for r in (_cidr_range(cidr, False) for cidr in default_pool) if r is not None
        )
        return (Pool("default", ranges),) if ranges else ()
    out: list[Pool] = []
    for name, pool in sorted(ip_pools.items()):
        if pool.spec.disabled:
            continue
        keep = pool.spec.allow_first_last_i_ps == "Yes"
        found: list[AddrRange] = []
        for block in pool.spec.all_blocks:
            if block.cidr is not None:
                rng = _cidr_range(block.cidr, keep)
                if rng is not None:
                    found.append(rng)
            elif block.start is not None:
                start = ipaddress.ip_address(block.start)
                stop = ipaddress.ip_address(block.stop) if block.stop else start
                found.append(AddrRange(start, stop))
        out.append(Pool(name, tuple(found), pool.spec.service_selector))
    return tuple(out)


@dataclass(frozen=True)
class AddressRequest:
    gateway: ObjectKey
    # Labels of the generated Service, matched against pools' serviceSelector.
    service_labels: Mapping[str, str]
    # Explicit addresses; empty: allocate any.
    wanted: tuple[str, ...] = ()
    # spec.addresses: every one must be usable (the first is used). The lb-ipam
    # annotation: the first usable one is taken.
    require_all: bool = False


@dataclass(frozen=True)
class Allocation:
    address: str | None
    # For failures: the Programmed reason (AddressNotUsable / AddressNotAssigned).
    reason: str = ""
    message: str = ""


def _parse(value: str) -> IPAddr | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def allocate(
    requests: Sequence[AddressRequest],
    pools: Sequence[Pool],
    previous: Mapping[ObjectKey, str],
    *,
    unbindable: frozenset[str] = frozenset(),
    assign: bool = True,
) -> dict[ObjectKey, Allocation]:
    """`requests` must already be in allocation order. `assign=False`: only previous
    addresses are kept; every other Gateway waits for one (AddressNotAssigned)."""
    taken: dict[IPAddr, ObjectKey] = {}
    no_bind = {ip for value in unbindable if (ip := _parse(value)) is not None}
    result: dict[ObjectKey, Allocation] = {}

    def eligible(req: AddressRequest) -> list[Pool]:
        return [p for p in pools if p.selector is None or p.selector.matches(req.service_labels)]

    def give(req: AddressRequest, ip: IPAddr) -> None:
        taken[ip] = req.gateway
        result[req.gateway] = Allocation(str(ip))

    # 1. Keep what each Gateway already had, if it still fits its request and a pool.
    for req in requests:
        prev = _parse(previous.get(req.gateway, ""))
        if prev is None or prev in taken or prev in no_bind:
            continue
        if req.wanted and prev not in {_parse(w) for w in req.wanted}:
            continue
        if any(p.contains(prev) for p in eligible(req)):
            give(req, prev)

    if not assign:
        for req in requests:
            if req.gateway not in result:
                message = "waiting for the address the operator assigns"
                result[req.gateway] = Allocation(None, "AddressNotAssigned", message)
        return result

    # 2. Explicit requests.
    for req in requests:
        if req.gateway in result or not req.wanted:
            continue
        problems: list[str] = []
        usable: list[IPAddr] = []
        for want in req.wanted:
            ip = _parse(want)
            if ip is None:
                problems.append(f"{want} is not an IP address")
            elif ip in taken:
                problems.append(f"{want} is already used by Gateway {_ns_name(taken[ip])}")
            elif ip in no_bind:
                problems.append(f"{want} cannot be bound on this host (no interface has it)")
            elif not any(p.contains(ip) for p in eligible(req)):
                names = ", ".join(p.name for p in eligible(req)) or "none"
                problems.append(f"{want} is not in any usable IP pool (pools: {names})")
            else:
                usable.append(ip)
        if usable and not (req.require_all and problems):
            for ip in usable[1:] if req.require_all else ():
                taken[ip] = req.gateway  # reserved: the Gateway asked for it
            give(req, usable[0])
        else:
            result[req.gateway] = Allocation(None, "AddressNotUsable", "; ".join(problems))

    # 3. Everyone else gets the lowest free address.
    for req in requests:
        if req.gateway in result:
            continue
        candidates = [ip for p in eligible(req) if (ip := p.lowest_free(set(taken) | no_bind))]
        if not candidates:
            names = ", ".join(p.name for p in eligible(req)) or "none"
            result[req.gateway] = Allocation(
                None, "AddressNotAssigned", f"no free address in the IP pools (pools: {names})"
            )
            continue
        give(req, min(candidates, key=lambda ip: (ip.version, int(ip))))
    return result


def _ns_name(key: ObjectKey) -> str:
    return f"{key.namespace}/{key.name}"
