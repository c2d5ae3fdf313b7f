"""The Kubernetes source: list+watch of every kind the core reads -> `ChangeSet`s.

The counterpart of `propylon.sources.files.FileSource`: the complete desired set of
objects, with the keys touched since the previous set as a hint, and the metadata
(uid, generation, creationTimestamp, resourceVersion) exactly as the API server gave
it (`ChangeSet.server_metadata`: the store does not emulate it).

Objects are parsed with `propylon.resources.parse_object`; one the parser refuses is
left out with a diagnostic naming the object and field (the rest keep serving).
A CustomResourceDefinition watch notices a CRD installed (or upgraded to a version we
prefer) after start and (re)starts that kind's reflector.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from propylon.kube import kinds
from propylon.kube.api import Kind, KubeApi, Obj
from propylon.kube.hooks import NO_METRICS, KubeMetrics
from propylon.kube.reflector import Event, ObjId, Reflector, stop_tasks
from propylon.resources import KINDS, ObjectKey, ResourceError, UnknownKindError, parse_object
from propylon.store import ChangeSet, Diagnostic, StoredObject, warning

log = logging.getLogger("propylon.kube")

SOURCE = "kubernetes"

# Newest first: the version a kind is read in when its CRD serves several.
_VERSION_RANK = ("v2", "v1", "v1beta1", "v2alpha1", "v1alpha3", "v1alpha2", "v1alpha1")


def preferred_version(kind: Kind, crd: Mapping[str, Any]) -> str | None:
    """The served version of `crd` we read best (that the parser knows), if any."""
    spec = crd.get("spec") or {}
    served = {
        str(v.get("name"))
        for v in spec.get("versions") or ()
        if isinstance(v, Mapping) and v.get("served")
    }
    known = [v for v in _VERSION_RANK if v in served and (f"{kind.group}/{v}", kind.kind) in KINDS]
    return known[0] if known else None


def key_of(kind: Kind, oid: ObjId) -> ObjectKey:
    namespace, name = oid
    return ObjectKey(kind.kind, namespace if kind.namespaced else "", name)


class KubeSource:
    """Reflectors for `kinds` (default: what the core reads). `raw(key)` is the API
    server's object as last seen (for status and generated-object comparisons)."""

    def __init__(
        self,
        api: KubeApi,
        watched: Iterable[Kind] = kinds.WATCHED,
        *,
        selectors: Mapping[str, tuple[str, str]] | None = None,
        namespaces: Mapping[str, str] | None = None,
        metrics: KubeMetrics = NO_METRICS,
    ) -> None:
        """`namespaces`: kind -> the one namespace to watch it in (others: all)."""
        self.api = api
        self.reflectors: dict[str, Reflector] = {}
        selectors = dict(DEFAULT_SELECTORS if selectors is None else selectors)
        for kind in watched:
            labels, fields = selectors.get(kind.kind, ("", ""))
            self.reflectors[kind.kind] = Reflector(
                api,
                kind,
                self._on_events,
                label_selector=labels,
                field_selector=fields,
                namespace=(namespaces or {}).get(kind.kind, ""),
                on_synced=self._on_synced,
                metrics=metrics,
            )
        self._crds = Reflector(api, kinds.CRD, self._on_crd_events)
        self._objects: dict[ObjectKey, StoredObject] = {}
        self._problems: dict[ObjectKey, Diagnostic] = {}
        self._touched: set[ObjectKey] = set()
        self._token: object | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self.synced = asyncio.Event()
        # Called with the key of every object event, before parsing (status-only
        # changes included, which the store does not report).
        self.on_raw: Callable[[ObjectKey], None] | None = None

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._crds.run(), name="reflector crds"))
        for kind, reflector in self.reflectors.items():
            self._tasks.append(asyncio.create_task(reflector.run(), name=f"reflector {kind}"))

    async def stop(self) -> None:
        await stop_tasks(self._tasks)
        self._tasks.clear()

    async def changes(self, settle: Callable[[], float] | None = None) -> AsyncIterator[ChangeSet]:
        """A ChangeSet once every kind has been listed, then one per burst of events.
        `settle`: seconds to let a burst gather after its first event (none: the set is
        made at once, for whoever is on the path from a change to Envoy)."""
        await self.synced.wait()
        while True:
            self._wake.clear()
            yield self.changeset()
            await self._wake.wait()
            # Events that arrive together (one list, one HTTP chunk) make one set.
            await asyncio.sleep(settle() if settle is not None else 0)

    def changeset(self) -> ChangeSet:
        token = object()
        out = ChangeSet(
            objects=MappingProxyType(dict(self._objects)),
            diagnostics=tuple(self._problems[k] for k in sorted(self._problems)),
            source=SOURCE,
            base=self._token,
            touched=frozenset(self._touched),
            token=token,
            server_metadata=True,
        )
        self._token = token
        self._touched = set()
        return out

    # --- reading ---------------------------------------------------------------------

    def raw(self, key: ObjectKey) -> Obj | None:
        reflector = self.reflectors.get(key.kind)
        if reflector is None:
            return None
        return reflector.objects.get((key.namespace, key.name))

    def statuses(self, kind: str) -> dict[ObjectKey, Any]:
        """Every object of `kind` -> its status as the API server has it (O(that kind))."""
        reflector = self.reflectors.get(kind)
        if reflector is None:
            return {}
        return {
            key_of(reflector.kind, oid): obj.get("status") or {}
            for oid, obj in reflector.objects.items()
        }

    def uids(self, kind: str) -> dict[ObjectKey, str]:
        reflector = self.reflectors.get(kind)
        if reflector is None:
            return {}
        return {
            key_of(reflector.kind, oid): str((obj.get("metadata") or {}).get("uid", ""))
            for oid, obj in reflector.objects.items()
        }

    def installed(self, kind: str) -> bool:
        reflector = self.reflectors.get(kind)
        return reflector is not None and reflector.installed is True

    @property
    def stats(self) -> dict[str, int]:
        out: dict[str, int] = {"relists_gone": 0, "watch_restarts": 0, "errors": 0, "lists": 0}
        for reflector in [*self.reflectors.values(), self._crds]:
            out["relists_gone"] += reflector.stats.relists_gone
            out["watch_restarts"] += reflector.stats.watch_restarts
            out["errors"] += reflector.stats.errors
            out["lists"] += reflector.stats.lists
        return out

    # --- events ----------------------------------------------------------------------

    def _on_synced(self, _reflector: Reflector) -> None:
        if all(r.synced for r in self.reflectors.values()):
            self.synced.set()
            self._wake.set()

    def _on_events(self, events: list[Event]) -> None:
        touched = False
        for event in events:
            key = key_of(event.kind, event.id)
            if self.on_raw is not None:
                self.on_raw(key)
            if _status_only(event):
                # E.g. the operator's status writes, seen by every watcher: not parsed.
                # A Gateway's status holds its assigned address, which a build reads
                # (previous addresses): that still wakes the loop, with nothing touched.
                touched = touched or key.kind in STATUS_READ_BY_BUILD
                continue
            touched = True
            self._touched.add(key)
            self._problems.pop(key, None)
            if event.obj is None:
                self._objects.pop(key, None)
                continue
            try:
                resource = parse_object(_without_nulls(event.obj))
            except UnknownKindError:
                self._objects.pop(key, None)
                continue
            except ResourceError as exc:
                self._objects.pop(key, None)
                self._problems[key] = warning(
                    f"ignored: {exc.message}", object=str(key), field=exc.field or None
                )
                continue
            self._objects[key] = StoredObject(resource)
        if touched and self.synced.is_set():
            self._wake.set()

    def _on_crd_events(self, events: list[Event]) -> None:
        by_crd = {k.crd_name: r for r in self.reflectors.values() if (k := r.kind).crd_name}
        for event in events:
            name = event.id[1]
            reflector = by_crd.get(name)
            if reflector is None or event.obj is None:
                continue  # a deleted CRD: its reflector's watch ends with 404 on its own
            version = preferred_version(reflector.kind, event.obj)
            if version is None:
                continue
            if version != reflector.kind.version or reflector.installed is False:
                kind = replace(reflector.kind, version=version)
                if version != reflector.kind.version:
                    log.info("%s: reading version %s", kind.kind, version)
                    reflector.resource_version = ""
                reflector.retry(kind)


