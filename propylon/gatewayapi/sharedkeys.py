"""Tables from a name to the route keys that use it, where almost every name has one
user: the key itself until a second one comes, then a set of them (a set per name was
~2 MiB at 5000 routes)."""

from __future__ import annotations

from typing import TypeVar

from propylon.resources.meta import ObjectKey

N = TypeVar("N")

KeyOrSet = ObjectKey | set[ObjectKey]


def add_key(table: dict[N, KeyOrSet], name: N, key: ObjectKey) -> bool:
    """Note that `key` uses `name`; whether it did not already."""
    keys = table.get(name)
    if keys is None:
        table[name] = key
    elif isinstance(keys, set):
        if key in keys:
            return False
        keys.add(key)
    elif keys == key:
        return False
    else:
        table[name] = {keys, key}
    return True


def remove_key(table: dict[N, KeyOrSet], name: N, key: ObjectKey) -> None:
    """`key` no longer uses `name` (a set left with one key becomes that key)."""
    keys = table.get(name)
    if isinstance(keys, set):
        keys.discard(key)
        if len(keys) == 1:
            table[name] = keys.pop()
    elif keys == key:
        del table[name]
