from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from propylon.clock import format_timestamp
from propylon.resources.meta import ObjectKey
from propylon.store import ChangeSet, Origin, Store, StoredObject
from propylon.store.testing import FakeResource, fake_object


class Clock:
    def __init__(self) -> None:
        self.moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    def __call__(self) -> str:
        return format_timestamp(self.moment)


def uids() -> itertools.count[int]:
    return itertools.count(1)


def make_store(clock: Clock | None = None, records: dict | None = None) -> Store:  # type: ignore[type-arg]
    counter = itertools.count(1)
    return Store(now=clock or Clock(), new_uid=lambda: f"uid-{next(counter)}", records=records)


def cs(*objs: FakeResource, source: str = "files") -> ChangeSet:
    return ChangeSet(
        {o.key: StoredObject(o, Origin("f.yaml", i)) for i, o in enumerate(objs)}, source=source
    )


def gw(port: int = 80, labels: dict[str, str] | None = None, **meta: object) -> FakeResource:
    obj = fake_object(
        "Gateway", "gw", spec={"gatewayClassName": "c", "listeners": [{"port": port}]}
    )
    if labels or meta:
        obj = obj.model_copy(
            update={"metadata": obj.metadata.model_copy(update={"labels": labels or {}, **meta})}
        )
    return obj


KEY = ObjectKey("Gateway", "default", "gw")


def test_create_sets_store_owned_metadata() -> None:
    store = make_store()
    snap = store.apply(
        cs(gw(generation=7, uid="from-file", creation_timestamp="1999-01-01T00:00:00Z"))
    )
    meta = snap[KEY].resource.metadata
    assert (meta.generation, meta.uid, meta.creation_timestamp) == (
        1,
        "uid-1",
        "2026-01-02T03:04:05Z",
    )
    assert snap.added == {KEY} and not snap.updated and not snap.deleted
    assert snap.resources()[KEY] is snap[KEY].resource


def test_generation_bumps_only_on_spec_change() -> None:
    clock = Clock()
    store = make_store(clock)
    store.apply(cs(gw()))
    clock.moment += timedelta(hours=1)
    snap = store.apply(cs(gw()))
    assert not snap.changed and snap[KEY].resource.metadata.generation == 1
    snap = store.apply(cs(gw(labels={"a": "b"})))
    assert snap.updated == {KEY}
    assert snap[KEY].resource.metadata.generation == 1
    snap = store.apply(cs(gw(port=81, labels={"a": "b"})))
    meta = snap[KEY].resource.metadata
    assert (meta.generation, meta.uid, meta.creation_timestamp) == (
        2,
        "uid-1",
        "2026-01-02T03:04:05Z",
    )
    snap = store.apply(cs(gw(port=80, labels={"a": "b"})))
    assert snap[KEY].resource.metadata.generation == 3


def test_kinds_without_spec_bump_on_content_change() -> None:
    store = make_store()
    key = ObjectKey("Secret", "default", "s")
    store.apply(cs(fake_object("Secret", "s", api_version="v1", data={"a": "1"})))
    snap = store.apply(cs(fake_object("Secret", "s", api_version="v1", data={"a": "2"})))
    assert snap[key].resource.metadata.generation == 2


def test_delete_and_recreate_is_new_object() -> None:
    store = make_store()
    store.apply(cs(gw()))
    snap = store.apply(cs())
    assert snap.deleted == {KEY} and len(snap) == 0
    snap = store.apply(cs(gw()))
    assert snap[KEY].resource.metadata.uid == "uid-2"


def test_origin_move_is_not_an_update() -> None:
    store = make_store()
    store.apply(cs(gw()))
    obj = gw()
    snap = store.apply(ChangeSet({KEY: StoredObject(obj, Origin("other.yaml", 3))}))
    assert not snap.changed
    assert snap[KEY].origin == Origin("other.yaml", 3)


def test_persistence_round_trip() -> None:
    store = make_store()
    store.apply(cs(gw()))
    store.apply(cs(gw(port=81)))
    records = store.export_records()
    assert records["Gateway/default/gw"]["generation"] == 2

    # Restart, same spec: everything kept.
    again = make_store(records=records)
    meta = again.apply(cs(gw(port=81)))[KEY].resource.metadata
    assert (meta.generation, meta.uid, meta.creation_timestamp) == (
        2,
        "uid-1",
        "2026-01-02T03:04:05Z",
    )

    # Restart, changed spec: +1, uid and creation kept.
    third = make_store(records=records)
    meta = third.apply(cs(gw(port=82)))[KEY].resource.metadata
    assert (meta.generation, meta.uid) == (3, "uid-1")


