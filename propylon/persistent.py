"""`PersistentMap`: an immutable mapping whose versions share structure.

The pipeline hands each stage's result to the next and keeps the previous one (the
Builder compares snapshots, the xDS stream compares outputs, NACK isolation reads an
older snapshot). With dicts each version was a copy of every entry, O(n) per change in
time and in freeing the old copy; with a hash array mapped trie (`immutables.Map`, C) a
version that changes k entries costs O(k log n) and shares the rest.

A thin wrapper, so that it compares equal to any mapping with the same items (as a
dict does; `immutables.Map` equals only another Map) and its views are the set-like
ones of `collections.abc`. Producers build the raw `Map` (`mutate()`, in bulk) and wrap
it: `PersistentMap.of(m)`.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterable, Iterator, Mapping, ValuesView
from typing import Any, TypeVar, overload

from immutables import Map

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


class PersistentMap(Mapping[K, V]):
    __slots__ = ("map",)

    map: Map[K, V]

    def __init__(self, items: Mapping[K, V] | Iterable[tuple[K, V]] = ()) -> None:
        self.map = items.map if isinstance(items, PersistentMap) else Map(items)

    @classmethod
    def of(cls, raw: Map[K, V]) -> PersistentMap[K, V]:
        """Wrap a `Map` (no copy)."""
        out: PersistentMap[K, V] = cls.__new__(cls)
        out.map = raw
        return out

    def __getitem__(self, key: K) -> V:
        return self.map[key]

    @overload
    def get(self, key: K, /) -> V | None: ...
    @overload
    def get(self, key: K, default: V | T, /) -> V | T: ...
    def get(self, key: K, default: Any = None, /) -> Any:
        return self.map.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.map

    def __iter__(self) -> Iterator[K]:
        return iter(self.map)

    def __len__(self) -> int:
        return len(self.map)

    def items(self) -> ItemsView[K, V]:
        return _Items(self)

    def values(self) -> ValuesView[V]:
        return _Values(self)

    def set(self, key: K, value: V) -> PersistentMap[K, V]:
        return PersistentMap.of(self.map.set(key, value))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PersistentMap):
            return self.map == other.map
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PersistentMap({dict(self.map.items())!r})"


class _Items(ItemsView[K, V]):
    """Set-like items whose iteration is the trie's own (C), not a lookup per key."""

    _mapping: PersistentMap[K, V]

    def __iter__(self) -> Iterator[tuple[K, V]]:
        return iter(self._mapping.map.items())


class _Values(ValuesView[V]):
    _mapping: PersistentMap[Any, V]

    def __iter__(self) -> Iterator[V]:
        return iter(self._mapping.map.values())
