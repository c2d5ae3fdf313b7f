"""Model -> xDS. Pure and deterministic; see the package docstring for names and shapes."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from itertools import chain
from operator import attrgetter, itemgetter
from typing import Any, cast

from google.protobuf.message import Message

from propylon import model as m
from propylon.envoy import _pb as pb

#: A weighted share whose backend could not be resolved goes to this cluster, which never
#: exists: Envoy answers it with 500 (``cluster_not_found_response_code``).
INVALID_BACKEND_CLUSTER = "propylon:invalid-backend"
CONNECT_TIMEOUT_MS = 5_000
SYSTEM_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"

LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT_TYPE = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
SCOPED_ROUTE_TYPE = "type.googleapis.com/envoy.config.route.v3.ScopedRouteConfiguration"

#: An HTTP connection manager whose virtual hosts are all exact hostnames, at least this
#: many, gets one scoped route configuration per hostname (scoped RDS) instead of one
#: RouteConfiguration: Envoy then applies only the scope that changed (see `_scoped_hcm`).
SCOPED_MIN_HOSTS = 100


@dataclass(frozen=True, slots=True)
class Encoded:
    """A resource serialized once: the bytes put in an `Any`, and a content version."""

    message: Message
    data: bytes
    version: str


def encode(message: Message) -> Encoded:
    data = message.SerializeToString(deterministic=True)
    return Encoded(message, data, hashlib.blake2b(data, digest_size=8).hexdigest())


_serials = itertools.count(1)


@dataclass(frozen=True)
class XdsResources:
    """Every resource Envoy needs, by name. `encoded` holds the same resources serialized
    (deterministically) with a content version, by type URL then name.

    No mapping here is in any particular order (sort at the point of output): a
    translation is the previous one's dicts patched, not thousands of names re-sorted."""

    listeners: Mapping[str, Message] = field(default_factory=dict)
    routes: Mapping[str, Message] = field(default_factory=dict)
    clusters: Mapping[str, Message] = field(default_factory=dict)
    endpoints: Mapping[str, Message] = field(default_factory=dict)
    secrets: Mapping[str, Message] = field(default_factory=dict)
    scoped_routes: Mapping[str, Message] = field(default_factory=dict)
    encoded: Mapping[str, Mapping[str, Encoded]] = field(
        default_factory=dict, compare=False, repr=False
    )
    #: Unique per translation (a process-wide counter, so two Translators never collide).
    serial: int = field(default=0, compare=False, repr=False)
    #: The serial of the translation `changes` is relative to (the same Translator's
    #: previous one), or None.
    base: int | None = field(default=None, compare=False, repr=False)
    #: Per type URL (all six type URLs present as keys when not None): the names whose
    #: encoded resource is not the identical `Encoded` object of translation `base`
    #: (added, changed or removed). None: unknown, compare all.
    changes: Mapping[str, frozenset[str]] | None = field(default=None, compare=False, repr=False)

    def by_type(self) -> Mapping[str, Mapping[str, Encoded]]:
        """Type URL -> name -> encoded resource (computed here if not given)."""
        if not self.encoded:
            encoded = {
                type_url: {name: encode(msg) for name, msg in sorted(msgs.items())}
                for type_url, msgs in self._typed()
            }
            object.__setattr__(self, "encoded", encoded)  # computed once, then shared
        return self.encoded

    def _typed(self) -> Iterable[tuple[str, Mapping[str, Message]]]:
        yield CLUSTER_TYPE, self.clusters
        yield ENDPOINT_TYPE, self.endpoints
        yield SECRET_TYPE, self.secrets
        yield LISTENER_TYPE, self.listeners
        yield SCOPED_ROUTE_TYPE, self.scoped_routes
        yield ROUTE_TYPE, self.routes


TYPE_URLS = (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    SECRET_TYPE,
    LISTENER_TYPE,
    SCOPED_ROUTE_TYPE,
    ROUTE_TYPE,
)


class _Messages(Mapping[str, Message]):
    """The messages of a name -> Encoded dict, without building a second dict."""

    __slots__ = ("_encoded",)

    def __init__(self, encoded: Mapping[str, Encoded]) -> None:
        self._encoded = encoded

    def __getitem__(self, name: str) -> Message:
        return self._encoded[name].message

    def __iter__(self) -> Iterator[str]:
        return iter(self._encoded)

    def __len__(self) -> int:
        return len(self._encoded)

    def __repr__(self) -> str:
        return repr(dict(self.items()))