def _status_only(event: Event) -> bool:
    """True for an update that changed nothing the core reads: a custom resource whose
    generation (its spec), labels, annotations and deletion mark are as before. Its
    status changed, or server-managed metadata: no parse, no rebuild. (Built-in kinds
    keep no generation for their content, so every update of theirs is looked at.)"""
    if event.obj is None or event.old is None or event.kind.crd_name is None:
        return False
    new, old = event.obj.get("metadata") or {}, event.old.get("metadata") or {}
    return bool(new.get("generation") and all(new.get(f) == old.get(f) for f in _SPEC_METADATA))


# Kinds whose status (as the API server has it) is an input of the build.
STATUS_READ_BY_BUILD = frozenset({"Gateway"})
_SPEC_METADATA = ("generation", "labels", "annotations", "deletionTimestamp", "uid")


def _without_nulls(obj: Obj) -> Obj:
    """The API server writes some empty lists as null (an EndpointSlice without
    endpoints): absent, for the parser."""
    if any(v is None for v in obj.values()):
        return {k: v for k, v in obj.items() if v is not None}
    return obj


# Watch only what is needed: Gateways can only use TLS Secrets, and EndpointSlices
# only matter when they belong to a Service.
DEFAULT_SELECTORS: Mapping[str, tuple[str, str]] = {
    "Secret": ("", "type=kubernetes.io/tls"),
    "EndpointSlice": ("kubernetes.io/service-name", ""),
    "Lease": ("propylon.io/node-report", ""),  # the agents' reports, not every Lease
}
