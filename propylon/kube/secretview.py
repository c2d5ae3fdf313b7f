"""The agent's view of the Gateways' Secrets through their copies: `secretsync.read_through`
with memory, so that a change costs what it touches, not what is stored.

`read_through` walks every object to find the Gateways and ListenerSets and copies the
whole mapping: at 3000 routes that was half of the agent's CPU per route change (the
benchmark's py-spy profile), on the path from the watch event to Envoy's update, and it
ran again for each status-only wake-up. Here only the objects that decide the references
(Gateways, ListenerSets, ReferenceGrants) are kept; the references are recomputed when
one of them changes, the copies looked up again when they or a Secret change, and the
keys whose view changed are added to the set's `touched`, so the store's hint stays
exact (it compares no more than before) and a set with nothing to add passes through.
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

from propylon.kube.secretsync import as_original, copy_of, referenced_secrets
from propylon.resources import ObjectKey, Resource
from propylon.store import ChangeSet, StoredObject

# What decides which Secrets are referenced (and may be used: ReferenceGrants).
_REFERRING_KINDS = frozenset({"Gateway", "ListenerSet", "XListenerSet", "ReferenceGrant"})


class SecretView:
    """`view(changeset)`: the set with the referenced Secrets read through their copies
    in `secrets_namespace`: the same objects as `read_through(changeset.objects, ...)`.
    Feed it every set of one source, in order."""

    def __init__(self, secrets_namespace: str) -> None:
        self.namespace = secrets_namespace
        self._token: object | None = None  # of the last set seen
        self._referring: dict[ObjectKey, Resource] = {}
        self._refs: tuple[tuple[str, str], ...] = ()
        # Original key -> (the copy it was read from, the copy seen as the original).
        self._overlay: dict[ObjectKey, tuple[StoredObject, StoredObject]] = {}

    def __call__(self, changeset: ChangeSet) -> ChangeSet:
        objects = changeset.objects
        delta = changeset.base is not None and changeset.base is self._token
        self._token = changeset.token
        if delta:
            refs_changed = False
            for key in changeset.touched:
                if key.kind in _REFERRING_KINDS:
                    refs_changed = True
                    stored = objects.get(key)
                    if stored is None:
                        self._referring.pop(key, None)
                    else:
                        self._referring[key] = stored.resource
            if refs_changed:
                self._refs = tuple(referenced_secrets(self._referring))
            elif not any(key.kind == "Secret" for key in changeset.touched):
                return self._with_overlay(changeset, frozenset())  # the common case
        else:
            self._referring = {
                k: o.resource for k, o in objects.items() if k.kind in _REFERRING_KINDS
            }
            self._refs = tuple(referenced_secrets(self._referring))
        overlay: dict[ObjectKey, tuple[StoredObject, StoredObject]] = {}
        for ns, name in self._refs:
            if ns == self.namespace:
                continue  # read where it is
            copy = copy_of(objects, self.namespace, ns, name)
            if copy is None:
                continue  # not copied (yet): missing, as the Gateway's status says
            key = ObjectKey("Secret", ns, name)
            before = self._overlay.get(key)
            # The same copy object: the same view object (the store's hint: unchanged).
            overlay[key] = (
                before if before and before[0] is copy else (copy, as_original(copy, ns, name))
            )
        changed = frozenset(
            key
            for key in overlay.keys() | self._overlay.keys()
            if overlay.get(key) is not self._overlay.get(key)
        )
        self._overlay = overlay
        return self._with_overlay(changeset, changed)

    def _with_overlay(self, changeset: ChangeSet, changed: frozenset[ObjectKey]) -> ChangeSet:
        if not self._overlay and not changed:
            return changeset
        objects = dict(changeset.objects)
        objects.update((key, seen) for key, (_copy, seen) in self._overlay.items())
        return replace(
            changeset,
            objects=MappingProxyType(objects),
            touched=changeset.touched | changed if changed else changeset.touched,
        )
