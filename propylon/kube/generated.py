"""The objects the operator creates for each Gateway: Service `cilium-gateway-<gw>`
(its `status.loadBalancer.ingress` is the LB-IPAM address) and its EndpointSlice.

Both carry an ownerReference to their Gateway (controller: true), so the garbage
collector removes them with it. Objects the operator made for a Gateway that is no
longer ours (other class, not accepted) are deleted here. Writes go through the same
leader fence as statuses, and only when the API server's copy differs in a field we
set.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2

from propylon.gatewayapi.gateway import GATEWAY_NAME_LABEL, OWNING_GATEWAY_LABEL
from propylon.kube import kinds
from propylon.kube.api import ApiError, KubeApi, Obj
from propylon.resources import ObjectKey, Service

log = logging.getLogger("propylon.generated")

MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "propylon-operator"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
BACKOFF_S = 1.0
BACKOFF_MAX_S = 60.0
WRITE_TIMEOUT_S = 10.0  # when no leader fence bounds a write


@dataclass(frozen=True)
class Wanted:
    """One Gateway's generated objects."""

    gateway: ObjectKey
    gateway_uid: str
    service: Obj
    lb_ingress: tuple[str, ...]  # status.loadBalancer.ingress IPs
    endpoint_slice: Obj


def owner_reference(gateway: ObjectKey, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "name": gateway.name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def wanted_objects(service: Service, gateway_uid: str) -> Wanted:
    meta = service.metadata
    gateway = ObjectKey("Gateway", meta.namespace, meta.labels.get(GATEWAY_NAME_LABEL, ""))
    owner = [owner_reference(gateway, gateway_uid)]
    spec = service.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    svc: Obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": meta.name,
            "namespace": meta.namespace,
            "labels": dict(meta.labels),
            "annotations": dict(meta.annotations),
            "ownerReferences": owner,
        },
        "spec": spec,
    }
    ingress: tuple[str, ...] = ()
    if service.status is not None and service.status.load_balancer is not None:
        ingress = tuple(i.ip for i in service.status.load_balancer.ingress if i.ip)
    slice_: Obj = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": meta.name,
            "namespace": meta.namespace,
            "labels": {
                SERVICE_NAME_LABEL: meta.name,
                MANAGED_BY: MANAGED_BY_VALUE,
                OWNING_GATEWAY_LABEL: gateway.name,
            },
            "ownerReferences": owner,
        },
        "addressType": "IPv4",
        # The Gateway's traffic is served by the agents' Envoys on each node, which
        # answer at the address itself; the slice lists no pod.
        "endpoints": [],
        "ports": [
            {"name": p.name, "port": p.port, "protocol": p.protocol} for p in service.spec.ports
        ],
    }
    return Wanted(gateway, gateway_uid, svc, ingress, slice_)