def test_a_new_object_hashed_only_when_exported_keeps_its_generation() -> None:
    # A new object's hashes are computed when first needed (not on start-up): the
    # exported record must still carry the spec hash that a restart compares.
    store = make_store()
    store.apply(cs(gw()))
    records = store.export_records()
    assert records["Gateway/default/gw"]["spec_hash"]
    same = make_store(records=records).apply(cs(gw(labels={"a": "b"})))
    assert same[KEY].resource.metadata.generation == 1
    changed = make_store(records=records).apply(cs(gw(port=81)))
    assert changed[KEY].resource.metadata.generation == 2


def test_persisted_records_of_vanished_objects_are_dropped() -> None:
    store = make_store(
        records={
            "Gateway/default/old": {
                "generation": 4,
                "spec_hash": "x",
                "creationTimestamp": "t",
                "uid": "u",
            }
        }
    )
    assert "Gateway/default/old" in store.export_records()
    store.apply(cs(gw()))
    assert list(store.export_records()) == ["Gateway/default/gw"]


def test_sources_do_not_delete_each_other() -> None:
    store = make_store()
    store.apply(cs(gw(), source="files"))
    other = fake_object("Service", "svc", api_version="v1", spec={})
    snap = store.apply(cs(other, gw(port=9), source="kube"))
    assert set(snap) == {KEY, other.key}
    assert snap[KEY].resource.metadata.generation == 1  # the files version stays
    assert len(snap.diagnostics) == 1 and "already defined" in snap.diagnostics[0].message
    snap = store.apply(cs(source="kube"))
    assert set(snap) == {KEY}


def test_snapshot_knows_sources() -> None:
    store = make_store()
    store.apply(cs(gw(), source="files"))
    svc = fake_object("Service", "cilium-gateway-gw", api_version="v1", spec={})
    snap = store.apply(cs(svc, source="gatewayapi"))
    assert snap.source_of(KEY) == "files" and snap.source_of(svc.key) == "gatewayapi"
    assert set(snap.resources(source="files")) == {KEY}
    assert set(store.snapshot().resources()) == {KEY, svc.key}


def test_delta_apply_matches_full_apply() -> None:
    """A set marked as its predecessor changed at `touched` (what `FileSource.update`
    hands over) gives the same snapshots as the complete set; a stale base is ignored."""
    import random

    rng = random.Random(3)
    # Several objects created at once get uids in another order: not compared here.
    full, delta = (Store(now=Clock(), new_uid=lambda: "uid") for _ in range(2))
    objects: dict[ObjectKey, StoredObject] = {}
    last: ChangeSet | None = None
    for step in range(80):
        touched: set[ObjectKey] = set()
        for _ in range(rng.choice((1, 1, 3))):
            name = f"r{rng.randrange(8)}"
            obj = fake_object("HTTPRoute", name, spec={"x": rng.randrange(3)})
            if obj.key in objects and rng.random() < 0.3:
                del objects[obj.key]
            elif rng.random() < 0.2 and obj.key in objects:  # moved to another file only
                objects[obj.key] = StoredObject(objects[obj.key].resource, Origin("g.yaml", step))
            else:
                objects[obj.key] = StoredObject(obj, Origin("f.yaml", step))
            touched.add(obj.key)
        whole = ChangeSet(dict(objects))
        patched = ChangeSet(
            dict(objects),
            base=last.token if last is not None and step % 7 else object(),
            touched=frozenset(touched),
        )
        a, b = full.apply(whole), delta.apply(patched)
        last = patched
        assert dict(a) == dict(b) and a.resources() == b.resources()
        assert (a.added, a.updated, a.deleted) == (b.added, b.updated, b.deleted)
        assert full.export_records() == delta.export_records()


def test_a_node_status_change_is_a_change_its_heartbeat_is_not() -> None:
    """A Node's status (addresses, readiness) is what NodePort and hostNetwork Gateways
    read; the parsed Node keeps no heartbeat times, so those change nothing."""
    from propylon.resources import parse_object

    def node(ready: str, heartbeat: str) -> StoredObject:
        obj = parse_object(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": "n1", "resourceVersion": heartbeat},
                "status": {
                    "addresses": [{"type": "InternalIP", "address": "198.18.0.11"}],
                    "conditions": [
                        {"type": "Ready", "status": ready, "lastHeartbeatTime": heartbeat}
                    ],
                },
            }
        )
        return StoredObject(obj, Origin("api", 0))

    key = ObjectKey("Node", "", "n1")
    store = make_store()
    store.apply(ChangeSet({key: node("True", "1")}, source="kube", server_metadata=True))
    snap = store.apply(ChangeSet({key: node("True", "2")}, source="kube", server_metadata=True))
    assert key not in snap.changed
    snap = store.apply(ChangeSet({key: node("False", "3")}, source="kube", server_metadata=True))
    assert key in snap.changed
    assert not snap[key].resource.ready  # type: ignore[attr-defined]
