"""`Builder`: `build` with memory, so one change costs in proportion to what it touches.

`Builder().build(inputs)` gives exactly what `build(inputs)` gives (same functions, same
order); a reused Builder skips the work its previous build already did:

- The *world* (GatewayClasses, Gateways with their listeners and addresses: everything
  but routes, Services and EndpointSlices) is re-evaluated only when one of its objects
  or a build parameter (values, previous addresses, pool, unbindable addresses) changed.
  Then everything is rebuilt, as by `build`.
- Otherwise each route's outcome (`evaluate_route`: attachment, model routes, clusters,
  status) is reused while the route object is the same object and none of the Services
  or EndpointSlices its backend references name changed (a reverse index finds the
  routes to redo from the changed keys). The Index is patched, not rebuilt.
- While a BackendTLSPolicy exists, routes are not reused (their policies' ancestors
  are collected while routes resolve), only the index and the world are.

Pure: no I/O, no clock; the memory is this object, which the caller owns (one per
stream of builds, like the envoy `Translator`). Reused outcomes are the same objects as
before, so the model's unchanged routes and clusters are identical objects from build to
build (the Translator keys on that).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from propylon.gatewayapi.addresses import allocate, pools_from
from propylon.gatewayapi.backendtlspolicy import BackendTLSPolicies
from propylon.gatewayapi.build import (
    Finisher,
    RouteOutcome,
    World,
    evaluate_route,
    evaluate_world,
    finish,
)
from propylon.gatewayapi.index import SERVICE_NAME_LABEL, Index, NsName
from propylon.gatewayapi.inputs import BuildResult, Inputs
from propylon.gatewayapi.routes import AnyRoute
from propylon.gatewayapi.sharedkeys import KeyOrSet, add_key, remove_key
from propylon.resources import (
    BackendObjectReference,
    EndpointSlice,
    GRPCRoute,
    HTTPRoute,
    ObjectKey,
    Resource,
    Service,
    TCPRoute,
    TLSRoute,
    UDPRoute,
)
from propylon.resources.struct import Struct, field_values

ROUTE_KINDS = frozenset({"HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "UDPRoute"})
# Kinds a change of which does not touch the world: routes, and what backends read.
#: Kinds only network policy reads (`propylon.policy`): Gateway API semantics ignore them.
POLICY_ONLY_KINDS = frozenset({"Pod", "CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"})
LOCAL_KINDS = ROUTE_KINDS | {"Service", "EndpointSlice"} | POLICY_ONLY_KINDS


@dataclass(frozen=True, slots=True)
class _Memo:
    route: AnyRoute
    outcome: RouteOutcome | None
    # (namespace, name) of every Service it references, sorted: a tuple, not a set (a
    # one-element frozenset is 216 bytes; 5000 memos)
    services: tuple[NsName, ...]


def backend_services(route: AnyRoute) -> tuple[NsName, ...]:
    """Every Service the route can read (its backendRefs, mirrors, any nested reference),
    found by walking the spec, so a new filter with a backend reference is covered."""
    ns = route.metadata.namespace
    out: set[NsName] = set()
    # A loop over a stack, not recursion: only models and lists are visited (a call
    # per field value was most of a route's cost at start-up), and no recursive closure
    # (a reference cycle per call, which only a full collection frees).
    stack: list[Any] = [route.spec]
    while stack:
        value = stack.pop()
        if isinstance(value, Struct):
            if isinstance(value, BackendObjectReference):
                out.add((value.namespace or ns, value.name))
            stack.extend(v for v in field_values(value) if isinstance(v, _CONTAINERS))
        else:  # a list or tuple
            stack.extend(v for v in value if isinstance(v, _CONTAINERS))
    return tuple(sorted(out))


_CONTAINERS = (Struct, list, tuple)


def _slice_service(eps: Resource | None) -> NsName | None:
    if not isinstance(eps, EndpointSlice):
        return None
    svc = eps.metadata.labels.get(SERVICE_NAME_LABEL)
    return (eps.metadata.namespace, svc) if svc else None


class Builder:
    """`build` that reuses its previous build; see the module docstring."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._objects: Mapping[ObjectKey, Resource] = {}
        self._params: tuple[Any, ...] | None = None
        self._index: Index | None = None
        self._world: World | None = None
        self._finisher: Finisher | None = None  # the previous result, for `_world`
        self._memo: dict[ObjectKey, _Memo] = {}
        self._stale: set[ObjectKey] = set()  # route keys to evaluate again
        # Service -> the routes that reference it: one key, or a set of two or more (a
        # one-element set is 216 bytes; a Service per route is the common case).
        self._dependents: dict[NsName, KeyOrSet] = {}
        # The previous addresses the world's allocation is known to hold for.
        self._allocated_for: dict[ObjectKey, str] | None = None
        self.reused = 0  # routes reused by the last build (for tests and benchmarks)

    def build(self, inputs: Inputs, changed: Collection[ObjectKey] | None = None) -> BuildResult:
        """`changed`: the keys added, updated or deleted since the previous build's
        inputs (e.g. `Snapshot.changed`); found by comparing identities when None."""
        try:
            return self._build(inputs, changed)
        except BaseException:
            self._reset()  # never reuse a half-updated state
            raise

    def _build(self, inputs: Inputs, changed: Collection[ObjectKey] | None) -> BuildResult:
        objects = inputs.objects
        params = (
            inputs.values,
            inputs.default_pool,
            inputs.unbindable_addresses,
            inputs.assign_addresses,
            inputs.kubernetes,
            inputs.refused_class_configs,
        )
        if changed is None:
            changed = _diff(self._objects, objects)
        index, world = self._index, self._world
        if (
            index is None
            or world is None
            or params != self._params
            or any(key.kind not in LOCAL_KINDS for key in changed)
            # Allocation reads the world (kept only when no Gateway, pool or class
            # changed), the params and the previous addresses: only these can move it.
            or (
                inputs.previous_addresses != self._allocated_for
                and not _same_allocation(index, world, inputs)
            )
        ):
            self._reset()
            index = self._index = Index(objects)
            world = self._world = evaluate_world(index, inputs)
        else:
            self._patch(index, changed, objects)
        self._objects = objects
        self._params = params
        self._allocated_for = dict(inputs.previous_addresses)

        tls_policies = BackendTLSPolicies(index)
        if index.backend_tls_policies:
            # Routes record their policies' ancestors while they resolve: all of them,
            # in order, every time (only the index and the world are reused).
            self._memo.clear()
            self._dependents.clear()
            self._finisher = None
            outcomes = [
                evaluate_route(
                    index,
                    world.gateways,
                    _route(index, key),
                    tls_policies,
                    world.listener_sets,
                    app_protocol=world.app_protocol,
                    status_parts=world.status_parts,
                )
                for key in _route_keys(index, objects)
            ]
            self.reused = 0
            return finish(world, outcomes, tls_policies)

        finisher = self._finisher
        if finisher is None:
            finisher = self._finisher = Finisher(world)
            self._memo.clear()
            self._dependents.clear()
            stale: Iterable[ObjectKey] = _route_keys(index, objects)
        else:
            stale = sorted(self._stale)
        self._stale = set()
        changes: list[tuple[ObjectKey, RouteOutcome | None]] = []
        memo = self._memo
        for key in stale:
            entry = memo.pop(key, None)
            if entry is not None:
                self._forget(key, entry)
            route = _route_or_none(index, key)
            if route is None:
                changes.append((key, None))
                continue
            entry = _Memo(
                route,
                evaluate_route(
                    index,
                    world.gateways,
                    route,
                    tls_policies,
                    world.listener_sets,
                    app_protocol=world.app_protocol,
                    status_parts=world.status_parts,
                    key=key,
                ),
                backend_services(route),
            )
            memo[key] = entry
            for svc in entry.services:
                self._depend(svc, key)
            changes.append((key, entry.outcome))
        self.reused = len(memo) - len(changes)
        finisher.update(changes, tls_policies)
        return finisher.result(tls_policies)

    def _depend(self, svc: NsName, key: ObjectKey) -> None:
        add_key(self._dependents, svc, key)

    def _forget(self, key: ObjectKey, entry: _Memo) -> None:
        for svc in entry.services:
            remove_key(self._dependents, svc, key)

    def _invalidate(self, svc: NsName | None) -> None:
        if svc is None:
            return
        keys = self._dependents.get(svc)
        if isinstance(keys, set):
            self._stale.update(keys)
        elif keys is not None:
            self._stale.add(keys)

    def _patch(
        self, index: Index, changed: Iterable[ObjectKey], objects: Mapping[ObjectKey, Resource]
    ) -> None:
        """Bring the index up to date for changed routes, Services and EndpointSlices."""
        for key in changed:
            old, new = self._objects.get(key), objects.get(key)
            nsname = (key.namespace, key.name)
            if key.kind in ROUTE_KINDS:
                table: dict[NsName, Any] = _route_table(index, key.kind)
                if isinstance(new, HTTPRoute | GRPCRoute | TLSRoute | TCPRoute | UDPRoute):
                    table[nsname] = new
                else:
                    table.pop(nsname, None)
                self._stale.add(key)
            elif key.kind == "Service":
                if isinstance(new, Service):
                    index.services[nsname] = new
                else:
                    index.services.pop(nsname, None)
                self._invalidate(nsname)
            elif key.kind == "EndpointSlice":
                before, after = _slice_service(old), _slice_service(new)
                if before is not None:
                    kept = [s for s in index.slices.get(before, []) if s.metadata.name != key.name]
                    if kept:
                        index.slices[before] = kept
                    else:
                        index.slices.pop(before, None)
                if after is not None and isinstance(new, EndpointSlice):
                    group = [s for s in index.slices.get(after, []) if s.metadata.name != key.name]
                    group.append(new)
                    group.sort(key=lambda s: s.metadata.name)
                    index.slices[after] = group
                self._invalidate(before)
                self._invalidate(after)


