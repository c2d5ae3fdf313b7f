"""The incremental `Builder` gives exactly what a full `build` gives, after any sequence of
changes (property-style: random sequences, fixed seeds)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from propylon import model as m
from propylon.gatewayapi import Builder, Inputs, build
from propylon.resources import ObjectKey, Resource, parse_object

NAMESPACES = ("gw", "a", "b")


def _gateway(hostname: str | None, second_port: bool, tls: bool = False) -> dict[str, Any]:
    http: dict[str, Any] = {
        "name": "http",
        "protocol": "HTTP",
        "port": 80,
        "allowedRoutes": {"namespaces": {"from": "All"}},
    }
    listeners = [http]
    if hostname:
        listeners.append(
            {
                "name": "narrow",
                "protocol": "HTTP",
                "port": 80,
                "hostname": hostname,
                "allowedRoutes": {"namespaces": {"from": "Same"}},
            }
        )
    if second_port:
        listeners.append({"name": "alt", "protocol": "HTTP", "port": 8080})
    if tls:
        listeners.append(
            {
                "name": "tls",
                "protocol": "TLS",
                "port": 443,
                "tls": {"mode": "Passthrough"},
                "allowedRoutes": {"namespaces": {"from": "All"}},
            }
        )
        for protocol in ("TCP", "UDP"):  # one port number, two sockets
            listeners.append(
                {
                    "name": protocol.lower(),
                    "protocol": protocol,
                    "port": 9000,
                    "allowedRoutes": {"namespaces": {"from": "All"}},
                }
            )
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "gw"},
        "spec": {
            "gatewayClassName": "cls",
            "listeners": listeners,
            "allowedListeners": {"namespaces": {"from": "All"}},
        },
    }


def _listener_set(rng: random.Random, ns: str, name: str) -> dict[str, Any]:
    """Listeners on the Gateway's port 80 (hostnames that may clash with its own and
    other ListenerSets') and on a port of their own."""
    listeners = []
    for entry in ("a", "b"):
        listener: dict[str, Any] = {
            "name": entry,
            "protocol": "HTTP",
            "port": rng.choice((80, 80, 8081)),
            "allowedRoutes": {"namespaces": {"from": rng.choice(("All", "Same"))}},
        }
        host = rng.choice((None, "x.example.com", "y.example.com", "ls.example.com"))
        if host:
            listener["hostname"] = host
        if all((li["port"], li.get("hostname")) != (listener["port"], host) for li in listeners):
            listeners.append(listener)
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "ListenerSet",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"parentRef": {"name": "gw", "namespace": "gw"}, "listeners": listeners},
    }


def _tls_route(rng: random.Random, ns: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1alpha2",
        "kind": "TLSRoute",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "parentRefs": [{"name": "gw", "namespace": "gw"}],
            "hostnames": [rng.choice(("x.example.com", "*.example.com", "t.example.com"))],
            "rules": [{"backendRefs": [{"name": f"s{rng.randrange(4)}", "port": 80}]}],
        },
    }


def _stream_route(rng: random.Random, kind: str, ns: str, name: str) -> dict[str, Any]:
    refs = [
        {
            "name": f"s{rng.randrange(4)}",
            "namespace": rng.choice((ns, ns, *NAMESPACES)),
            "port": 80,
            "weight": rng.choice((1, 0, 3)),
        }
        for _ in range(rng.randrange(1, 3))
    ]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "parentRefs": [{"name": "gw", "namespace": "gw"}],
            "rules": [{"backendRefs": refs}],
        },
    }


