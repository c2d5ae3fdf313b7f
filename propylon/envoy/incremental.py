"""The translator's memory between translations (mirrors `gatewayapi/incremental.py`):
the output patched in place of rebuilt, generational caches of serialized fragments, and
each route configuration's virtual hosts as last translated."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from google.protobuf.message import Message
from immutables import Map, MapMutation

from propylon import model as m
from propylon.envoy.output import Encoded, encode


class PatchedOutput:
    """One type's output: the previous translation's map (persistent, handed out, never
    written), patched through a mutation on the first change (O(change), where a dict
    copy was O(resources): ~1 ms per type at 50 000 routes), and the names whose
    Encoded object changed. A resource equal in bytes to the one it replaces keeps the
    old object, so a consumer comparing identities sends nothing for it."""

    __slots__ = ("_done", "changed", "last", "new")

    def __init__(self, last: Map[str, Encoded]) -> None:
        self.last = last
        self.new: MapMutation[str, Encoded] | None = None  # once something changed
        self.changed: set[str] = set()
        self._done: Map[str, Encoded] | None = None

    def set(self, name: str, enc: Encoded | None) -> None:
        """Put (None: remove) one resource."""
        cur = (self.new if self.new is not None else self.last).get(name)
        if cur is enc or (cur is not None and enc is not None and cur.data == enc.data):
            return
        before = self.last.get(name)
        if before is not None and enc is not None and before is not cur and before.data == enc.data:
            enc = before  # back to what the previous translation had
        out = self.new
        if out is None:
            out = self.new = self.last.mutate()
        if enc is None:
            del out[name]
        else:
            out[name] = enc
        if enc is before:
            self.changed.discard(name)
        else:
            self.changed.add(name)

    def update(self, changes: Mapping[str, Encoded | None]) -> None:
        if not self.last and self.new is None:  # a first translation: no comparisons
            full = {k: v for k, v in changes.items() if v is not None}
            self.new = Map(full).mutate()
            self.changed = set(full)
            return
        for name, enc in changes.items():
            self.set(name, enc)

    def replace(self, full: Mapping[str, Encoded]) -> None:
        """Make the output exactly `full`."""
        if not self.last and self.new is None:
            self.new = Map(full).mutate()
            self.changed = set(full)
            return
        for name, enc in full.items():
            self.set(name, enc)
        out = self.new if self.new is not None else self.last
        if len(out) != len(full):
            extra = {n for n in self.last if n not in full}
            extra.update(n for n in self.changed if n not in full)
            for name in extra:
                self.set(name, None)

    def result(self) -> Map[str, Encoded]:
        if self._done is None:
            self._done = self.new.finish() if self.new is not None else self.last
        return self._done


class GenerationalCache:
    """Generational cache: entries survive a sweep only if a translation since the last
    sweep used them, so the cache never outgrows the model by much. One dict lookup per
    use; a sweep (O(entries)) runs only once a quarter of the entries went unused, and
    more than `slack` of them (0 for big values: a whole RouteConfiguration kept 64 times
    over was most of the memory growth under churn)."""

    def __init__(self, slack: int = 64) -> None:
        self._entries: dict[Hashable, list[Any]] = {}  # key -> [value, generation, key]
        self._generation = 0
        # Entries used in the current generation, so a sweep costs what was used, not
        # what is cached: a translation that follows a change touches a few entries of
        # thousands, and the first one after a full translation would otherwise walk
        # them all.
        self._touched: list[list[Any]] = []
        self._slack = slack
        self._swept_size = 0  # entries after the last sweep

    def entry(self, key: Hashable, make: Callable[[], Any]) -> list[Any]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = [make(), self._generation, key]
            self._touched.append(entry)
        else:
            self.touch(entry)
        return entry

    def touch(self, entry: list[Any]) -> None:
        """Mark an entry (found another way) as used by this translation."""
        if entry[1] != self._generation:
            entry[1] = self._generation
            self._touched.append(entry)

    def get(self, key: Hashable, build: Callable[[], Message]) -> Encoded:
        return cast(Encoded, self.entry(key, lambda: encode(build()))[0])

    def rotate(self, *, lazy: bool = False) -> None:
        """End a generation. `lazy`: the translation patched the last one, so entries it
        did not touch may still be live; sweep only once the cache grew by a quarter
        since the last sweep (dropping live entries costs a rebuild if a full
        translation needs them again, never a wrong result), not on the first patch
        after a full translation, which would free the whole translation at once."""
        size = len(self._entries)
        if lazy and size <= self._swept_size * 5 // 4 + self._slack:
            self._generation += 1
            self._touched = []
            return
        used = len(self._touched)
        stale = size - used
        if stale > self._slack and stale * 4 > used:
            self._entries = {e[2]: e for e in self._touched}
        self._swept_size = len(self._entries)
        self._generation += 1
        self._touched = []


def _unscopable(vh: m.VirtualHost) -> bool:
    """A virtual host that scoped RDS cannot serve: no hostname, or a wildcard."""
    return not vh.hostnames or "*" in "".join(vh.hostnames)


@dataclass(eq=False, slots=True)
class HostState:
    """One route configuration's virtual hosts as of the last translation, by identity
    (the entries keep them alive), with what scoped RDS eligibility needs, and its scopes
    if its connection manager is the scoped one. `update` learns what changed from the
    model's hint (`Delta.virtual_hosts`) or else from the difference of the id sets (C
    level), so the Python work per change is per changed virtual host."""

    vhosts: tuple[m.VirtualHost, ...] = ()
    by_id: dict[int, m.VirtualHost] = field(default_factory=dict)
    hosts: int = 0  # hostnames, all virtual hosts
    unscopable: int = 0  # virtual hosts without a hostname or with a wildcard
    # What the last `update` took away and added.
    gone: list[m.VirtualHost] = field(default_factory=list)
    new: list[m.VirtualHost] = field(default_factory=list)
    # The scopes, kept up to date (valid) only while this is the scoped configuration.
    valid: bool = False
    origin: tuple[str, int] | None = None  # of `scopes`
    scopes_by_id: dict[int, dict[str, Encoded]] = field(default_factory=dict)
    scopes: dict[str, Encoded] = field(default_factory=dict)

    def update(self, vhosts: tuple[m.VirtualHost, ...], hint: m.VirtualHostChanges | None) -> None:
        """`hint`: (before, after) pairs from the previous translation's virtual hosts to
        these (checked as far as is cheap; otherwise the id sets are compared)."""
        if vhosts is self.vhosts:
            self.gone, self.new = [], []
            return
        by_id = self.by_id
        if hint is not None and self._fits(hint, len(vhosts)):
            gone = [vh for vh, _ in hint if vh is not None]
            new = [vh for _, vh in hint if vh is not None]
            for vh in gone:
                del by_id[id(vh)]
            for vh in new:
                by_id[id(vh)] = vh
        else:
            now = dict(zip(map(id, vhosts), vhosts, strict=True))
            gone = [by_id[i] for i in by_id.keys() - now.keys()]
            new = [now[i] for i in now.keys() - by_id.keys()]
            self.by_id = now
        for vh in gone:
            self.hosts -= len(vh.hostnames)
            self.unscopable -= _unscopable(vh)
        for vh in new:
            self.hosts += len(vh.hostnames)
            self.unscopable += _unscopable(vh)
        self.vhosts, self.gone, self.new = vhosts, gone, new

    def _fits(self, hint: m.VirtualHostChanges, size: int) -> bool:
        by_id = self.by_id
        n = len(by_id)
        for before, after in hint:
            if before is not None:
                if by_id.get(id(before)) is not before:
                    return False
                n -= 1
            if after is not None:
                n += 1
        return n == size

    def drop_scopes(self) -> None:
        if not self.valid and not self.scopes_by_id:
            return
        self.valid = False
        self.origin = None
        self.scopes_by_id = {}
        self.scopes = {}