def _same_allocation(index: Index, world: World, inputs: Inputs) -> bool:
    """Previous addresses are read only by address allocation: when they change but
    allocate the same addresses (the usual case: they are the addresses this world
    allocated, now reported back by the statuses), the world stays valid."""
    if world.host_network and index.nodes:
        return True  # the nodes' addresses: previous addresses play no part
    requests = [s.address_request for s in world.gateways.values() if s.address_request is not None]
    allocations = allocate(
        requests,
        pools_from(index.ip_pools, inputs.default_pool),
        inputs.previous_addresses,
        unbindable=inputs.unbindable_addresses,
        assign=inputs.assign_addresses,
    )
    return all(
        allocations.get(s.gateway.key) == s.allocation
        for s in world.gateways.values()
        if s.address_request is not None
    )


def _route_keys(index: Index, objects: Mapping[ObjectKey, Resource]) -> list[ObjectKey]:
    """The routes' keys: the key objects of `objects` themselves (the memo, the outcomes
    and the listeners' attached routes keep them; one ObjectKey per route, not two)."""
    routes = (
        *index.http_routes.values(),
        *index.grpc_routes.values(),
        *index.tls_routes.values(),
        *index.tcp_routes.values(),
        *index.udp_routes.values(),
    )
    keys = [k for k in objects if k.kind in ROUTE_KINDS and _route_or_none(index, k) is objects[k]]
    if len(keys) != len(routes):  # a key that is not its object's own: made from the object
        keys = [ObjectKey(r.kind, r.metadata.namespace, r.metadata.name) for r in routes]
    return sorted(keys)


def _route_table(index: Index, kind: str) -> dict[NsName, Any]:
    tables: dict[str, dict[NsName, Any]] = {
        "HTTPRoute": index.http_routes,
        "GRPCRoute": index.grpc_routes,
        "TLSRoute": index.tls_routes,
        "TCPRoute": index.tcp_routes,
        "UDPRoute": index.udp_routes,
    }
    return tables[kind]


def _route_or_none(index: Index, key: ObjectKey) -> AnyRoute | None:
    if key.kind not in ROUTE_KINDS:
        return None
    route: AnyRoute | None = _route_table(index, key.kind).get((key.namespace, key.name))
    return route


def _route(index: Index, key: ObjectKey) -> AnyRoute:
    route: AnyRoute = _route_table(index, key.kind)[(key.namespace, key.name)]
    return route


def _diff(
    before: Mapping[ObjectKey, Resource], after: Mapping[ObjectKey, Resource]
) -> list[ObjectKey]:
    out = [key for key, obj in after.items() if before.get(key) is not obj]
    out.extend(key for key in before if key not in after)
    return out
