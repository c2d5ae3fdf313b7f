"""NACK isolation's bisection, with a stand-in for `envoy --mode validate`."""

from __future__ import annotations

from propylon import model as m
from propylon.envoy import XdsResources
from propylon.resources import ObjectKey
from propylon.runtime.isolation import find_rejected, without


def _model(names: list[str]) -> m.Model:
    routes = tuple(
        m.Route(
            f"HTTPRoute/default/{n}/rule/0/match/0",
            m.RouteMatch(path=m.PathMatch(m.PathMatchType.PREFIX, f"/{n}")),
            m.DirectResponse(200),
        )
        for n in names
    )
    vh = m.VirtualHost("default/gw/80/*", ("*",), routes)
    return m.Model(listeners=(m.Listener("default/gw/80", "127.0.0.1", 80, http=(vh,)),))


async def _validate(resources: XdsResources) -> str | None:
    """Rejects any configuration with a route whose prefix starts with /bad."""
    for rc in resources.routes.values():
        for vh in rc.virtual_hosts:
            for route in vh.routes:
                if route.match.path_separated_prefix.startswith("/bad"):
                    return f"rejected {route.name}"
    return None


async def test_finds_each_rejected_route() -> None:
    names = [f"ok{i}" for i in range(20)] + ["bad-a", "bad-b"]
    found = await find_rejected(_model(names), m.ProxyOptions(), _validate)
    assert set(found) == {
        ObjectKey("HTTPRoute", "default", "bad-a"),
        ObjectKey("HTTPRoute", "default", "bad-b"),
    }
    assert "rejected HTTPRoute/default/bad-a" in found[ObjectKey("HTTPRoute", "default", "bad-a")]


async def test_nothing_to_find_when_it_validates() -> None:
    assert await find_rejected(_model(["a", "b"]), m.ProxyOptions(), _validate) == {}


def test_without_keeps_the_rest() -> None:
    model = _model(["a", "b"])
    less = without(model, {ObjectKey("HTTPRoute", "default", "a")})
    assert [r.name for r in less.listeners[0].http[0].routes] == [
        "HTTPRoute/default/b/rule/0/match/0"
    ]  # type: ignore[index]
    assert without(model, set()) is model


def test_unexplained_rejection_makes_gateways_not_programmed() -> None:
    import yaml

    from propylon.resources import parse_object
    from propylon.runtime.pipeline import evaluate
    from propylon.store import ChangeSet, Store, StoredObject

    docs = yaml.safe_load_all(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: cilium}
spec: {controllerName: io.cilium/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: cilium
  listeners: [{name: http, port: 80, protocol: HTTP}]
"""
    )
    objects = {o.key: StoredObject(o, None) for o in map(parse_object, docs)}
    store = Store(now=lambda: "2026-01-01T00:00:00Z", new_uid=lambda: "u")
    changeset = ChangeSet(objects=objects)
    snapshot = store.apply(changeset)
    from propylon.values import Values

    evaluation = evaluate(snapshot, changeset, Values(), rejected="bad thing")
    status = evaluation.result.statuses[ObjectKey("Gateway", "default", "gw")]
    programmed = {c["type"]: c for c in status["conditions"]}["Programmed"]
    assert programmed["status"] == "False"
    assert "Envoy rejected the latest configuration: bad thing" in programmed["message"]