def _route(rng: random.Random, ns: str, name: str, listener_sets: bool = True) -> dict[str, Any]:
    kind = rng.choice(("HTTPRoute", "HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "UDPRoute"))
    if kind == "TLSRoute":
        return _tls_route(rng, ns, name)
    if kind in ("TCPRoute", "UDPRoute"):
        return _stream_route(rng, kind, ns, name)
    refs = [
        {
            "name": f"s{rng.randrange(4)}",
            "namespace": rng.choice((ns, ns, *NAMESPACES)),
            "port": rng.choice((80, 80, 81)),
            "weight": rng.choice((1, 1, 0, 3)),
        }
        for _ in range(rng.randrange(1, 3))
    ]
    rule: dict[str, Any] = {"backendRefs": refs}
    if kind == "HTTPRoute" and rng.random() < 0.3:
        rule["filters"] = [
            {
                "type": "RequestMirror",
                "requestMirror": {"backendRef": {"name": f"s{rng.randrange(4)}", "port": 80}},
            }
        ]
    if kind == "HTTPRoute" and rng.random() < 0.5:
        rule["matches"] = [{"path": {"type": "PathPrefix", "value": f"/p{rng.randrange(3)}"}}]
    parent: dict[str, Any] = {"name": "gw", "namespace": "gw"}
    if rng.random() < 0.2:
        parent["sectionName"] = rng.choice(("http", "narrow", "alt", "missing"))
    elif listener_sets and rng.random() < 0.3:
        parent = {
            "group": "gateway.networking.k8s.io",
            "kind": "ListenerSet",
            "name": f"ls{rng.randrange(3)}",
            "namespace": rng.choice(NAMESPACES),
        }
        if rng.random() < 0.3:
            parent["sectionName"] = rng.choice(("a", "b"))
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "parentRefs": [parent],
            "hostnames": [rng.choice(("x.example.com", "y.example.com", "*.example.com", "z.t"))],
            "rules": [rule],
        },
    }


def _service(rng: random.Random, ns: str, name: str) -> dict[str, Any]:
    ports: list[dict[str, Any]] = [{"name": "http", "port": 80}]
    if rng.random() < 0.5:
        ports.append({"name": "h2", "port": 81, "appProtocol": "kubernetes.io/h2c"})
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"ports": ports},
    }


def _slice(rng: random.Random, ns: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": f"s{rng.randrange(4)}"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 9000 + rng.randrange(3)}, {"name": "h2", "port": 9100}],
        "endpoints": [
            {"addresses": [f"10.0.0.{rng.randrange(1, 5)}"], "conditions": {"ready": True}}
        ],
    }


def _grant(ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": {"name": "g", "namespace": ns},
        "spec": {
            "from": [
                {"group": "gateway.networking.k8s.io", "kind": k, "namespace": o}
                for k in ("HTTPRoute", "GRPCRoute", "UDPRoute")
                for o in NAMESPACES
            ],
            "to": [{"group": "", "kind": "Service"}],
        },
    }


def _put(objects: dict[ObjectKey, Resource], doc: dict[str, Any]) -> ObjectKey:
    obj = parse_object(doc)
    objects[obj.key] = obj
    return obj.key


def _base() -> dict[ObjectKey, Resource]:
    objects: dict[ObjectKey, Resource] = {}
    _put(
        objects,
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "cls"},
            "spec": {"controllerName": "io.cilium/gateway-controller"},
        },
    )
    _put(objects, _gateway(None, False))
    return objects


def _mutate(rng: random.Random, objects: dict[ObjectKey, Resource]) -> set[ObjectKey]:
    """One random change (sometimes several); returns the keys it touched."""
    changed: set[ObjectKey] = set()
    for _ in range(rng.choice((1, 1, 1, 2, 5))):
        ns = rng.choice(NAMESPACES)
        what = rng.random()
        if what < 0.45:
            name = f"r{rng.randrange(12)}"
            key = next((k for k in objects if k.name == name and k.kind.endswith("Route")), None)
            if key is not None and rng.random() < 0.25:
                del objects[key]
                changed.add(key)
            else:
                if key is not None:
                    ns = key.namespace  # an update, possibly of kind
                    del objects[key]
                    changed.add(key)
                changed.add(_put(objects, _route(rng, ns, name)))
        elif what < 0.65:
            key = ObjectKey("Service", ns, f"s{rng.randrange(4)}")
            if key in objects and rng.random() < 0.3:
                del objects[key]
                changed.add(key)
            else:
                changed.add(_put(objects, _service(rng, ns, key.name)))
        elif what < 0.85:
            key = ObjectKey("EndpointSlice", ns, f"e{rng.randrange(5)}")
            if key in objects and rng.random() < 0.3:
                del objects[key]
                changed.add(key)
            else:
                changed.add(_put(objects, _slice(rng, ns, key.name)))
        elif what < 0.9:
            key = ObjectKey("ReferenceGrant", ns, "g")
            if key in objects:
                del objects[key]
                changed.add(key)
            else:
                changed.add(_put(objects, _grant(ns)))
        elif what < 0.96:
            key = ObjectKey("ListenerSet", ns, f"ls{rng.randrange(3)}")
            if key in objects and rng.random() < 0.3:
                del objects[key]
                changed.add(key)
            else:
                changed.add(_put(objects, _listener_set(rng, ns, key.name)))
        else:
            host = rng.choice((None, "x.example.com", "*.example.com"))
            tls = rng.random() < 0.5
            changed.add(_put(objects, _gateway(host, rng.random() < 0.5, tls)))
    return changed


