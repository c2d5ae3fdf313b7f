"""Model -> xDS. Pure and deterministic; see the package docstring for names and shapes.

The messages come from one module per Envoy resource kind (`listener`, `route`,
`cluster`, `endpoint`, `secret`); what the Translator remembers between translations is
in `incremental`; what it returns is in `output`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial
from operator import attrgetter, itemgetter
from typing import cast

from immutables import Map

from propylon import model as m
from propylon.envoy.access import DENY_LISTENER, cluster_filter_key, deny_listener, listener_policy
from propylon.envoy.cluster import build_cluster
from propylon.envoy.endpoint import build_load_assignment
from propylon.envoy.incremental import GenerationalCache, HostState, PatchedOutput
from propylon.envoy.listener import build_listener, listener_shape, owns, route_configs
from propylon.envoy.output import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SCOPED_ROUTE_TYPE,
    SECRET_TYPE,
    TYPE_URLS,
    Encoded,
    Messages,
    XdsResources,
    encode,
)
from propylon.envoy.route import build_route_configuration, build_scope, build_virtual_host
from propylon.envoy.secret import build_secret
from propylon.persistent import PersistentMap

#: An HTTP connection manager whose virtual hosts are all exact hostnames, at least this
#: many, gets one scoped route configuration per hostname (scoped RDS) instead of one
#: RouteConfiguration: Envoy then applies only the scope that changed (see `_scoped_hcm`).
SCOPED_MIN_HOSTS = 100

_NAME = attrgetter("name")
_NO_ACCESS = m.Access()


class Translator:
    """`translate` with memory: unchanged model fragments are not rebuilt or reserialized,
    and each result says what changed since the previous one (`XdsResources.changes`).

    Keep one per data plane (the runtime does); `translate()` below uses a fresh one.
    With a model whose `delta` is relative to the model translated last, the work is in
    proportion to the change; without, unchanged fragments are found by identity.
    """

    def __init__(self, *, scoped_min_hosts: int = SCOPED_MIN_HOSTS) -> None:
        self._scoped_min_hosts = scoped_min_hosts
        self._scopes = GenerationalCache()
        # Route configuration name -> its virtual hosts (and scopes) as last translated.
        self._hosts: dict[str, HostState] = {}
        self._vhosts = GenerationalCache()
        self._vhost_ids = GenerationalCache()
        self._routes = GenerationalCache(slack=0)
        self._listeners = GenerationalCache()
        self._clusters = GenerationalCache()
        self._cluster_ids = GenerationalCache()
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
        self._cluster_access: Mapping[str, m.BackendAccess] = _NO_ACCESS.clusters
        self._endpoints = GenerationalCache()
        self._secrets = GenerationalCache()
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
        self._last: dict[str, Map[str, Encoded]] = {t: Map() for t in TYPE_URLS}
        self._stamp: m.Stamp | None = None  # of the last translation
        self._model_stamp: m.Stamp | None = None  # of the model translated last

    def translate(self, model: m.Model, options: m.ProxyOptions) -> XdsResources:
        try:
            return self._translate(model, options)
        except BaseException:
            # Never reuse a half-updated state: start again (the next result has no base).
            self.__init__(scoped_min_hosts=self._scoped_min_hosts)  # type: ignore[misc]
            raise

    def _translate(self, model: m.Model, options: m.ProxyOptions) -> XdsResources:
        delta = model.delta
        last = self._model_stamp
        hint = delta if delta is not None and last is not None and delta.base is last else None
        outs = {t: PatchedOutput(self._last[t]) for t in TYPE_URLS}
        listeners: dict[str, Encoded] = {}
        routes: dict[str, Encoded] = {}
        secret_names: set[str] = set()
        scoped = self._scoped_hcm(model, hint)
        access = model.access or _NO_ACCESS
        for lst in model.listeners:
            own = scoped if scoped is not None and owns(lst, scoped) else None
            lp = listener_policy(model.access, lst.name)
            listeners[lst.name] = self._listeners.get(
                (listener_shape(lst), options, own, lp),
                partial(build_listener, lst, options, own, lp),
            )
            for rc_name, _, vhosts in route_configs(lst):
                scheme = "http" if rc_name == lst.name else "https"
                if rc_name == own:
                    self._scoped_route_configs(outs[SCOPED_ROUTE_TYPE], rc_name, (scheme, lst.port))
                else:
                    self._hosts[rc_name].drop_scopes()
                    routes[rc_name] = self._route_config(rc_name, vhosts, (scheme, lst.port))
            for term in lst.https:
                secret_names.update(term.certificates)
            for pt in lst.passthrough:
                secret_names.update(pt.certificates)  # TLSRoute, mode Terminate
        if model.access is not None:
            # Network policy answers refused clusters from this internal listener.
            listeners[DENY_LISTENER] = self._listeners.get(DENY_LISTENER, deny_listener)
        if scoped is None:
            outs[SCOPED_ROUTE_TYPE].replace({})
        self._all_clusters(
            model.clusters, hint, outs[CLUSTER_TYPE], outs[ENDPOINT_TYPE], access.clusters
        )
        secrets: dict[str, Encoded] = {}
        if len(secret_names) < len(model.secrets):
            # Gateways' backend client certificates (their clusters name them).
            secret_names.update(
                c.tls.client_certificate
                for c in model.clusters
                if c.tls is not None and c.tls.client_certificate is not None
            )
        for s in model.secrets:
            if s.name in secret_names:
                secrets[s.name] = self._secrets.get(s, partial(build_secret, s))
        outs[LISTENER_TYPE].replace(listeners)
        outs[ROUTE_TYPE].replace(routes)
        outs[SECRET_TYPE].replace(secrets)
        for gone in self._previous_vhosts.keys() - routes.keys():
            del self._previous_vhosts[gone]
        for gone in self._previous_routes.keys() - routes.keys():
            del self._previous_routes[gone]
        for cache in self._caches:
            cache.rotate(lazy=hint is not None)
        done = {t: outs[t].result() for t in TYPE_URLS}
        encoded = {t: PersistentMap.of(done[t]) for t in TYPE_URLS}
        base = self._stamp
        stamp = m.Stamp()
        self._last, self._stamp, self._model_stamp = done, stamp, model.stamp
        return XdsResources(
            listeners=Messages(encoded[LISTENER_TYPE]),
            routes=Messages(encoded[ROUTE_TYPE]),
            clusters=Messages(encoded[CLUSTER_TYPE]),
            endpoints=Messages(encoded[ENDPOINT_TYPE]),
            secrets=Messages(encoded[SECRET_TYPE]),
            scoped_routes=Messages(encoded[SCOPED_ROUTE_TYPE]),
            encoded=encoded,
            stamp=stamp,
            base=base,
            changes=None if base is None else {t: frozenset(outs[t].changed) for t in TYPE_URLS},
        )

    def _scoped_hcm(self, model: m.Model, hint: m.Delta | None) -> str | None:
        """The route configuration name of the one HTTP connection manager that uses
        scoped RDS (one scope per hostname, keyed on the request's host without its
        port), if any; from the per-route-configuration host counts kept up to date
        (`HostState`): no walk over every hostname per translation.

        Scoped RDS matches the key exactly, and a request whose key has no scope gets a
        404: there is no fallback. That equals Envoy's virtual host selection only when
        every virtual host is an exact hostname (no `*.example.com`, no `*`): then a host
        without a scope matches no virtual host either. (Except for case: Envoy
        lowercases the host to pick a virtual host, scopes compare bytes; Gateway API
        hostnames are lowercase.) Envoy subscribes to scoped RDS as a wildcard: every
        scoped connection manager gets every scope, so two of them would serve each
        other's hosts (no listener isolation). Hence one per Envoy: the biggest eligible
        one, if it has `scoped_min_hosts` hostnames (below that one RouteConfiguration
        costs Envoy little; ties: the first name)."""
        best: tuple[int, str] | None = None
        states = self._hosts
        seen: set[str] = set()
        for lst in model.listeners:
            for rc_name, key, vhosts in route_configs(lst):
                st = states.get(rc_name)
                changes = None
                if st is None:
                    st = states[rc_name] = HostState()
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

    def _scoped_route_configs(self, out: PatchedOutput, name: str, origin: tuple[str, int]) -> None:
        """One scope per hostname, `<name>/<hostname>`, carrying a RouteConfiguration of
        the same name with that host's virtual host only (inline: one resource).

        While this configuration stays the scoped one with the same origin, only the
        virtual hosts that `HostState.update` found gone or new are looked at; the
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
            entry = self._scopes.entry((scope, id(part)), partial(build_scope, scope, host, part))
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
                self._vhosts.entry((vh, origin), lambda: encode(build_virtual_host(vh, origin))),
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
        cluster_out: PatchedOutput,
        endpoint_out: PatchedOutput,
        access: Mapping[str, m.BackendAccess],
    ) -> None:
        """Clusters and endpoints by name, patched for the names the hint gives, or else
        for those whose Cluster object is not the one translated last (found by C-level
        set operations, so thousands of unchanged clusters cost no Python-level step)."""
        previous_access = self._cluster_access
        self._cluster_access = access
        if access is previous_access:
            policy_touched: set[str] = set()
        else:
            # Network policy changed verdicts: those clusters too (keys of either side
            # whose value differs; none at all without policy).
            policy_touched = {
                n
                for n in access.keys() | previous_access.keys()
                if access.get(n) != previous_access.get(n)
            }
        if clusters is self._cluster_tuple and not policy_touched:
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
        if policy_touched:
            touched = {*touched, *policy_touched}
        cluster_changes: dict[str, Encoded | None] = {}
        endpoint_changes: dict[str, Encoded | None] = {}
        for name in touched:
            c = objs.get(name)
            if c is None:
                cluster_changes[name] = endpoint_changes[name] = None
            else:
                cluster_changes[name], endpoint_changes[name] = self._cluster(c, access.get(name))
        cluster_out.update(cluster_changes)
        endpoint_out.update(endpoint_changes)

    def _cluster(self, c: m.Cluster, ba: m.BackendAccess | None = None) -> tuple[Encoded, Encoded]:
        # First by identity (the incremental Builder hands over the same Cluster objects
        # while they are unchanged): no hash of the endpoints. The entry keeps the
        # cluster alive and points at the content-keyed entries, kept alive with it.
        # Network policy's verdict (`ba`, usually None) is part of both keys.
        by_id = self._cluster_ids.entry(
            (id(c), ba),
            lambda: (
                self._clusters.entry(
                    (
                        c.name,
                        c.protocol,
                        c.tls,
                        bool(c.weighted),
                        cluster_filter_key(ba),
                    ),
                    lambda: encode(build_cluster(c, ba)),
                ),
                self._endpoints.entry(
                    (c.name, c.endpoints, c.weighted, ba),
                    lambda: encode(build_load_assignment(c, ba)),
                ),
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
        entry = self._routes.entry(
            (name, *(id(p) for p in parts)), partial(build_route_configuration, name, parts)
        )
        enc = cast(Encoded, entry[0])
        self._previous_routes[name] = (vhosts, origin, enc)
        return enc


def translate(
    model: m.Model, options: m.ProxyOptions, *, scoped_min_hosts: int = SCOPED_MIN_HOSTS
) -> XdsResources:
    """Translate a model into xDS resources (a fresh `Translator`, nothing cached)."""
    return Translator(scoped_min_hosts=scoped_min_hosts).translate(model, options)
