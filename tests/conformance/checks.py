"""Status expectations, following conformance/utils/kubernetes/helpers.go (v1.4.1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .harness import CONTROLLER, Cluster, Failure, wait_for

GW_GROUP = "gateway.networking.k8s.io"
STATUS_TIMEOUT = 30.0

NN = tuple[str, str]  # (namespace, name)


def find_condition(conditions: Sequence[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    for cond in conditions:
        if cond.get("type") == type_:
            return cond
    return None


def condition_matches(
    conditions: Sequence[dict[str, Any]], type_: str, status: str, reason: str = ""
) -> bool:
    cond = find_condition(conditions, type_)
    if cond is None or cond.get("status") != status:
        return False
    return not reason or cond.get("reason") == reason


def conditions_match(
    actual: Sequence[dict[str, Any]], expected: Sequence[tuple[str, str, str]]
) -> bool:
    return len(actual) >= len(expected) and all(
        condition_matches(actual, t, s, r) for t, s, r in expected
    )


def latest_generation(obj: dict[str, Any], conditions: Sequence[dict[str, Any]]) -> str | None:
    gen = obj["metadata"].get("generation")
    for cond in conditions:
        if cond.get("observedGeneration") != gen:
            return f"{cond['type']} observedGeneration {cond.get('observedGeneration')} != {gen}"
    return None


def gateway_address(c: Cluster, gw: NN, listener: str | None = None, use_port: bool = True) -> str:
    """WaitForGatewayAddress: "ip:port" of the listener (named, or the first)."""

    def ready() -> str | None:
        obj = c.get("Gateway", *gw)
        if obj is None:
            return None
        listeners = obj["spec"]["listeners"]
        chosen = listeners[0]
        if listener:
            chosen = next((x for x in listeners if x["name"] == listener), chosen)
        for addr in obj.get("status", {}).get("addresses") or []:
            if addr.get("type"):
                return f"{addr['value']}:{chosen['port']}" if use_port else str(addr["value"])
        return None

    return wait_for(ready, timeout=STATUS_TIMEOUT, what=f"Gateway {gw} address")


def route_parents_accepted(
    c: Cluster,
    route: NN,
    gw: NN,
    kind: str = "HTTPRoute",
    listeners: Sequence[str | None] = (None,),
) -> None:
    """RouteMustHaveParents with one Accepted=True parent per listener name."""

    def ok() -> bool | str:
        obj = c.get(kind, *route)
        if obj is None:
            return False
        parents = obj.get("status", {}).get("parents") or []
        if len(parents) != len(listeners):
            return f"expected {len(listeners)} parents, got {parents}"
        for got in parents:  # upstream does not compare sectionName (parentsForRouteMatch)
            ref = got.get("parentRef", {})
            if got.get("controllerName") != CONTROLLER:
                return f"controllerName {got.get('controllerName')}"
            # parentsForRouteMatch compares group and kind as set (DeepEqual on pointers)
            if ref.get("group") != GW_GROUP or ref.get("kind") != "Gateway":
                return f"parentRef group/kind {ref}"
            if ref.get("name") != gw[1]:
                return f"parentRef name {ref}"
            ns = ref.get("namespace")
            if ns is not None and ns != gw[0]:
                return f"parentRef namespace {ref}"
            if route[0] != gw[0] and ns != gw[0]:
                return f"parentRef namespace required {ref}"
            if not conditions_match(got.get("conditions", []), [("Accepted", "True", "Accepted")]):
                return f"conditions {got.get('conditions')}"
        return True

    _wait_true(ok, f"{kind} {route} parents accepted by {gw}")


def _wait_true(check: Any, what: str, timeout: float = STATUS_TIMEOUT) -> None:
    last: list[Any] = [None]

    def wrapped() -> bool:
        result = check()
        if result is True:
            return True
        last[0] = result
        return False

    try:
        wait_for(wrapped, timeout=timeout, what=what, interval=0.1)
    except Failure as exc:
        raise Failure(f"{exc} (last: {last[0]})") from None


def listeners_ready(c: Cluster, gw: NN) -> None:
    expected = [("ResolvedRefs", "True", ""), ("Accepted", "True", ""), ("Programmed", "True", "")]

    def ok() -> bool | str:
        obj = c.get("Gateway", *gw)
        if obj is None:
            return False
        for ls in obj.get("status", {}).get("listeners") or []:
            if not conditions_match(ls.get("conditions", []), expected):
                return f"listener {ls['name']}: {ls.get('conditions')}"
        return True

    _wait_true(ok, f"Gateway {gw} listeners ready")


def gateway_and_routes_accepted(
    c: Cluster,
    gw: NN,
    routes: Sequence[NN],
    *,
    kind: str = "HTTPRoute",
    listeners: Sequence[str] = (),
    use_port: bool = True,
) -> str:
    """GatewayAndRoutesMustBeAccepted: returns the gateway address ("ip:port")."""
    addr = gateway_address(c, gw, listeners[0] if listeners else None, use_port)
    names: Sequence[str | None] = list(listeners) if listeners else [None]
    for route in routes:
        route_parents_accepted(c, route, gw, kind, names)
    listeners_ready(c, gw)
    c.wait_synced()
    return addr


def route_condition(
    c: Cluster, route: NN, gw: NN, type_: str, status: str, reason: str, kind: str = "HTTPRoute"
) -> None:
    """HTTPRouteMustHaveCondition: the parent status for ``gw`` has the condition."""

    def ok() -> bool | str:
        obj = c.get(kind, *route)
        if obj is None:
            return False
        parents = obj.get("status", {}).get("parents") or []
        for parent in parents:
            ref = parent.get("parentRef", {})
            same = ref.get("name") == gw[1] and ref.get("namespace", route[0]) == gw[0]
            if same and condition_matches(parent.get("conditions", []), type_, status, reason):
                return True
        return f"parents: {parents}"

    _wait_true(ok, f"{kind} {route} {type_}={status} ({reason}) for {gw}")


def route_resolved_refs_true(c: Cluster, route: NN, gw: NN) -> None:
    route_condition(c, route, gw, "ResolvedRefs", "True", "ResolvedRefs")


def gateway_condition(c: Cluster, gw: NN, type_: str, status: str, reason: str = "") -> None:
    def ok() -> bool | str:
        obj = c.get("Gateway", *gw)
        if obj is None:
            return False
        conds = obj.get("status", {}).get("conditions", [])
        return condition_matches(conds, type_, status, reason) or f"{conds}"

    _wait_true(ok, f"Gateway {gw} {type_}={status} ({reason})")


ListenerSpec = dict[str, Any]  # name, supportedKinds [(group, kind)], attachedRoutes, conditions


def gateway_listeners(c: Cluster, gw: NN, expected: Sequence[ListenerSpec]) -> None:
    """GatewayStatusMustHaveListeners (listenersMatch)."""

    def ok() -> bool | str:
        obj = c.get("Gateway", *gw)
        if obj is None:
            return False
        actual = obj.get("status", {}).get("listeners") or []
        if len(actual) != len(expected):
            return f"expected {len(expected)} listeners, got {len(actual)}"
        for want in expected:
            got = next((a for a in actual if a["name"] == want["name"]), None)
            if got is None:
                return f"listener {want['name']} missing"
            kinds = [(k.get("group", GW_GROUP), k["kind"]) for k in got.get("supportedKinds") or []]
            want_kinds = want.get("supportedKinds", [])
            if not want_kinds and kinds:
                return f"{want['name']}: expected no supportedKinds, got {kinds}"
            for k in want_kinds:
                if k not in kinds:
                    return f"{want['name']}: {k} not in {kinds}"
            if got.get("attachedRoutes") != want["attachedRoutes"]:
                attached = got.get("attachedRoutes")
                return f"{want['name']}: attachedRoutes {attached} != {want['attachedRoutes']}"
            if not conditions_match(got.get("conditions", []), want.get("conditions", [])):
                return f"{want['name']}: conditions {got.get('conditions')}"
        return True

    _wait_true(ok, f"Gateway {gw} listeners")


def route_no_accepted_parents(c: Cluster, route: NN, kind: str = "HTTPRoute") -> None:
    def ok() -> bool | str:
        obj = c.get(kind, *route)
        if obj is None:
            return False
        parents = obj.get("status", {}).get("parents") or []
        if len(parents) != 1:
            return f"expected one parent, got {parents}"
        return (
            condition_matches(parents[0].get("conditions", []), "Accepted", "False") or f"{parents}"
        )

    _wait_true(ok, f"{kind} {route} has no accepted parents")


def gateway_zero_routes(c: Cluster, gw: NN) -> None:
    def ok() -> bool | str:
        obj = c.get("Gateway", *gw)
        if obj is None:
            return False
        listeners = obj.get("status", {}).get("listeners") or []
        return all(ls.get("attachedRoutes") == 0 for ls in listeners) or f"{listeners}"

    _wait_true(ok, f"Gateway {gw} has zero attached routes")


def must_have_latest_conditions(c: Cluster, kind: str, nn: NN) -> None:
    def ok() -> bool | str:
        obj = c.get(kind, *nn)
        if obj is None:
            return False
        status = obj.get("status", {})
        conds: list[dict[str, Any]] = list(status.get("conditions", []))
        for parent in status.get("parents") or []:
            conds += parent.get("conditions", [])
        for ls in status.get("listeners") or []:
            conds += ls.get("conditions", [])
        return latest_generation(obj, conds) or True

    _wait_true(ok, f"{kind} {nn} conditions at the latest observedGeneration")