class _Output:
    """One type's output: the previous translation's dict (handed out, so never
    written), copied on the first change, and the names whose Encoded object changed.
    A resource equal in bytes to the one it replaces keeps the old object, so a
    consumer comparing identities sends nothing for it."""

    __slots__ = ("changed", "last", "new")

    def __init__(self, last: dict[str, Encoded]) -> None:
        self.last = last
        self.new: dict[str, Encoded] | None = None
        self.changed: set[str] = set()

    def set(self, name: str, enc: Encoded | None) -> None:
        """Put (None: remove) one resource."""
        out = self.new if self.new is not None else self.last
        cur = out.get(name)
        if cur is enc or (cur is not None and enc is not None and cur.data == enc.data):
            return
        before = self.last.get(name)
        if before is not None and enc is not None and before is not cur and before.data == enc.data:
            enc = before  # back to what the previous translation had
        if self.new is None:
            out = self.new = self.last.copy()
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
            self.new = {k: v for k, v in changes.items() if v is not None}
            self.changed = set(self.new)
            return
        for name, enc in changes.items():
            self.set(name, enc)

    def replace(self, full: Mapping[str, Encoded]) -> None:
        """Make the output exactly `full`."""
        if not self.last and self.new is None:
            self.new = dict(full)
            self.changed = set(full)
            return
        for name, enc in full.items():
            self.set(name, enc)
        out = self.new if self.new is not None else self.last
        if len(out) != len(full):
            for name in [n for n in out if n not in full]:
                self.set(name, None)

    def result(self) -> dict[str, Encoded]:
        return self.new if self.new is not None else self.last


class _Cache:
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


_NAME = attrgetter("name")
_HOSTNAMES = attrgetter("hostnames")


def _unscopable(vh: m.VirtualHost) -> bool:
    """A virtual host that scoped RDS cannot serve: no hostname, or a wildcard."""
    return not vh.hostnames or "*" in "".join(vh.hostnames)


@dataclass(eq=False, slots=True)
class _HostState:
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


