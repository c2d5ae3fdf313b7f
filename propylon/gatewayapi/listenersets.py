"""ListenerSets (GEP-1713): which may attach to which Gateway, their listeners merged
into the Gateway's, conflicts settled by precedence, and their status.

Precedence: the Gateway's own listeners, then ListenerSets oldest first, then by
namespace/name. A ListenerSet listener that shares a port with an earlier listener of
another protocol family on the same transport (ProtocolConflict), or a port, family and
hostname (HostnameConflict; TCP and UDP have no hostname), loses: Accepted=False and
Conflicted=True for that reason; the earlier listener keeps serving. Listeners within
one ListenerSet are settled the same way, in their order. A ListenerSet is accepted
while one of its listeners is valid (accepted, not conflicted, references resolved);
only an accepted ListenerSet's listeners reach the data plane and count in the
Gateway's `attachedListenerSets`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from propylon.gatewayapi import conditions as c
from propylon.gatewayapi.gateway import GatewayState
from propylon.gatewayapi.index import Index, NsName, age_key
from propylon.gatewayapi.listeners import (
    ListenerState,
    _family,
    evaluate_listeners,
    transport,
)
from propylon.resources import GATEWAY_GROUP, ListenerSet, ObjectKey
from propylon.values import Values

R_NOT_ALLOWED = "NotAllowed"
R_PARENT_NOT_ACCEPTED = "ParentNotAccepted"
R_PENDING = "Pending"


@dataclass
class ListenerSetState:
    listener_set: ListenerSet
    gateway: GatewayState
    listeners: list[ListenerState] = field(default_factory=list)
    accepted: bool = False
    reason: str = c.R_ACCEPTED
    message: str = ""

    @property
    def key(self) -> ObjectKey:
        return self.listener_set.key

    def status(self) -> dict[str, Any]:
        gen = self.listener_set.metadata.generation
        gw = self.gateway.gateway.metadata
        where = f"Gateway {gw.namespace}/{gw.name}"
        accepted = c.condition(c.ACCEPTED, self.accepted, self.reason, self.message, gen)
        if not self.accepted:
            programmed = c.condition(c.PROGRAMMED, False, self.reason, self.message, gen)
        elif self.gateway.programmed:
            programmed = c.condition(
                c.PROGRAMMED, True, c.R_PROGRAMMED, f"Listeners are programmed on {where}", gen
            )
        else:
            programmed = c.condition(
                c.PROGRAMMED, False, R_PENDING, f"{where} is not programmed (no address)", gen
            )
        out: dict[str, Any] = {"conditions": [accepted, programmed]}
        if self.listeners:
            out["listeners"] = [li.status(gen) for li in self.listeners]
            if self.listener_set.kind == "XListenerSet":
                # v1alpha1's entries carry (and its CRD requires) the listener's port.
                for entry, li in zip(out["listeners"], self.listeners, strict=True):
                    entry["port"] = li.spec.port
        return out


def _valid(li: ListenerState) -> bool:
    return li.usable and li.refs_reason == c.R_RESOLVED_REFS


def _allows(index: Index, state: GatewayState, namespace: str) -> tuple[bool, str]:
    gw = state.gateway
    allowed = gw.spec.allowed_listeners
    frm = allowed.namespaces.from_ if allowed is not None else "None"
    where = f"Gateway {gw.metadata.namespace}/{gw.metadata.name}"
    if frm == "All":
        return True, ""
    if frm == "Same":
        ok = namespace == gw.metadata.namespace
        return ok, f"{where} allows ListenerSets from its own namespace only (from: Same)"
    if frm == "Selector":
        selector = allowed.namespaces.selector if allowed is not None else None
        ok = selector is not None and selector.matches(index.namespace_labels(namespace))
        return ok, f"namespace {namespace} is not selected by {where} (from: Selector)"
    return False, f"{where} allows no ListenerSets (spec.allowedListeners.namespaces.from: None)"


def _where(li: ListenerState) -> str:
    owner = li.owner or li.gateway
    return f'listener "{li.name}" of {owner.kind} {owner.metadata.namespace}/{owner.metadata.name}'


class TakenPorts:
    """The listeners that hold a Gateway's ports so far, by (port, transport): all of
    one protocol family (a listener of another family lost), and by hostname. A lookup
    costs the same however many listeners a Gateway has."""

    def __init__(self, listeners: list[ListenerState]) -> None:
        self.by_port: dict[tuple[int, str], tuple[ListenerState, dict[str, ListenerState]]] = {}
        for li in listeners:
            self.take(li)

    def take(self, li: ListenerState) -> None:
        _, hosts = self.by_port.setdefault((li.spec.port, transport(li.spec.protocol)), (li, {}))
        hosts.setdefault(li.spec.hostname or "*", li)

    def conflict(self, li: ListenerState) -> tuple[str, str] | None:
        port, protocol = li.spec.port, li.spec.protocol
        held = self.by_port.get((port, transport(protocol)))  # a UDP port is not a TCP one
        if held is None:
            return None
        first, hosts = held
        family = _family(protocol)
        if _family(first.spec.protocol) != family:
            return c.R_PROTOCOL_CONFLICT, (
                f"port {port} is taken by {_where(first)} with protocol "
                f"{first.spec.protocol}, which has precedence"
            )
        if family in ("tcp", "udp"):  # no hostnames: one listener per port and protocol
            return c.R_HOSTNAME_CONFLICT, (
                f"port {port} ({protocol}) is taken by {_where(first)}, which has precedence"
            )
        host = li.spec.hostname or "*"
        other = hosts.get(host)
        if other is not None:
            return c.R_HOSTNAME_CONFLICT, (
                f"port {port} and hostname {host} are taken by {_where(other)}, "
                "which has precedence"
            )
        return None


def attach_listener_sets(
    index: Index, gateways: dict[NsName, GatewayState], values: Values
) -> dict[ObjectKey, ListenerSetState]:
    """Evaluate every ListenerSet whose parent is one of `gateways` (the others are not
    ours: no status); the listeners of accepted ones are appended to their Gateway's
    `listeners` (after its own, in precedence order)."""
    out: dict[ObjectKey, ListenerSetState] = {}
    taken = {
        name: TakenPorts([li for li in state.listeners if li.accepted and not li.conflicted_reason])
        for name, state in gateways.items()
    }
    attached: dict[NsName, int] = dict.fromkeys(gateways, 0)
    for ls in sorted(index.listener_sets.values(), key=age_key):
        ref = ls.spec.parent_ref
        if ref.group != GATEWAY_GROUP or ref.kind != "Gateway":
            continue
        gw_name = (ref.namespace or ls.metadata.namespace, ref.name)
        gw_state = gateways.get(gw_name)
        if gw_state is None:
            continue
        state = ListenerSetState(ls, gw_state)
        out[ls.key] = state
        where = f"Gateway {gw_name[0]}/{gw_name[1]}"
        allowed, why = _allows(index, gw_state, ls.metadata.namespace)
        if not allowed:
            state.reason, state.message = R_NOT_ALLOWED, why
            continue
        if not gw_state.accepted:
            state.reason = R_PARENT_NOT_ACCEPTED
            state.message = f"{where} is not accepted: {gw_state.accepted_message}"
            continue
        state.listeners = evaluate_listeners(index, gw_state.gateway, values, owner=ls)
        ports = taken[gw_name]
        mine = TakenPorts([])  # its own later listeners lose to it too
        for li in state.listeners:
            found = ports.conflict(li) or mine.conflict(li)
            if found is not None:
                reason, message = found
                li.conflicted_reason, li.conflicted_message = reason, message
                li.accepted, li.accepted_reason, li.accepted_message = False, reason, message
            elif li.accepted:
                mine.take(li)
        valid = [li for li in state.listeners if _valid(li)]
        invalid = [li.name for li in state.listeners if not _valid(li)]
        if not valid:
            state.reason = c.R_LISTENERS_NOT_VALID
            state.message = f"no listener is valid: {', '.join(invalid)}"
            continue
        state.accepted = True
        if invalid:
            state.reason = c.R_LISTENERS_NOT_VALID
            state.message = f"Accepted by {where}, but some listeners are not valid: " + ", ".join(
                invalid
            )
        else:
            state.reason, state.message = c.R_ACCEPTED, f"Accepted by {where}"
        for li in state.listeners:
            if li.accepted:  # only an accepted ListenerSet's listeners hold ports
                ports.take(li)
        gw_state.listeners.extend(state.listeners)
        attached[gw_name] += 1
    for name, gw_state in gateways.items():
        gw_state.attached_listener_sets = attached[name]
    return out
