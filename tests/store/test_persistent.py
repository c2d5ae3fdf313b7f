"""Persistent maps: snapshots that later applies leave as they were, and a map type that
compares like a dict."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from propylon.clock import format_timestamp
from propylon.persistent import PersistentMap
from propylon.resources.meta import ObjectKey
from propylon.store import ChangeSet, Origin, Store, StoredObject
from propylon.store.testing import FakeResource, fake_object


def _store() -> Store:
    counter = itertools.count(1)
    moment = format_timestamp(datetime(2026, 1, 2, tzinfo=UTC))
    return Store(now=lambda: moment, new_uid=lambda: f"uid-{next(counter)}")


def _svc(name: str, port: int = 80) -> FakeResource:
    return fake_object("Service", name, spec={"ports": [{"port": port}]})


def _set(
    *objs: FakeResource, base: ChangeSet | None = None, touched: frozenset[ObjectKey] = frozenset()
) -> ChangeSet:
    objects = {o.key: StoredObject(o, Origin("f.yaml", i)) for i, o in enumerate(objs)}
    if base is None:
        return ChangeSet(objects)
    return ChangeSet(objects, base=base.token, touched=touched)


def test_a_snapshot_stays_as_it_was_after_later_applies() -> None:
    store = _store()
    a, b, c = _svc("a"), _svc("b"), _svc("c")
    first_set = _set(a, b)
    first = store.apply(first_set)
    before = {k: v.resource for k, v in first.items()}
    b2 = _svc("b", 81)
    second = store.apply(_set(a, b2, c, base=first_set, touched=frozenset({b2.key, c.key})))
    third = store.apply(_set(c))  # a full set: a and b deleted
    assert {k: v.resource for k, v in first.items()} == before
    assert dict(first.resources()) == before
    assert set(second) == {a.key, b.key, c.key} and second.updated == {b.key}
    assert second[b.key].resource is not first[b.key].resource
    assert set(third) == {c.key} and third.deleted == {a.key, b.key}
    assert set(store.snapshot().resources()) == {c.key}
    # Unchanged objects are shared, not copied.
    assert second[a.key] is first[a.key]


def test_persistent_map_compares_like_a_dict() -> None:
    m = PersistentMap({"a": 1, "b": 2})
    assert m == {"a": 1, "b": 2} and m == {"b": 2, "a": 1}
    assert m != {"a": 1} and m != {"a": 1, "b": 3}
    n = m.set("c", 3)
    assert m == {"a": 1, "b": 2} and n == {"a": 1, "b": 2, "c": 3}
    assert n == PersistentMap({"c": 3, "b": 2, "a": 1})
    assert sorted(n.items()) == [("a", 1), ("b", 2), ("c", 3)]
    assert sorted(n.values()) == [1, 2, 3]
    assert n.keys() - {"a"} == {"b", "c"}
    assert n.get("x") is None and n.get("x", 0) == 0 and "a" in n and len(n) == 3


def test_export_in_steps_equals_export_records() -> None:
    """Hashing in steps (`hash_pending`) and exporting from a copy (`export_later`) give
    what `export_records` gives, with objects added after the copy left out."""
    store, twin = _store(), _store()
    objs = [_svc(f"s{i}", 80 + i) for i in range(7)]
    for s in (store, twin):
        s.apply(_set(*objs))
    assert store.hash_pending(3) == 4
    export = store.export_later()
    store.apply(_set(*objs, _svc("late")))
    assert export() == twin.export_records()
    assert store.hash_pending(100) == 0
    assert set(store.export_records()) == {*twin.export_records(), "Service/default/late"}