class Translator:
    """`translate` with memory: unchanged model fragments are not rebuilt or reserialized,
    and each result says what changed since the previous one (`XdsResources.changes`).

    Keep one per data plane (the runtime does); `translate()` below uses a fresh one.
    With a model whose `delta` is relative to the model translated last, the work is in
    proportion to the change; without, unchanged fragments are found by identity.
    """

    def __init__(self, *, scoped_min_hosts: int = SCOPED_MIN_HOSTS) -> None:
        self._scoped_min_hosts = scoped_min_hosts
        self._scopes = _Cache()
        # Route configuration name -> its virtual hosts (and scopes) as last translated.
        self._hosts: dict[str, _HostState] = {}
        self._vhosts = _Cache()
        self._vhost_ids = _Cache()
        self._routes = _Cache(slack=0)
        self._listeners = _Cache()
        self._clusters = _Cache()
        self._cluster_ids = _Cache()
        # The last translation's virtual hosts per (unscoped) route configuration by id
        # (each entry keeps its VirtualHost alive), and its RouteConfiguration.
        self._previous_vhosts: dict[
            str, tuple[tuple[str, int], dict[int, tuple[m.VirtualHost, Encoded]]]
        ] = {}
        self._previous_routes: dict[
            str, tuple[tuple[m.VirtualHost, ...], tuple[str, int], Encoded]
        ] = {}
        # The model's clusters as last translated: the tuple, and by name.
        self._cluster_tuple: tuple[m.Cluster, ...] | None = None
        self._cluster_objs: dict[str, m.Cluster] = {}
        self._endpoints = _Cache()
        self._secrets = _Cache()
        self._caches = (
            self._scopes,
            self._vhosts,
            self._vhost_ids,
            self._routes,
            self._listeners,
            self._clusters,
            self._cluster_ids,
            self._endpoints,
            self._secrets,
        )
        self._last: dict[str, dict[str, Encoded]] = {t: {} for t in TYPE_URLS}
        self._serial: int | None = None  # of the last translation
        self._model_serial = 0  # of the model translated last

    def translate(self, model: m.Model, options: m.ProxyOptions) -> XdsResources:
        try:
            return self._translate(model, options)
        except BaseException:
            # Never reuse a half-updated state: start again (the next result has no base).
            self.__init__(scoped_min_hosts=self._scoped_min_hosts)  # type: ignore[misc]
            raise

    def _translate(self, model: m.Model, options: m.ProxyOptions) -> XdsResources:
        delta = model.delta
        hint = delta if delta is not None and delta.base == self._model_serial != 0 else None
        outs = {t: _Output(self._last[t]) for t in TYPE_URLS}
        listeners: dict[str, Encoded] = {}
        routes: dict[str, Encoded] = {}
        secret_names: set[str] = set()
        scoped = self._scoped_hcm(model, hint)
        for lst in model.listeners:
            own = scoped if scoped is not None and _owns(lst, scoped) else None
            listeners[lst.name] = self._listeners.get(
                (_listener_shape(lst), options, own), partial(_listener, lst, options, own)
            )
            for rc_name, _, vhosts in _route_configs(lst):
                scheme = "http" if rc_name == lst.name else "https"
                if rc_name == own:
                    self._scoped_route_configs(outs[SCOPED_ROUTE_TYPE], rc_name, (scheme, lst.port))
                else:
                    self._hosts[rc_name].drop_scopes()
                    routes[rc_name] = self._route_config(rc_name, vhosts, (scheme, lst.port))
            for term in lst.https:
                secret_names.update(term.certificates)
        if scoped is None:
            outs[SCOPED_ROUTE_TYPE].replace({})
        self._all_clusters(model.clusters, hint, outs[CLUSTER_TYPE], outs[ENDPOINT_TYPE])
        secrets: dict[str, Encoded] = {}
        for s in model.secrets:
            if s.name in secret_names:
                secrets[s.name] = self._secrets.get(
                    s, partial(pb.tls_secret, s.name, s.certificate_chain, s.private_key)
                )
        outs[LISTENER_TYPE].replace(listeners)
        outs[ROUTE_TYPE].replace(routes)
        outs[SECRET_TYPE].replace(secrets)
        for gone in self._previous_vhosts.keys() - routes.keys():
            del self._previous_vhosts[gone]
        for gone in self._previous_routes.keys() - routes.keys():
            del self._previous_routes[gone]
        for cache in self._caches:
            cache.rotate(lazy=hint is not None)
        encoded = {t: outs[t].result() for t in TYPE_URLS}
        base = self._serial
        serial = next(_serials)
        self._last, self._serial, self._model_serial = encoded, serial, model.serial
        return XdsResources(
            listeners=_Messages(encoded[LISTENER_TYPE]),
            routes=_Messages(encoded[ROUTE_TYPE]),
            clusters=_Messages(encoded[CLUSTER_TYPE]),
            endpoints=_Messages(encoded[ENDPOINT_TYPE]),
            secrets=_Messages(encoded[SECRET_TYPE]),
            scoped_routes=_Messages(encoded[SCOPED_ROUTE_TYPE]),
            encoded=encoded,
            serial=serial,
            base=base,
            changes=None if base is None else {t: frozenset(outs[t].changed) for t in TYPE_URLS},
        )

    def _scoped_hcm(self, model: m.Model, hint: m.Delta | None) -> str | None:
        """`_scoped_hcm` below, from the per-route-configuration host counts kept up to
        date (`_HostState`): no walk over every hostname per translation."""
        best: tuple[int, str] | None = None
        states = self._hosts
        seen: set[str] = set()
        for lst in model.listeners:
            for rc_name, key, vhosts in _route_configs(lst):
                st = states.get(rc_name)
                changes = None
                if st is None:
                    st = states[rc_name] = _HostState()
                elif hint is not None and rc_name not in seen:
                    # A state that exists was updated from the hint's base model.
                    changes = hint.virtual_hosts.get(key)
                seen.add(rc_name)
                st.update(vhosts, changes)
                if st.hosts < self._scoped_min_hosts or st.unscopable:
                    continue
                if best is None or st.hosts > best[0]:
                    best = (st.hosts, rc_name)
        if len(states) != len(seen):
            for gone in states.keys() - seen:
                del states[gone]
        return best[1] if best is not None else None

    def _scoped_route_configs(self, out: _Output, name: str, origin: tuple[str, int]) -> None:
        """One scope per hostname, `<name>/<hostname>`, carrying a RouteConfiguration of
        the same name with that host's virtual host only (inline: one resource).

        While this configuration stays the scoped one with the same origin, only the
        virtual hosts that `_HostState.update` found gone or new are looked at; the
        output is patched by the scope names they touch."""
        st = self._hosts[name]
        if not st.valid or st.origin != origin:
            st.origin = origin
            have = st.scopes_by_id = {}
            scopes = st.scopes = {}
            for vh in st.vhosts:  # in order: a hostname given twice goes to the last
                own = have[id(vh)] = self._scopes_of(name, vh, origin)
                scopes.update(own)
            st.valid = True
            out.replace(scopes)
            return
        have, scopes = st.scopes_by_id, st.scopes
        touched: set[str] = set()
        for vh in st.gone:
            for scope, enc in have.pop(id(vh)).items():
                if scopes.get(scope) is enc:
                    del scopes[scope]
                touched.add(scope)
        for vh in st.new:
            own = have[id(vh)] = self._scopes_of(name, vh, origin)
            scopes.update(own)
            touched.update(own)
        for scope in touched:
            out.set(scope, scopes.get(scope))

    def _scopes_of(
        self, name: str, vh: m.VirtualHost, origin: tuple[str, int]
    ) -> dict[str, Encoded]:
        part = self._virtual_host(vh, origin)
        out: dict[str, Encoded] = {}
        for host in vh.hostnames:
            scope = f"{name}/{host}"
            # The entry keeps `part` alive, so its id stays its own.
            entry = self._scopes.entry((scope, id(part)), partial(_scope, scope, host, part))
            out[scope] = cast(Encoded, entry[0][0])
        return out

    def _virtual_host(self, vh: m.VirtualHost, origin: tuple[str, int]) -> Encoded:
        # First by the identity of its routes: the incremental Builder hands over the
        # very same Route objects for unchanged routes, so no deep hash of the model. The
        # entry keeps the routes alive (their ids stay theirs) and points at the entry
        # of the content-keyed cache, which is kept alive along with it.
        by_id = self._vhost_ids.entry(
            (vh.name, vh.hostnames, origin, *map(id, vh.routes)),
            lambda: (
                self._vhosts.entry((vh, origin), lambda: encode(_virtual_host(vh, origin))),
                vh.routes,
            ),
        )
        content = by_id[0][0]
        self._vhosts.touch(content)
        return cast(Encoded, content[0])

    def _virtual_hosts(
        self, name: str, vhosts: tuple[m.VirtualHost, ...], origin: tuple[str, int]
    ) -> tuple[Encoded, ...]:
        """`_virtual_host` for each, with the route configuration's previous virtual
        hosts matched by identity at C level first (as `_all_clusters` does)."""
        last = self._previous_vhosts.get(name)
        previous = last[1] if last is not None and last[0] == origin else {}
        ids = list(map(id, vhosts))
        hits: list[tuple[m.VirtualHost, Encoded] | None] = list(map(previous.get, ids))
        for i in [i for i, hit in enumerate(hits) if hit is None]:
            vh = vhosts[i]
            hits[i] = (vh, self._virtual_host(vh, origin))
        found = cast(list[tuple[m.VirtualHost, Encoded]], hits)
        self._previous_vhosts[name] = (origin, dict(zip(ids, found, strict=True)))
        return tuple(map(itemgetter(1), found))

    def _all_clusters(
        self,
        clusters: tuple[m.Cluster, ...],
        hint: m.Delta | None,
        cluster_out: _Output,
        endpoint_out: _Output,
    ) -> None:
        """Clusters and endpoints by name, patched for the names the hint gives, or else
        for those whose Cluster object is not the one translated last (found by C-level
        set operations, so thousands of unchanged clusters cost no Python-level step)."""
        if clusters is self._cluster_tuple:
            return
        objs = self._cluster_objs
        touched: Iterable[str] | None = None
        if hint is not None and self._cluster_tuple is not None:
            size = len(objs)
            for name, c in hint.clusters.items():
                size += (c is not None) - (name in objs)
            if size == len(clusters):
                touched = hint.clusters
                for name, c in hint.clusters.items():
                    if c is None:
                        objs.pop(name, None)
                    else:
                        objs[name] = c
        if touched is None:
            by_name = dict(zip(map(_NAME, clusters), clusters, strict=True))
            if objs:
                now = dict(zip(by_name, map(id, by_name.values()), strict=True))
                was = dict(zip(objs, map(id, objs.values()), strict=True))
                touched = set(map(itemgetter(0), now.items() ^ was.items()))
            else:
                touched = by_name
            objs = self._cluster_objs = by_name
        self._cluster_tuple = clusters
        cluster_changes: dict[str, Encoded | None] = {}
        endpoint_changes: dict[str, Encoded | None] = {}
        for name in touched:
            c = objs.get(name)
            if c is None:
                cluster_changes[name] = endpoint_changes[name] = None
            else:
                cluster_changes[name], endpoint_changes[name] = self._cluster(c)
        cluster_out.update(cluster_changes)
        endpoint_out.update(endpoint_changes)

    def _cluster(self, c: m.Cluster) -> tuple[Encoded, Encoded]:
        # First by identity (the incremental Builder hands over the same Cluster objects
        # while they are unchanged): no hash of the endpoints. The entry keeps the
        # cluster alive and points at the content-keyed entries, kept alive with it.
        by_id = self._cluster_ids.entry(
            id(c),
            lambda: (
                self._clusters.entry((c.name, c.protocol, c.tls), lambda: encode(_cluster(c))),
                self._endpoints.entry((c.name, c.endpoints), lambda: encode(_load_assignment(c))),
                c,
            ),
        )
        cluster, endpoint, _ = by_id[0]
        self._clusters.touch(cluster)
        self._endpoints.touch(endpoint)
        return cluster[0], endpoint[0]

    def _route_config(
        self, name: str, vhosts: tuple[m.VirtualHost, ...], origin: tuple[str, int]
    ) -> Encoded:
        last = self._previous_routes.get(name)
        if last is not None and last[0] is vhosts and last[1] == origin:
            return last[2]
        parts = self._virtual_hosts(name, vhosts, origin)
        # Encoded entries hash by identity, so this key is cheap to hash and compare.
        enc = self._routes.get(
            (name, *(id(p) for p in parts)),
            lambda: pb.route_configuration(name, (p.message for p in parts)),
        )
        self._previous_routes[name] = (vhosts, origin, enc)
        return enc


