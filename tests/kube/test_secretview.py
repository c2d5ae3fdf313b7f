"""The agent's incremental read-through of Secret copies (`propylon.kube.secretview`):
after every change set it shows exactly what `read_through` of everything shows, and a
store fed its sets with the hint reports the same changes as one comparing everything."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import yaml

from propylon.kube.secretsync import copy_name, read_through, wanted_copies
from propylon.kube.secretview import SecretView
from propylon.resources import ObjectKey, Resource, Secret, parse_object
from propylon.store import ChangeSet, Store, StoredObject
from tests.kube.test_secretsync_units import LISTENER_SETS, OBJECTS

NS = "cilium-secrets"


def parsed(text: str) -> dict[ObjectKey, Resource]:
    out = {}
    for doc in yaml.safe_load_all(text):
        obj = parse_object(doc)
        out[obj.key] = obj
    return out


def route(i: int) -> Resource:
    return parse_object(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": f"r{i}", "namespace": "apps"},
            "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [f"h{i}.example.com"]},
        }
    )


def copy(origin: Resource, data: Mapping[str, str] | None = None) -> Resource:
    """The operator's copy of `origin` in the secrets namespace (with other data)."""
    doc: dict[str, Any] = wanted_copies(
        {origin.key: origin, **gateway_referring(origin)}, NS
    ).popitem()[1]
    if data is not None:
        doc["data"] = dict(data)
    return parse_object(doc)


def gateway_referring(secret: Resource) -> dict[ObjectKey, Resource]:
    ns, name = secret.metadata.namespace, secret.metadata.name
    gw = parse_object(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "any", "namespace": ns},
            "spec": {
                "gatewayClassName": "c",
                "listeners": [
                    {
                        "name": "l",
                        "protocol": "HTTPS",
                        "port": 443,
                        "tls": {"certificateRefs": [{"name": name}]},
                    }
                ],
            },
        }
    )
    return {gw.key: gw}


class AgentSource:
    """Change sets as the Kubernetes source makes them: the whole set, the keys touched
    since the previous one and its token as the base."""

    def __init__(self) -> None:
        self.objects: dict[ObjectKey, StoredObject] = {}
        self.touched: set[ObjectKey] = set()
        self.token: object | None = None

    def put(self, resource: Resource) -> None:
        self.objects[resource.key] = StoredObject(resource)
        self.touched.add(resource.key)

    def delete(self, key: ObjectKey) -> None:
        self.objects.pop(key, None)
        self.touched.add(key)

    def changeset(self) -> ChangeSet:
        token = object()
        out = ChangeSet(
            objects=MappingProxyType(dict(self.objects)),
            source="kubernetes",
            base=self.token,
            touched=frozenset(self.touched),
            token=token,
            server_metadata=True,  # as the API server gave it: nothing emulated
        )
        self.token, self.touched = token, set()
        return out


def new_store() -> Store:
    uids = itertools.count()
    return Store(now=lambda: "2026-01-01T00:00:00Z", new_uid=lambda: f"uid-{next(uids)}")


def test_the_view_follows_every_change_as_read_through_of_everything_would() -> None:
    everything = {**parsed(OBJECTS), **parsed(LISTENER_SETS)}
    secrets = {k: o for k, o in everything.items() if k.kind == "Secret"}
    source = AgentSource()
    for key, obj in everything.items():
        if key.kind not in ("Secret", "ListenerSet") and key.name != "to-listener-sets":
            source.put(obj)
    for i in range(20):
        source.put(route(i))
    own, granted = (
        secrets[ObjectKey("Secret", "apps", "own")],
        secrets[ObjectKey("Secret", "certs", "granted")],
    )
    source.put(copy(own))
    source.put(copy(granted))

    view = SecretView(NS)
    hinted, full = new_store(), new_store()
    own_key = ObjectKey("Secret", "apps", "own")
    granted_key = ObjectKey("Secret", "certs", "granted")
    ls_key = ObjectKey("Secret", "other", "ls-granted")
    team_key = ObjectKey("Secret", "team", "team-cert")

    def step(expect_changed: set[ObjectKey] | None) -> ChangeSet:
        changeset = source.changeset()
        seen = view(changeset)
        assert dict(seen.objects) == read_through(changeset.objects, NS)
        snapshot = hinted.apply(seen)
        everything_compared = full.apply(replace_base(seen))
        assert snapshot.changed == everything_compared.changed
        assert {k: o.resource for k, o in snapshot.items()} == {
            k: o.resource for k, o in everything_compared.items()
        }
        if expect_changed is not None:
            assert snapshot.changed == expect_changed
        return seen

    step(None)  # the first set: everything added
    assert own_key in hinted.snapshot() and granted_key in hinted.snapshot()

    # A route: nothing about Secrets to look at, the set passes with the route alone.
    source.put(route(100))
    seen = step({ObjectKey("HTTPRoute", "apps", "r100")})
    assert seen.touched == {ObjectKey("HTTPRoute", "apps", "r100")}

    # Nothing touched (a Gateway's status only): nothing changes.
    assert step(set()).touched == frozenset()

    # The operator rewrites a copy: the Secret seen under its own name changes with it.
    source.put(copy(own, {"tls.crt": "bmV3", "tls.key": "a2V5"}))
    step({own_key, ObjectKey("Secret", NS, copy_name("apps", "own"))})
    shown = hinted.snapshot()[own_key].resource
    assert isinstance(shown, Secret) and shown.data["tls.crt"] == "bmV3"

    # The ReferenceGrant goes: the other namespace's Secret may no longer be read.
    source.delete(ObjectKey("ReferenceGrant", "certs", "to-certs"))
    step({ObjectKey("ReferenceGrant", "certs", "to-certs"), granted_key})
    assert granted_key not in hinted.snapshot()

    # A ListenerSet with its grant and copies: its Secrets appear (the hint names them).
    for key, obj in parsed(LISTENER_SETS).items():
        if key.kind != "Secret":
            source.put(obj)
    source.put(copy(secrets[ls_key]))
    source.put(copy(secrets[team_key]))
    step(None)
    assert ls_key in hinted.snapshot() and team_key in hinted.snapshot()

    # Its copy deleted: the Secret is missing again.
    source.delete(ObjectKey("Secret", NS, copy_name("team", "team-cert")))
    step({ObjectKey("Secret", NS, copy_name("team", "team-cert")), team_key})
    assert team_key not in hinted.snapshot()


def test_without_references_the_change_set_passes_through_untouched() -> None:
    source = AgentSource()
    for i in range(5):
        source.put(route(i))
    view = SecretView(NS)
    first = source.changeset()
    assert view(first) is first
    source.put(route(9))
    second = source.changeset()
    assert view(second) is second


def replace_base(changeset: ChangeSet) -> ChangeSet:
    """The same set without the hint: a store that compares every object."""
    return ChangeSet(
        objects=changeset.objects,
        diagnostics=changeset.diagnostics,
        source=changeset.source,
        server_metadata=changeset.server_metadata,
    )
