"""CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy -> flat rules, one per
(policy rule, direction, entry, toPorts entry)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from propylon.model import HttpRule
from propylon.policy.identity import Identity, Selector, scoped
from propylon.resources import CiliumClusterwideNetworkPolicy, CiliumNetworkPolicy
from propylon.resources.ciliumpolicy import PolicyRule, PortProtocol

Direction = Literal["ingress", "egress"]
AnyPolicy = CiliumNetworkPolicy | CiliumClusterwideNetworkPolicy

_WORLD = frozenset({"world", "world-ipv4", "world-ipv6"})


@dataclass(frozen=True, slots=True)
class CidrSet:
    cidr: str
    excepts: tuple[str, ...] = ()

    def contains(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        if ip not in ipaddress.ip_network(self.cidr):
            return False
        return not any(ip in ipaddress.ip_network(e) for e in self.excepts)


@dataclass(frozen=True, slots=True)
class Peers:
    """The other end of a rule. `anyone`: the rule named no peer (an L4-only rule)."""

    anyone: bool = False
    endpoints: tuple[Selector, ...] = ()
    entities: frozenset[str] = frozenset()
    cidrs: tuple[CidrSet, ...] = ()

    def matches(self, peer: Identity) -> bool:
        if self.anyone or "all" in self.entities:
            return True
        if peer.in_cluster and "cluster" in self.entities:
            return True
        if peer.kind == "ingress" and "ingress" in self.entities:
            return True
        if peer.kind == "world":
            if self.entities & _WORLD:
                return _family_ok(self.entities, peer.address)
            # CIDR rules match addresses outside the cluster only (a pod has its identity).
            return peer.address is not None and any(c.contains(peer.address) for c in self.cidrs)
        return any(s.matches(peer) for s in self.endpoints)


def _family_ok(entities: frozenset[str], address: str | None) -> bool:
    if "world" in entities or address is None:
        return True
    v6 = ipaddress.ip_address(address).version == 6
    return ("world-ipv6" if v6 else "world-ipv4") in entities


@dataclass(frozen=True, slots=True)
class Rule:
    """`ports`: (low, high, protocol) ranges, None: every port. `http`: None means any
    request; otherwise the request must match one of them. Deny rules have no `http`."""

    name: str  # e.g. "CiliumClusterwideNetworkPolicy/allow-cidr spec.ingress[0]"
    policy: str  # "CiliumClusterwideNetworkPolicy/allow-cidr"
    selector: Selector
    direction: Direction
    deny: bool
    peers: Peers
    ports: tuple[tuple[int, int, str], ...] | None = None
    http: tuple[HttpRule, ...] | None = None

    def port_matches(self, port: int, protocol: str = "TCP") -> bool:
        if self.ports is None:
            return True
        return any(lo <= port <= hi and p in ("ANY", protocol) for lo, hi, p in self.ports)


@dataclass(frozen=True, slots=True)
class Section:
    """A policy rule's presence in one direction: whether it puts the endpoints it
    selects into default deny there."""

    policy: str
    selector: Selector
    direction: Direction
    default_deny: bool


def policy_name(policy: AnyPolicy) -> str:
    meta = policy.metadata
    where = f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name
    return f"{policy.kind}/{where}"


def _ports(ports: Iterable[PortProtocol]) -> tuple[tuple[int, int, str], ...] | None:
    found = tuple((p.low, p.high, p.protocol) for p in ports)
    return found or None


def _http(rules: Iterable[object]) -> tuple[HttpRule, ...]:
    out = []
    for r in rules:
        out.append(
            HttpRule(
                method=getattr(r, "method", None),
                path=getattr(r, "path", None),
                host=getattr(r, "host", None),
                headers=r.header_requirements(),  # type: ignore[attr-defined]
            )
        )
    return tuple(out)


def flatten(policy: AnyPolicy) -> tuple[list[Rule], list[Section]]:
    namespace = policy.metadata.namespace if policy.kind == "CiliumNetworkPolicy" else None
    name = policy_name(policy)
    rules: list[Rule] = []
    sections: list[Section] = []
    for path, spec in policy.rules:
        if spec.endpoint_selector is None:
            continue  # a node (host) policy: no Gateway traffic is subject to it
        selector = scoped(spec.endpoint_selector, namespace)
        for direction in ("ingress", "egress"):
            section = _section(spec, direction)
            if section is not None:
                sections.append(Section(name, selector, direction, section))
        rules.extend(_rules(spec, path, name, selector, namespace))
    return rules, sections


def _section(spec: PolicyRule, direction: Direction) -> bool | None:
    allow = spec.ingress if direction == "ingress" else spec.egress
    deny = spec.ingress_deny if direction == "ingress" else spec.egress_deny
    if not allow and not deny:
        return None
    flag = spec.enable_default_deny
    value = None if flag is None else getattr(flag, direction)
    return True if value is None else value


def _rules(
    spec: PolicyRule, path: str, name: str, selector: Selector, namespace: str | None
) -> Iterable[Rule]:
    groups: tuple[tuple[Direction, bool, str, Sequence[object] | None], ...] = (
        ("ingress", False, "ingress", spec.ingress),
        ("ingress", True, "ingressDeny", spec.ingress_deny),
        ("egress", False, "egress", spec.egress),
        ("egress", True, "egressDeny", spec.egress_deny),
    )
    for direction, deny, field, entries in groups:
        for i, entry in enumerate(entries or ()):
            peers = _peers(entry, namespace)
            here = f"{name} {path}.{field}[{i}]"
            to_ports = list(getattr(entry, "to_ports", None) or ())
            if not to_ports:
                if peers.anyone:
                    # `- {}`: names no peer and no port: it allows (or denies) nothing.
                    continue
                yield Rule(here, name, selector, direction, deny, peers)
                continue
            for j, pr in enumerate(to_ports):
                ports = _ports(pr.ports)
                l7 = getattr(getattr(pr, "rules", None), "http", None)
                yield Rule(
                    f"{here}.toPorts[{j}]",
                    name,
                    selector,
                    direction,
                    deny,
                    peers,
                    ports,
                    None if deny or not l7 else _http(l7),
                )


def _peers(entry: object, namespace: str | None) -> Peers:
    endpoints = getattr(entry, "endpoints", None) or ()
    entities = getattr(entry, "entities", None) or ()
    cidrs = [CidrSet(c) for c in getattr(entry, "cidr", None) or ()]
    cidrs += [CidrSet(c.cidr, tuple(c.except_)) for c in getattr(entry, "cidr_set", None) or ()]
    if not endpoints and not entities and not cidrs:
        return Peers(anyone=True)
    return Peers(
        endpoints=tuple(scoped(s, namespace) for s in endpoints),
        entities=frozenset(entities),
        cidrs=tuple(cidrs),
    )