def translate(
    model: m.Model, options: m.ProxyOptions, *, scoped_min_hosts: int = SCOPED_MIN_HOSTS
) -> XdsResources:
    """Translate a model into xDS resources (a fresh `Translator`, nothing cached)."""
    return Translator(scoped_min_hosts=scoped_min_hosts).translate(model, options)


def _sorted(d: dict[str, Encoded]) -> dict[str, Encoded]:
    return dict(sorted(d.items()))


# --- naming ---------------------------------------------------------------------------


def https_route_config_name(listener: str, term: m.TLSTermination) -> str:
    """`<listener>/https/<first server name or *>`: stable while the chain exists."""
    return f"{listener}/https/{term.server_names[0] if term.server_names else '*'}"


def _scoped_hcm(model: m.Model, min_hosts: int) -> str | None:
    """The route configuration name of the one HTTP connection manager that uses scoped
    RDS (one scope per hostname, keyed on the request's host without its port), if any.

    Scoped RDS matches the key exactly, and a request whose key has no scope gets a 404:
    there is no fallback. That equals Envoy's virtual host selection only when every
    virtual host is an exact hostname (no `*.example.com`, no `*`): then a host without a
    scope matches no virtual host either. (Except for case: Envoy lowercases the host to
    pick a virtual host, scopes compare bytes; Gateway API hostnames are lowercase.)
    Envoy subscribes to scoped RDS as a wildcard: every scoped connection manager gets
    every scope, so two of them would serve each other's hosts (no listener isolation).
    Hence one per Envoy: the biggest eligible one, if it has `min_hosts` hostnames (below
    that one RouteConfiguration costs Envoy little; ties: the first name)."""
    best: tuple[int, str] | None = None
    for lst in model.listeners:
        for rc_name, _, vhosts in _route_configs(lst):
            per_vhost = list(map(_HOSTNAMES, vhosts))
            hosts = list(chain.from_iterable(per_vhost))
            if len(hosts) < min_hosts or not all(per_vhost) or "*" in "".join(hosts):
                continue
            if best is None or len(hosts) > best[0]:
                best = (len(hosts), rc_name)
    return best[1] if best is not None else None