def _same(a: Any, b: Any) -> None:
    assert a.model == b.model
    # Only the first result's statuses are sorted: later ones are patched (new keys last).
    assert dict(a.statuses) == dict(b.statuses)
    assert list(b.statuses) == sorted(b.statuses)
    assert a.services == b.services
    assert dict(a.addresses) == dict(b.addresses)
    assert a.diagnostics == b.diagnostics


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("hinted", [True, False])
def test_incremental_equals_full_build(seed: int, hinted: bool) -> None:
    rng = random.Random(seed)
    objects = _base()
    builder = Builder()
    reused = 0
    previous: dict[ObjectKey, str] = {}
    last: Any = None
    hints = 0
    for step in range(60):
        changed = _mutate(rng, objects)
        if rng.random() < 0.1:  # an address taken away (the world must be redone)
            previous = {k: "127.1.0.9" for k in previous}
        inputs = Inputs(
            objects=dict(objects), default_pool=("127.1.0.0/24",), previous_addresses=previous
        )
        before = last.statuses if last is not None else {}
        incremental = builder.build(inputs, changed if hinted and step else None)
        previous = dict(incremental.addresses)  # what the runtime feeds back
        if incremental.changed is not None:  # the rest is the same objects as before
            assert incremental.since is before
            assert before.keys() ^ incremental.statuses.keys() <= incremental.changed
            for key, status in incremental.statuses.items():
                assert key in incremental.changed or before[key] is status
        if last is not None:
            hints += _check_delta(last.model, incremental.model)
        last = incremental
        reused += builder.reused
        _same(incremental, build(inputs))
    assert reused > 0  # the memo was exercised, not bypassed
    assert hints > 0


def _vhost_sets(model: m.Model) -> dict[m.VirtualHostSet, tuple[m.VirtualHost, ...]]:
    out: dict[m.VirtualHostSet, tuple[m.VirtualHost, ...]] = {}
    for lst in model.listeners:
        if lst.http is not None:
            out[(lst.name, None)] = lst.http
        for term in lst.https:
            out[(lst.name, term.server_names)] = term.virtual_hosts
    return out


def _check_delta(before: m.Model, after: m.Model) -> int:
    """`after.delta`, if any, says exactly how `after` differs from `before`."""
    assert after.stamp is not None and after.stamp is not before.stamp
    delta = after.delta
    if delta is None:
        return 0
    assert delta.base is before.stamp
    old = {c.name: c for c in before.clusters}
    new = {c.name: c for c in after.clusters}
    for name in old.keys() | new.keys():
        if old.get(name) is not new.get(name):
            assert name in delta.clusters, name
    for name, cluster in delta.clusters.items():
        assert new.get(name) is cluster, name
    old_sets, new_sets = _vhost_sets(before), _vhost_sets(after)
    for key, vhosts in new_sets.items():
        was = old_sets.get(key)
        if was is None or was is vhosts:
            continue
        assert key in delta.virtual_hosts, key
        ids = {id(vh): vh for vh in was}
        for gone, made in delta.virtual_hosts[key]:
            if gone is not None:
                assert ids.pop(id(gone)) is gone
            if made is not None:
                assert id(made) not in ids
                ids[id(made)] = made
        assert ids == {id(vh): vh for vh in vhosts}
    return 1


def test_unchanged_routes_are_the_same_objects() -> None:
    rng = random.Random(7)
    objects = _base()
    for i in range(20):
        _put(objects, _route(rng, "a", f"r{i}", listener_sets=False))
        _put(objects, _service(rng, "a", f"s{i % 4}"))
    builder = Builder()
    first = builder.build(Inputs(objects=dict(objects), default_pool=("127.1.0.0/24",)))
    was = next(k.kind for k in objects if k.name == "r3" and k.kind.endswith("Route"))
    doc = _route(rng, "a", "r3", listener_sets=False)
    while doc["kind"] != was:  # an update of r3, not a new route of another kind
        doc = _route(rng, "a", "r3", listener_sets=False)
    key = _put(objects, doc)
    second = builder.build(Inputs(objects=dict(objects), default_pool=("127.1.0.0/24",)), {key})
    assert builder.reused == 19
    statuses_a, statuses_b = first.statuses, second.statuses
    same = [
        k for k in statuses_b if k.kind.endswith("Route") and statuses_a.get(k) is statuses_b[k]
    ]
    assert len(same) == 19
