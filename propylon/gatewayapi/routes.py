"""Route attachment: parentRefs -> Gateway listeners, with per-parent status."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from propylon.gatewayapi import conditions as c
from propylon.gatewayapi.gateway import GatewayState
from propylon.gatewayapi.hostnames import intersect
from propylon.gatewayapi.index import Index, NsName
from propylon.gatewayapi.listeners import ListenerState
from propylon.gatewayapi.listenersets import ListenerSetState
from propylon.resources import (
    GATEWAY_GROUP,
    LISTENER_SET_GROUPS,
    GRPCRoute,
    HTTPRoute,
    ObjectKey,
    ParentReference,
    TCPRoute,
    TLSRoute,
    UDPRoute,
)

AnyRoute = HTTPRoute | GRPCRoute | TLSRoute | TCPRoute | UDPRoute
#: Routes of TCP and UDP listeners, which have no hostnames.
StreamRoute = TCPRoute | UDPRoute


@dataclass(frozen=True, slots=True)
class Attachment:
    route: AnyRoute
    listener: ListenerState
    hostnames: tuple[str, ...]


@dataclass
class ParentResult:
    ref: ParentReference
    accepted: bool
    reason: str
    message: str

    def status(self, generation: int, refs_reason: str, refs_message: str) -> dict[str, Any]:
        return {
            "parentRef": self.ref.model_dump(by_alias=True, exclude_none=True, mode="json"),
            "controllerName": c.CONTROLLER_NAME,
            "conditions": [
                c.condition(c.ACCEPTED, self.accepted, self.reason, self.message, generation),
                c.condition(
                    c.RESOLVED_REFS,
                    refs_reason == c.R_RESOLVED_REFS,
                    refs_reason,
                    refs_message,
                    generation,
                ),
            ],
        }


def _listener_list(listeners: list[ListenerState]) -> str:
    return ", ".join(li.name for li in listeners)


@dataclass(frozen=True)
class Parent:
    """What a parentRef names, as attachment sees it: a Gateway's own listeners, or a
    ListenerSet's."""

    where: str  # "Gateway ns/name", "ListenerSet ns/name"
    accepted: bool
    message: str  # why not, when not accepted
    listeners: list[ListenerState]


def _parent(
    gateways: dict[NsName, GatewayState],
    listener_sets: Mapping[ObjectKey, ListenerSetState],
    ref: ParentReference,
    route_ns: str,
) -> Parent | None:
    """The parent `ref` names, if it is ours (else the route has no status for it).
    A Gateway parentRef reaches only the Gateway's own listeners, a ListenerSet one
    only that ListenerSet's (GEP-1713)."""
    ns = ref.namespace or route_ns
    if ref.group == GATEWAY_GROUP and ref.kind == "Gateway":
        state = gateways.get((ns, ref.name))
        if state is None:
            return None
        return Parent(
            f"Gateway {ns}/{ref.name}",
            state.accepted,
            state.accepted_message,
            state.own_listeners,
        )
    if LISTENER_SET_GROUPS.get(ref.kind) != ref.group:
        return None
    ls = listener_sets.get(ObjectKey(ref.kind, ns, ref.name))
    if ls is None:
        return None
    return Parent(f"{ref.kind} {ns}/{ref.name}", ls.accepted, ls.message, ls.listeners)


def attach_route(
    index: Index,
    gateways: dict[NsName, GatewayState],
    route: AnyRoute,
    listener_sets: Mapping[ObjectKey, ListenerSetState] | None = None,
) -> tuple[list[ParentResult], list[Attachment]]:
    """Status entries for the parentRefs that point at our Gateways (or ListenerSets
    attached to them), and attachments."""
    results: list[ParentResult] = []
    attachments: list[Attachment] = []
    route_ns = route.metadata.namespace
    for ref in route.spec.parent_refs:
        parent = _parent(gateways, listener_sets or {}, ref, route_ns)
        if parent is None:
            continue  # not a parent of ours (or none at all): not ours to report on
        where = parent.where
        if not parent.accepted:
            results.append(
                ParentResult(
                    ref,
                    False,
                    c.R_NO_MATCHING_PARENT,
                    f"{where} is not accepted: {parent.message}",
                )
            )
            continue
        candidates = parent.listeners
        if ref.section_name is not None:
            candidates = [li for li in candidates if li.name == ref.section_name]
        if ref.port is not None:
            candidates = [li for li in candidates if li.spec.port == ref.port]
        if not candidates:
            if ref.section_name is not None and ref.port is not None:
                what = f"no listener named {ref.section_name!r} with port {ref.port}"
            elif ref.section_name is not None:
                what = f'no listener named "{ref.section_name}"'
            else:
                what = f"no listener with port {ref.port}"
            listing = (
                ", ".join(f"{li.name} ({li.spec.port})" for li in parent.listeners)
                if ref.port
                else _listener_list(parent.listeners)
            )
            results.append(
                ParentResult(
                    ref, False, c.R_NO_MATCHING_PARENT, f"{what} on {where} (listeners: {listing})"
                )
            )
            continue
        allowed: list[ListenerState] = []
        refusals: list[str] = []
        for li in candidates:
            if not li.usable:
                why = li.conflicted_message or li.accepted_message
                refusals.append(f"listener {li.name} is not valid ({why})")
            elif route.kind not in li.supported_kinds:
                kinds = ", ".join(li.supported_kinds) or "none"
                refusals.append(f"listener {li.name} does not allow {route.kind} (allows: {kinds})")
            elif not li.allows_namespace(index, route_ns):
                frm = li.spec.allowed_routes.namespaces.from_
                refusals.append(
                    f"listener {li.name} does not allow routes from namespace {route_ns}"
                    f" (from: {frm})"
                )
            else:
                allowed.append(li)
        if not allowed:
            results.append(
                ParentResult(ref, False, c.R_NOT_ALLOWED_BY_LISTENERS, "; ".join(refusals))
            )
            continue
        if isinstance(route, StreamRoute):
            attachments.extend(Attachment(route, li, ()) for li in allowed)
            results.append(ParentResult(ref, True, c.R_ACCEPTED, f"Accepted by {where}"))
            continue
        matched = False
        for li in allowed:
            hosts = intersect(li.spec.hostname, route.spec.hostnames)
            if hosts:
                matched = True
                attachments.append(Attachment(route, li, hosts))
        if not matched:
            listing = ", ".join(f"{li.name}: {li.spec.hostname or '*'}" for li in allowed)
            results.append(
                ParentResult(
                    ref,
                    False,
                    c.R_NO_MATCHING_LISTENER_HOSTNAME,
                    f"no hostname of the route matches a listener hostname ({listing})",
                )
            )
            continue
        results.append(ParentResult(ref, True, c.R_ACCEPTED, f"Accepted by {where}"))
    return results, attachments