def _scope(name: str, host: str, vhost: Encoded) -> tuple[Encoded, Encoded]:
    rc = pb.route_configuration(name, (vhost.message,))
    return encode(pb.scoped_route_configuration(name, host, rc)), vhost


def _owns(lst: m.Listener, rc_name: str) -> bool:
    return any(name == rc_name for name, _, _ in _route_configs(lst))


def _route_configs(
    lst: m.Listener,
) -> Iterable[tuple[str, m.VirtualHostSet, tuple[m.VirtualHost, ...]]]:
    """(route configuration name, the model's name for the set, its virtual hosts)."""
    if lst.http is not None:
        yield lst.name, (lst.name, None), lst.http
    for term in lst.https:
        yield (
            https_route_config_name(lst.name, term),
            (lst.name, term.server_names),
            term.virtual_hosts,
        )


# --- listeners ------------------------------------------------------------------------


def _listener_shape(lst: m.Listener) -> Hashable:
    """What a Listener message depends on (not the routes: those travel by RDS)."""
    return (
        lst.name,
        lst.address,
        lst.port,
        lst.http is not None,
        tuple((t.server_names, t.certificates) for t in lst.https),
        lst.passthrough,
    )


def _listener(lst: m.Listener, options: m.ProxyOptions, scoped: str | None = None) -> Message:
    """`scoped`: the route configuration name whose connection manager uses scoped RDS."""
    address = "0.0.0.0" if options.bind_all else lst.address
    chains: list[Message] = []

    def hcm(rc_name: str) -> Message:
        return pb.network_filter(
            pb.HCM_FILTER,
            pb.http_connection_manager(
                stat_prefix=rc_name,
                route_config_name=rc_name,
                xff_num_trusted_hops=options.xff_num_trusted_hops,
                scoped=rc_name == scoped,
            ),
        )

    if lst.http is not None:
        chains.append(pb.filter_chain(name=f"{lst.name}/http", filters=[hcm(lst.name)]))
    for term in lst.https:
        rc_name = https_route_config_name(lst.name, term)
        chains.append(
            pb.filter_chain(
                name=rc_name,
                filters=[hcm(rc_name)],
                server_names=term.server_names,
                transport_socket=pb.downstream_tls(term.certificates),
            )
        )
    for pt in lst.passthrough:
        shares = [(b.cluster, b.weight) for b in pt.backends if b.cluster and b.weight > 0]
        if not shares:
            shares = [(INVALID_BACKEND_CLUSTER, 1)]
        chains.append(
            pb.filter_chain(
                name=f"{lst.name}/passthrough/{pt.name}",
                filters=[pb.network_filter(pb.TCP_PROXY_FILTER, pb.tcp_proxy(pt.name, shares))],
                server_names=pt.server_names,
            )
        )
    if not chains:
        # A TLS listener with no usable route still listens (Envoy rejects a listener
        # without filter chains): every connection goes to the never-defined
        # invalid-backend cluster, i.e. is closed, as for a passthrough route whose
        # backends are all invalid.
        chains.append(
            pb.filter_chain(
                name=f"{lst.name}/no-routes",
                filters=[
                    pb.network_filter(
                        pb.TCP_PROXY_FILTER,
                        pb.tcp_proxy(f"{lst.name}/no-routes", [(INVALID_BACKEND_CLUSTER, 1)]),
                    )
                ],
            )
        )
    return pb.listener(
        name=lst.name,
        address=address,
        port=lst.port,
        chains=chains,
        tls_inspector=lst.http is None,
    )


