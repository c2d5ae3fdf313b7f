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

from bisect import bisect_left, insort
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from propylon.gatewayapi.backendtlspolicy import BackendTLSPolicies
from propylon.gatewayapi.build import (
    RouteOutcome,
    World,
    evaluate_route,
    evaluate_world,
    finish,
)
from propylon.gatewayapi.index import SERVICE_NAME_LABEL, Index, NsName
from propylon.gatewayapi.inputs import BuildResult, Inputs
from propylon.gatewayapi.routes import AnyRoute
from propylon.resources import (
    BackendObjectReference,
    EndpointSlice,
    GRPCRoute,
    HTTPRoute,
    ObjectKey,
    Resource,
    Service,
    TLSRoute,
)

ROUTE_KINDS = frozenset({"HTTPRoute", "GRPCRoute", "TLSRoute"})
# Kinds a change of which does not touch the world: routes, and what backends read.
LOCAL_KINDS = ROUTE_KINDS | {"Service", "EndpointSlice"}


@dataclass(frozen=True)
class _Memo:
    route: AnyRoute
    outcome: RouteOutcome | None
    services: frozenset[NsName]  # (namespace, name) of every Service it references


def backend_services(route: AnyRoute) -> frozenset[NsName]:
    """Every Service the route can read (its backendRefs, mirrors, any nested reference),
    found by walking the spec, so a new filter with a backend reference is covered."""
    out: set[NsName] = set()
    ns = route.metadata.namespace

    def walk(value: Any) -> None:
        if isinstance(value, BackendObjectReference):
            out.add((value.namespace or ns, value.name))
        if isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    walk(route.spec)
    return frozenset(out)


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
        self._order: list[ObjectKey] = []  # route keys, sorted
        self._memo: dict[ObjectKey, _Memo] = {}
        self._dependents: dict[NsName, set[ObjectKey]] = {}
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
            dict(inputs.previous_addresses),
            inputs.default_pool,
            inputs.unbindable_addresses,
        )
        if changed is None:
            changed = _diff(self._objects, objects)
        index, world = self._index, self._world
        if (
            index is None
            or world is None
            or params != self._params
            or any(key.kind not in LOCAL_KINDS for key in changed)
        ):
            self._reset()
            index = self._index = Index(objects)
            world = self._world = evaluate_world(index, inputs)
            self._order = sorted(
                ObjectKey(r.kind, r.metadata.namespace, r.metadata.name)
                for r in (
                    *index.http_routes.values(),
                    *index.grpc_routes.values(),
                    *index.tls_routes.values(),
                )
            )
        else:
            self._patch(index, changed, objects)
        self._objects = objects
        self._params = params

        tls_policies = BackendTLSPolicies(index)
        if index.backend_tls_policies:
            self._memo.clear()
            self._dependents.clear()
        outcomes: list[RouteOutcome | None] = []
        memo, reused = self._memo, 0
        for key in self._order:
            route = _route(index, key)
            entry = memo.get(key)
            if entry is not None and entry.route is route:
                reused += 1
            else:
                if entry is not None:
                    self._forget(key, entry)
                entry = _Memo(
                    route,
                    evaluate_route(index, world.gateways, route, tls_policies),
                    backend_services(route),
                )
                memo[key] = entry
                for svc in entry.services:
                    self._dependents.setdefault(svc, set()).add(key)
            outcomes.append(entry.outcome)
        self.reused = reused
        if index.backend_tls_policies:
            self._memo.clear()
            self._dependents.clear()
        return finish(world, outcomes, tls_policies)

    def _forget(self, key: ObjectKey, entry: _Memo) -> None:
        for svc in entry.services:
            keys = self._dependents.get(svc)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._dependents[svc]

    def _invalidate(self, svc: NsName | None) -> None:
        if svc is None:
            return
        for key in list(self._dependents.get(svc, ())):
            entry = self._memo.pop(key, None)
            if entry is not None:
                self._forget(key, entry)

    def _patch(
        self, index: Index, changed: Iterable[ObjectKey], objects: Mapping[ObjectKey, Resource]
    ) -> None:
        """Bring the index up to date for changed routes, Services and EndpointSlices."""
        for key in changed:
            old, new = self._objects.get(key), objects.get(key)
            nsname = (key.namespace, key.name)
            if key.kind in ROUTE_KINDS:
                table: dict[NsName, Any] = (
                    index.http_routes
                    if key.kind == "HTTPRoute"
                    else index.grpc_routes
                    if key.kind == "GRPCRoute"
                    else index.tls_routes
                )
                pos = bisect_left(self._order, key)
                present = pos < len(self._order) and self._order[pos] == key
                if isinstance(new, HTTPRoute | GRPCRoute | TLSRoute):
                    table[nsname] = new
                    if not present:
                        insort(self._order, key)
                else:
                    table.pop(nsname, None)
                    if present:
                        del self._order[pos]
                    entry = self._memo.pop(key, None)
                    if entry is not None:
                        self._forget(key, entry)
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


def _route(index: Index, key: ObjectKey) -> AnyRoute:
    nsname = (key.namespace, key.name)
    if key.kind == "HTTPRoute":
        return index.http_routes[nsname]
    if key.kind == "GRPCRoute":
        return index.grpc_routes[nsname]
    return index.tls_routes[nsname]


def _diff(
    before: Mapping[ObjectKey, Resource], after: Mapping[ObjectKey, Resource]
) -> list[ObjectKey]:
    out = [key for key, obj in after.items() if before.get(key) is not obj]
    out.extend(key for key in before if key not in after)
    return out