def _subset_differs(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """True if `current` lacks or differs in any field `wanted` sets (maps recursively;
    lists compared element by element on the fields wanted sets)."""
    for key, value in wanted.items():
        have = current.get(key)
        if value == {} and not have:
            continue  # an empty map is what the API server leaves out
        if isinstance(value, Mapping):
            if not isinstance(have, Mapping) or _subset_differs(have, value):
                return True
        elif isinstance(value, list):
            if not isinstance(have, list) or len(have) != len(value):
                return True
            for a, b in zip(have, value, strict=True):
                if isinstance(b, Mapping):
                    if not isinstance(a, Mapping) or _subset_differs(a, b):
                        return True
                elif a != b:
                    return True
        elif have != value:
            return True
    return False


# Allowed on a LoadBalancer Service only: a merge patch leaves what it does not name, so
# a class config switched to NodePort or ClusterIP must null them or be refused (422).
_LOAD_BALANCER_ONLY = (
    "loadBalancerSourceRanges",
    "loadBalancerClass",
    "allocateLoadBalancerNodePorts",
)


def _dropped_lb_fields(current: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, None]:
    """Null for the LoadBalancer-only fields `current` has when `spec` is another type."""
    if spec.get("type", "ClusterIP") == "LoadBalancer":
        return {}
    have = current.get("spec") or {}
    return {f: None for f in _LOAD_BALANCER_ONLY if have.get(f) is not None and f not in spec}


class GeneratedObjects:
    def __init__(
        self,
        api: KubeApi,
        raw: Callable[[ObjectKey], Obj | None],
        owned: Callable[[], list[ObjectKey]],
        *,
        can_write: Callable[[], bool] = lambda: True,
        write_budget: Callable[[], float] = lambda: WRITE_TIMEOUT_S,
        on_address: Callable[[ObjectKey, tuple[str, ...]], None] | None = None,
        on_refused: Callable[[ObjectKey, str | None], None] | None = None,
    ) -> None:
        self.api = api
        self._budget = write_budget
        self._raw = raw
        self._owned = owned  # generated Services that exist (by our label)
        self._can_write = can_write
        self._on_address = on_address
        # The API server refused a Gateway's Service (422: a field this cluster does not
        # allow, e.g. an IP family it is not configured for): its status must say so.
        self._on_refused = on_refused
        self.refused: dict[ObjectKey, str] = {}  # by Service key
        self._wanted: dict[ObjectKey, Wanted] = {}  # by Service key
        self._dirty: set[ObjectKey] = set()
        self._wake = asyncio.Event()
        self._failures: dict[ObjectKey, int] = {}
        # False until the first build: before it, every Service looks unwanted.
        self._known = False
        self.writes = 0
        self.idle = asyncio.Event()

    def update(self, services: tuple[Service, ...], uids: Mapping[ObjectKey, str]) -> None:
        fresh: dict[ObjectKey, Wanted] = {}
        for service in services:
            gw = ObjectKey(
                "Gateway",
                service.metadata.namespace,
                service.metadata.labels.get(GATEWAY_NAME_LABEL, ""),
            )
            uid = uids.get(gw)
            if not uid:
                continue
            fresh[service.key] = wanted_objects(service, uid)
        for key in set(fresh) | set(self._wanted):
            if fresh.get(key) != self._wanted.get(key):
                self._dirty.add(key)
        self._dirty.update(k for k in self._owned() if k not in fresh)
        self._wanted = fresh
        self._known = True
        if self._dirty:
            self.idle.clear()
            self._wake.set()

    def object_changed(self, key: ObjectKey) -> None:
        if key in self._failures:
            return  # its retry is scheduled
        if self._known and (key in self._wanted or key.kind == "Service"):
            self._dirty.add(key)
            self.idle.clear()
            self._wake.set()

    def resync(self) -> None:
        if not self._known:
            return
        self._dirty.update(self._wanted)
        self._dirty.update(self._owned())
        if self._dirty:
            self.idle.clear()
            self._wake.set()

    async def run(self) -> None:
        while True:
            if not self._dirty:
                self.idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            if not self._can_write():
                self._wake.clear()
                await asyncio.sleep(0.2)
                continue
            key = min(self._dirty)
            self._dirty.discard(key)
            try:
                # Bounded by the leader fence, as status writes are.
                async with asyncio.timeout(max(0.01, self._budget())):
                    await self._sync(key)
                self._failures.pop(key, None)
                self._refusal(key, None)
            except (ApiError, httpx2.HTTPError, OSError, TimeoutError) as exc:
                if isinstance(exc, ApiError) and exc.code in (400, 422):
                    self._refusal(key, exc.message or str(exc))
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                wait = min(BACKOFF_S * 2 ** (failures - 1), BACKOFF_MAX_S)
                log.warning("%s: %s; retrying in %.0fs", key, str(exc) or type(exc).__name__, wait)
                asyncio.get_running_loop().call_later(wait, self._requeue, key)

    def _refusal(self, key: ObjectKey, message: str | None) -> None:
        wanted = self._wanted.get(key)
        if message is None and self.refused.pop(key, None) is None:
            return
        if message is not None:
            if self.refused.get(key) == message:
                return
            self.refused[key] = message
        if self._on_refused is not None and wanted is not None:
            self._on_refused(wanted.gateway, message)

    def _requeue(self, key: ObjectKey) -> None:
        self._dirty.add(key)
        self.idle.clear()
        self._wake.set()

    async def _sync(self, key: ObjectKey) -> None:
        wanted = self._wanted.get(key)
        current = self._raw(key)
        slice_key = ObjectKey("EndpointSlice", key.namespace, key.name)
        if wanted is None:
            if current is not None and OWNING_GATEWAY_LABEL in (
                (current.get("metadata") or {}).get("labels") or {}
            ):
                log.info("deleting %s: its Gateway is no longer served", key)
                await self.api.delete(kinds.SERVICE, key.name, key.namespace)
                await self.api.delete(kinds.ENDPOINT_SLICE, key.name, key.namespace)
                self.writes += 2
            return
        if current is None:
            current = await self.api.create(kinds.SERVICE, wanted.service, key.namespace)
            self.writes += 1
        elif _subset_differs(current, wanted.service):
            patch = {k: v for k, v in wanted.service.items() if k in ("metadata", "spec")}
            patch["spec"] = {**_dropped_lb_fields(current, patch["spec"]), **patch["spec"]}
            current = await self.api.patch(kinds.SERVICE, key.name, patch, namespace=key.namespace)
            self.writes += 1
        have = tuple(
            str(i.get("ip"))
            for i in ((current.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ()
            if isinstance(i, Mapping) and i.get("ip")
        )
        if have != wanted.lb_ingress:
            ingress = [{"ip": ip, "ipMode": "VIP"} for ip in wanted.lb_ingress]
            await self.api.patch(
                kinds.SERVICE,
                key.name,
                {"status": {"loadBalancer": {"ingress": ingress}}},
                namespace=key.namespace,
                sub="status",
            )
            self.writes += 1
            if self._on_address is not None and wanted.lb_ingress:
                self._on_address(wanted.gateway, wanted.lb_ingress)
        slice_now = self._raw(slice_key)
        if slice_now is None:
            try:
                await self.api.create(kinds.ENDPOINT_SLICE, wanted.endpoint_slice, key.namespace)
                self.writes += 1
            except ApiError as exc:
                if exc.code != 409:
                    raise
        elif _subset_differs(slice_now, wanted.endpoint_slice):
            await self.api.patch(
                kinds.ENDPOINT_SLICE, key.name, wanted.endpoint_slice, namespace=key.namespace
            )
            self.writes += 1