# --- routes ---------------------------------------------------------------------------


def _domains(hostnames: Iterable[str]) -> list[str]:
    """The hostnames as they are: route configurations ignore the port in the host."""
    out: list[str] = []
    for h in hostnames:
        if h == "*":
            return ["*"]
        out.append(h)
    return out


def _virtual_host(vh: m.VirtualHost, origin: tuple[str, int]) -> Message:
    """`origin`: the listener's scheme and port (redirects default to them)."""
    routes = [_route(r, origin) for r in vh.routes]
    if any(r.match.grpc for r in vh.routes):
        routes.append(_grpc_unimplemented())
    return pb.VirtualHostMsg(name=vh.name, domains=_domains(vh.hostnames), routes=routes)


def _grpc_unimplemented() -> Message:
    """Unmatched gRPC calls: HTTP 200 with `grpc-status: 12` (UNIMPLEMENTED), a valid
    trailers-only gRPC response, from a route that matches only gRPC requests."""
    return pb.RouteMsg(
        name="grpc/unimplemented",
        match=pb.route_match(prefix="/", grpc=True),
        direct_response=pb.DirectResponseMsg(status=200),
        response_headers_to_add=[
            pb.header_value("content-type", "application/grpc", append=False),
            pb.header_value("grpc-status", "12", append=False),
            pb.header_value("grpc-message", "unknown service or method", append=False),
        ],
    )


