"""A Translator with memory gives what a fresh translation gives, and says exactly what
changed (`XdsResources.changes`), over random sequences of changes: hand-made models
where unchanged virtual hosts and clusters keep their identity (no hint: found by
identity), and models from the incremental Builder (with its `Model.delta` hint)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from propylon import model as m
from propylon.envoy import SCOPED_ROUTE_TYPE, Translator, XdsResources, translate
from propylon.gatewayapi import Builder, Inputs
from propylon.resources import ObjectKey, Resource, parse_object

OPTIONS = m.ProxyOptions()


def _check(got: XdsResources, previous: XdsResources | None, want: XdsResources) -> None:
    """`got` has `want`'s content, and its `changes` are exactly the names whose Encoded
    object is not the one in `previous` (the rest are the identical objects)."""
    g, w = got.by_type(), want.by_type()
    assert list(g) == list(w)
    for type_url, resources in w.items():
        assert g[type_url].keys() == resources.keys(), type_url
        for name, enc in resources.items():
            assert g[type_url][name].data == enc.data, (type_url, name)
            assert g[type_url][name].version == enc.version, (type_url, name)
    if previous is None:
        assert got.base is None and got.changes is None
        return
    assert got.base is previous.stamp and got.stamp is not previous.stamp
    assert got.changes is not None and set(got.changes) == set(g)
    p = previous.by_type()
    for type_url, now in g.items():
        before = p[type_url]
        expected = {n for n in now.keys() | before.keys() if now.get(n) is not before.get(n)}
        assert got.changes[type_url] == expected, type_url


def _route(host: str, cluster: str, header: str) -> m.Route:
    mod = m.HeaderModifier(set=(("x-v", header),)) if header else None
    return m.Route(
        f"r/{host}", m.RouteMatch(), m.Forward((m.WeightedBackend(cluster),)), response_headers=mod
    )


@pytest.mark.parametrize("seed", range(6))
def test_incremental_equals_fresh(seed: int) -> None:
    rnd = random.Random(seed)
    tr = Translator(scoped_min_hosts=4)
    vhosts: dict[str, m.VirtualHost] = {}  # by first hostname
    clusters: dict[str, m.Cluster] = {}
    port = 80
    serial = 0
    scoped_steps = 0
    previous: XdsResources | None = None
    for _ in range(60):
        for _ in range(rnd.randint(1, 4)):
            op = rnd.random()
            serial += 1
            if op < 0.45 or len(vhosts) < 2:  # add a host with a new cluster
                host = f"h{rnd.randint(0, 12)}.test"
                extra = (f"alias{serial}.test",) if rnd.random() < 0.2 else ()
                if rnd.random() < 0.05:
                    extra = ("*.wild.test",)  # a wildcard: no scopes while it is there
                cluster = f"c{rnd.randint(0, 8)}"
                clusters[cluster] = m.Cluster(cluster, (m.Endpoint("10.0.0.1", 80 + serial),))
                vhosts[host] = m.VirtualHost(
                    f"vh/{host}", (host, *extra), (_route(host, cluster, ""),)
                )
            elif op < 0.7:  # change a host's route
                host = rnd.choice(sorted(vhosts))
                old = vhosts[host]
                vhosts[host] = m.VirtualHost(
                    old.name, old.hostnames, (_route(host, "c0", str(serial)),)
                )
            elif op < 0.9:
                del vhosts[rnd.choice(sorted(vhosts))]
            elif op < 0.95:
                port = 81 if port == 80 else 80  # origin of every virtual host changes
            else:
                name = rnd.choice(sorted(clusters)) if clusters else "c0"
                clusters[name] = m.Cluster(name, (m.Endpoint("10.0.0.2", serial),))
        order = sorted(vhosts)
        if rnd.random() < 0.2:
            rnd.shuffle(order)
        model = m.Model(
            listeners=(
                m.Listener("ns/gw/1", "127.0.0.1", port, http=tuple(vhosts[h] for h in order)),
                m.Listener("ns/gw/2", "127.0.0.1", 8080, http=tuple(vhosts[h] for h in order[:3])),
            ),
            clusters=tuple(clusters[c] for c in sorted(clusters)),
        )
        got = tr.translate(model, OPTIONS)
        want = translate(model, OPTIONS, scoped_min_hosts=4)
        _check(got, previous, want)
        previous = got
        scoped_steps += bool(want.by_type()[SCOPED_ROUTE_TYPE])
    assert 0 < scoped_steps < 60


# --- through the incremental Builder (models with a Delta hint) --------------------------

HOSTS = 12


def _doc(kind: str, name: str, **rest: Any) -> dict[str, Any]:
    api = {
        "HTTPRoute": "gateway.networking.k8s.io/v1",
        "Gateway": "gateway.networking.k8s.io/v1",
        "GatewayClass": "gateway.networking.k8s.io/v1",
        "Service": "v1",
        "EndpointSlice": "discovery.k8s.io/v1",
    }[kind]
    meta: dict[str, Any] = {"name": name}
    if kind != "GatewayClass":
        meta["namespace"] = "ns"
    meta.update(rest.pop("metadata", {}))
    return {"apiVersion": api, "kind": kind, "metadata": meta, **rest}


def _gateway(second: bool) -> dict[str, Any]:
    listeners: list[dict[str, Any]] = [{"name": "http", "protocol": "HTTP", "port": 80}]
    if second:
        listeners.append({"name": "alt", "protocol": "HTTP", "port": 8080, "hostname": "h1.test"})
    return _doc("Gateway", "gw", spec={"gatewayClassName": "cls", "listeners": listeners})


def _http_route(rnd: random.Random, name: str) -> dict[str, Any]:
    hosts = [f"h{rnd.randrange(HOSTS)}.test" for _ in range(rnd.choice((1, 1, 2)))]
    if rnd.random() < 0.02:
        hosts = ["*.wild.test"]  # a wildcard: no scopes while the route is there
    rule: dict[str, Any] = {
        "backendRefs": [{"name": f"s{rnd.randrange(6)}", "port": 80}],
        "matches": [{"path": {"type": "PathPrefix", "value": f"/{name}/{rnd.randrange(3)}"}}],
    }
    if rnd.random() < 0.3:
        rule["filters"] = [
            {
                "type": "ResponseHeaderModifier",
                "responseHeaderModifier": {"set": [{"name": "x-v", "value": str(rnd.random())}]},
            }
        ]
    return _doc(
        "HTTPRoute",
        name,
        spec={"parentRefs": [{"name": "gw"}], "hostnames": hosts, "rules": [rule]},
    )


def _service(name: str) -> dict[str, Any]:
    return _doc("Service", name, spec={"ports": [{"name": "http", "port": 80}]})


def _slice(rnd: random.Random, svc: str) -> dict[str, Any]:
    return _doc(
        "EndpointSlice",
        f"{svc}-1",
        metadata={"labels": {"kubernetes.io/service-name": svc}},
        addressType="IPv4",
        ports=[{"name": "http", "port": 9000 + rnd.randrange(3)}],
        endpoints=[{"addresses": [f"10.0.0.{rnd.randrange(1, 4)}"], "conditions": {"ready": True}}],
    )


def _put(objects: dict[ObjectKey, Resource], doc: dict[str, Any]) -> ObjectKey:
    obj = parse_object(doc)
    objects[obj.key] = obj
    return obj.key


def _mutate(rnd: random.Random, objects: dict[ObjectKey, Resource]) -> set[ObjectKey]:
    changed: set[ObjectKey] = set()
    for _ in range(rnd.choice((1, 1, 1, 2, 4))):
        what = rnd.random()
        if what < 0.5:  # add, edit or delete a route
            key = ObjectKey("HTTPRoute", "ns", f"r{rnd.randrange(16)}")
            if key in objects and rnd.random() < 0.3:
                del objects[key]
                changed.add(key)
            else:
                changed.add(_put(objects, _http_route(rnd, key.name)))
        elif what < 0.7:  # a Service comes or goes
            key = ObjectKey("Service", "ns", f"s{rnd.randrange(6)}")
            if key in objects and rnd.random() < 0.4:
                del objects[key]
                changed.add(key)
            else:
                changed.add(_put(objects, _service(key.name)))
        elif what < 0.95:  # endpoints change
            svc = f"s{rnd.randrange(6)}"
            key = ObjectKey("EndpointSlice", "ns", f"{svc}-1")
            if key in objects and rnd.random() < 0.3:
                del objects[key]
                changed.add(key)
            else:
                changed.add(_put(objects, _slice(rnd, svc)))
        else:  # the world changes: no hint for the next model
            changed.add(_put(objects, _gateway(rnd.random() < 0.5)))
    return changed


@pytest.mark.parametrize("seed", range(8))
def test_builder_models_translate_as_fresh(seed: int) -> None:
    rnd = random.Random(seed)
    objects: dict[ObjectKey, Resource] = {}
    _put(
        objects,
        _doc("GatewayClass", "cls", spec={"controllerName": "io.cilium/gateway-controller"}),
    )
    _put(objects, _gateway(False))
    builder = Builder()
    tr = Translator(scoped_min_hosts=4)
    previous: XdsResources | None = None
    hinted = scoped = unscoped = 0
    addresses: dict[ObjectKey, str] = {}
    for step in range(80):
        changed = _mutate(rnd, objects)
        inputs = Inputs(
            objects=dict(objects), default_pool=("127.1.0.0/24",), previous_addresses=addresses
        )
        result = builder.build(inputs, changed if step else None)
        addresses = dict(result.addresses)
        model = result.model
        hinted += model.delta is not None
        got = tr.translate(model, OPTIONS)
        want = translate(model, OPTIONS, scoped_min_hosts=4)
        _check(got, previous, want)
        if want.by_type()[SCOPED_ROUTE_TYPE]:
            scoped += 1
        else:
            unscoped += 1
        previous = got
    assert hinted > 40 and scoped > 5 and unscoped > 0