def _path_match(p: m.PathMatch) -> dict[str, str]:
    if p.type is m.PathMatchType.EXACT:
        return {"path": p.value}
    if p.type is m.PathMatchType.REGEX:
        return {"path_regex": p.value}
    prefix = p.value.rstrip("/")
    if not prefix:
        return {"prefix": "/"}
    return {"separated_prefix": prefix}


def _value_matcher(value: str, type_: m.ValueMatchType) -> Message:
    if type_ is m.ValueMatchType.REGEX:
        return pb.string_regex(value)
    return pb.string_exact(value)


def _match(rm: m.RouteMatch) -> Message:
    headers = [pb.header_matcher(h.name, _value_matcher(h.value, h.type)) for h in rm.headers]
    if rm.method is not None:
        headers.append(pb.header_matcher(":method", pb.string_exact(rm.method)))
    query = [pb.query_matcher(q.name, _value_matcher(q.value, q.type)) for q in rm.query_params]
    return pb.route_match(**_path_match(rm.path), headers=headers, query=query, grpc=rm.grpc)


def _add_headers(msg: Message, mod: m.HeaderModifier | None, *, request: bool) -> None:
    if mod is None:
        return
    values = [pb.header_value(k, v, append=False) for k, v in mod.set]
    values += [pb.header_value(k, v, append=True) for k, v in mod.add]
    if request:
        msg.request_headers_to_add.extend(values)
        msg.request_headers_to_remove.extend(mod.remove)
    else:
        msg.response_headers_to_add.extend(values)
        msg.response_headers_to_remove.extend(mod.remove)


def _prefix_of(rm: m.RouteMatch) -> str | None:
    if rm.path.type is m.PathMatchType.PREFIX:
        return rm.path.value.rstrip("/")
    return None


def _path_rewrite(target: Message, mod: m.PathModifier, match: m.RouteMatch) -> None:
    """Shared by URL rewrite (RouteAction) and redirects (RedirectAction)."""
    is_redirect = isinstance(target, pb.RedirectMsg)
    if mod.type is m.PathModifierType.FULL:
        if is_redirect:
            target.path_redirect = mod.value
        else:
            target.regex_rewrite.CopyFrom(pb.regex_substitute("^/.*$", mod.value))
        return
    prefix = _prefix_of(match)
    replacement = mod.value
    if prefix is None:  # ReplacePrefixMatch only makes sense with a prefix match
        prefix = ""
    if replacement.endswith("/"):
        # "/foo" -> "/": "/foo/bar" must become "/bar", not "//bar".
        target.regex_rewrite.CopyFrom(
            pb.regex_substitute("^" + re.escape(prefix) + "/*", replacement)
        )
    elif prefix:
        target.prefix_rewrite = replacement
    else:
        target.regex_rewrite.CopyFrom(pb.regex_substitute("^/", replacement + "/"))


def _origin_matcher(origin: str) -> Message:
    if origin == "*":
        return pb.string_regex(".*")
    if "*" in origin:
        return pb.string_regex(".*".join(re.escape(p) for p in origin.split("*")))
    return pb.string_exact(origin)


def _cors(c: m.CORS) -> Message:
    return pb.cors_policy(
        origins=[_origin_matcher(o) for o in c.allow_origins],
        methods=", ".join(c.allow_methods),
        headers=", ".join(c.allow_headers),
        expose=", ".join(c.expose_headers),
        max_age=str(c.max_age_seconds),
        credentials=c.allow_credentials,
    )


_SCHEME_PORTS = {"http": 80, "https": 443}


def _redirect(r: m.Redirect, match: m.RouteMatch, origin: tuple[str, int]) -> Message:
    red = pb.RedirectMsg(response_code=pb.REDIRECT_CODES.get(r.status_code, 1))
    if r.scheme is not None:
        red.scheme_redirect = r.scheme
    if r.hostname is not None:
        red.host_redirect = r.hostname
    # Gateway API: without a port, the redirect port is the new scheme's well-known
    # port, or the listener's port when the scheme is kept; the Location SHOULD NOT
    # carry the port when it is the well-known port of its scheme.
    # Envoy writes `port_redirect` verbatim (`:443` included) and drops the request's
    # port; without it, it keeps the request's Host as sent (port and all) unless the
    # host is rewritten. So the port is set only when it must appear, or when the
    # request's Host carries a port that must go (a listener on a port that is not
    # its scheme's well-known one; Envoy then writes the equivalent `host:443`).
    scheme = r.scheme or origin[0]
    port = r.port
    if port is None:
        port = _SCHEME_PORTS.get(r.scheme, origin[1]) if r.scheme else origin[1]
    if port != _SCHEME_PORTS.get(scheme) or (
        r.hostname is None and origin[1] != _SCHEME_PORTS.get(origin[0])
    ):
        red.port_redirect = port
    if r.path is not None:
        _path_rewrite(red, r.path, match)
    return red


def _route(r: m.Route, origin: tuple[str, int]) -> Message:
    msg = pb.RouteMsg(name=r.name, match=_match(r.match))
    _add_headers(msg, r.request_headers, request=True)
    _add_headers(msg, r.response_headers, request=False)
    if r.cors is not None:
        msg.typed_per_filter_config[pb.CORS_FILTER].CopyFrom(pb.pack(_cors(r.cors)))
    action = r.action
    if isinstance(action, m.Redirect):
        msg.redirect.CopyFrom(_redirect(action, r.match, origin))
        return msg
    if isinstance(action, m.DirectResponse):
        msg.direct_response.CopyFrom(_direct(action.status, action.body))
        return msg
    shares = [b for b in action.backends if b.weight > 0]
    if not shares or all(b.cluster is None for b in shares):
        msg.direct_response.CopyFrom(_direct(500, ""))
        return msg
    ra = pb.RouteActionMsg(cluster_not_found_response_code=pb.CLUSTER_NOT_FOUND_500)
    simple = len(shares) == 1 and not shares[0].request_headers and not shares[0].response_headers
    if simple:
        ra.cluster = shares[0].cluster or INVALID_BACKEND_CLUSTER
    else:
        wc = pb.WeightedClusterMsg()
        for b in shares:
            cw = pb.ClusterWeightMsg(name=b.cluster or INVALID_BACKEND_CLUSTER)
            cw.weight.value = b.weight
            _add_headers(cw, b.request_headers, request=True)
            _add_headers(cw, b.response_headers, request=False)
            wc.clusters.append(cw)
        ra.weighted_clusters.CopyFrom(wc)
    if r.rewrite is not None:
        if r.rewrite.hostname is not None:
            ra.host_rewrite_literal = r.rewrite.hostname
        if r.rewrite.path is not None:
            _path_rewrite(ra, r.rewrite.path, r.match)
    for mirror in r.mirrors:
        mp = pb.MirrorPolicyMsg(cluster=mirror.cluster)
        if mirror.numerator < mirror.denominator:
            mp.runtime_fraction.CopyFrom(pb.runtime_fraction(mirror.numerator, mirror.denominator))
        ra.request_mirror_policies.append(mp)
    # timeouts.request (0 disables); gRPC routes default to no timeout (streams).
    if r.timeout_ms is not None:
        ra.timeout.CopyFrom(pb.duration_ms(r.timeout_ms))
    elif r.backend_timeout_ms:
        ra.timeout.CopyFrom(pb.duration_ms(r.backend_timeout_ms))
    elif r.match.grpc:
        ra.timeout.CopyFrom(pb.duration_ms(0))
    if r.backend_timeout_ms:  # timeouts.backendRequest: each try, no retries
        ra.retry_policy.CopyFrom(
            pb.RetryPolicyMsg(per_try_timeout=pb.duration_ms(r.backend_timeout_ms))
        )
        ra.retry_policy.num_retries.value = 0
    msg.route.CopyFrom(ra)
    return msg


def _direct(status: int, body: str) -> Message:
    d = pb.DirectResponseMsg(status=status)
    if body:
        d.body.CopyFrom(pb.data_source(body))
    return d


# --- clusters -------------------------------------------------------------------------


def _cluster(c: m.Cluster) -> Message:
    tls = None
    h2 = c.protocol is m.AppProtocol.H2C
    if c.tls is not None:
        tls = pb.upstream_tls(
            sni=c.tls.sni,
            ca_pem=c.tls.ca_pem,
            ca_file=SYSTEM_CA_FILE,
            sans=list(c.tls.subject_alt_names),
            alpn=["h2"] if h2 else [],
        )
    return pb.cluster(name=c.name, connect_timeout_ms=CONNECT_TIMEOUT_MS, h2=h2, upstream_tls=tls)


def _load_assignment(c: m.Cluster) -> Message:
    return pb.load_assignment(c.name, ((e.address, e.port) for e in c.endpoints if e.ready))
