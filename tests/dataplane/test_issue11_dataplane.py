"""Issue #11 through a real Envoy: redirects leave the well-known port out (item 9),
hosts match case-insensitively and with a trailing dot in both routing modes (item 10),
and a configuration Envoy rejects is isolated (NACK isolation)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dataplane_helpers import Backend, Plane, eventually, forward, free_address, start_backend

from propylon import model as m
from propylon.envoy import Translator
from propylon.resources import ObjectKey

pytestmark = pytest.mark.e2e
OPTIONS = m.ProxyOptions()


@pytest.fixture
def backend() -> Iterator[Backend]:
    b = start_backend("one")
    yield b
    b.close()


def _model(lst: tuple[str, int], backend: Backend, hosts: tuple[str, ...]) -> m.Model:
    name = f"default/gw/{lst[1]}"
    routes = (
        m.Route(
            "to-https",
            m.RouteMatch(path=m.PathMatch(m.PathMatchType.PREFIX, "/secure")),
            m.Redirect(scheme="https"),
        ),
        forward("default", "default:one:80"),
    )
    return m.Model(
        listeners=(
            m.Listener(
                name,
                lst[0],
                lst[1],
                http=tuple(m.VirtualHost(f"{name}/{h}", (h,), routes) for h in hosts),
            ),
        ),
        clusters=(m.Cluster("default:one:80", (m.Endpoint(backend.host, backend.port),)),),
    )


async def _get(lst: tuple[str, int], path: str, host: str) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False) as c:
        return await c.get(f"http://{lst[0]}:{lst[1]}{path}", headers={"host": host})


@pytest.mark.parametrize("scoped", [True, False], ids=["scoped", "one-rc"])
async def test_9_and_10_redirect_port_and_host_case(
    plane: Plane, backend: Backend, scoped: bool
) -> None:
    lst = free_address()  # a listener port that is not 80
    hosts = tuple(f"h{i}.scoped.local" for i in range(3))
    tr = Translator(scoped_min_hosts=2 if scoped else 10_000)
    res = tr.translate(_model(lst, backend, hosts), OPTIONS)
    assert bool(res.scoped_routes) is scoped
    await plane.xds.wait_acked(plane.xds.update(res), node_id=plane.envoy.node_id)

    async def served() -> None:
        assert (await _get(lst, "/", "h1.scoped.local")).status_code == 200

    await eventually(served, what="first 200")
    for host in ("H1.Scoped.Local", "h1.scoped.local.", f"H2.SCOPED.local:{lst[1]}"):
        r = await _get(lst, "/", host)
        assert r.status_code == 200, host
    assert (await _get(lst, "/", "nope.scoped.local")).status_code == 404

    r = await _get(lst, "/secure/x?y=1", f"h1.scoped.local:{lst[1]}")
    assert r.status_code == 302
    assert r.headers["location"] == "https://h1.scoped.local/secure/x?y=1"


# --- NACK isolation: if Envoy still rejects something, the rest keeps flowing ------------


async def test_envoy_rejection_is_isolated(
    tmp_path: Path, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A route Envoy rejects (the checks that would refuse it first are switched off
    here) is found by bisection, withheld with Envoy's message in its status and in
    health; the valid route keeps serving and a route added later is served too."""
    import importlib

    from propylon.runtime.instance import Instance
    from propylon.runtime.options import RunOptions

    build_module = importlib.import_module("propylon.gatewayapi.build")
    monkeypatch.setattr(build_module, "route_problems", lambda route: [])
    address, port = free_address()
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "base.yaml").write_text(
        NACK_BASE.format(port=port, backend_host=backend.host, backend_port=backend.port)
    )
    (manifests / "good.yaml").write_text(nack_route("good", "/"))
    (manifests / "bad.yaml").write_text(nack_route("bad", "/foo(?=x)", regex=True))
    instance = Instance(
        RunOptions(
            paths=(manifests,), state_dir=tmp_path / "state", default_pool=(f"{address}/32",)
        )
    )
    serving = asyncio.create_task(instance.serve())
    try:

        async def withheld() -> None:
            assert not serving.done()
            assert "HTTPRoute default/bad" in instance.health()["withheld"]

        async def rejected_in_status() -> dict[str, Any]:
            # Health names the route as soon as it is withheld; its status follows once
            # the build without it is done (on the worker thread: later under load).
            status = instance.statuses[ObjectKey("HTTPRoute", "default", "bad")]
            accepted = {c["type"]: c for c in status["parents"][0]["conditions"]}["Accepted"]
            assert accepted["status"] == "False", accepted
            return dict(accepted)

        await eventually(withheld, timeout=60, what="the bad route withheld")
        health = instance.health()
        assert health["status"] == "degraded"
        assert "invalid perl operator" in health["withheld"]["HTTPRoute default/bad"]
        accepted = await eventually(rejected_in_status, timeout=60, what="its status")
        assert "Envoy rejected" in accepted["message"]

        async def served(host: str) -> None:
            assert (await _get((address, port), "/", host)).status_code == 200

        await eventually(lambda: served("good.example"), timeout=20, what="good route")
        (manifests / "later.yaml").write_text(nack_route("later", "/"))
        await eventually(lambda: served("later.example"), timeout=20, what="later route")
    finally:
        instance.stop()
        await asyncio.wait_for(serving, 30)


NACK_BASE = """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: cilium}}
spec: {{controllerName: io.cilium/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw}}
spec:
  gatewayClassName: cilium
  listeners: [{{name: http, port: {port}, protocol: HTTP}}]
---
apiVersion: v1
kind: Service
metadata: {{name: svc}}
spec: {{ports: [{{port: 80}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: svc-1, labels: {{kubernetes.io/service-name: svc}}}}
addressType: IPv4
endpoints: [{{addresses: [{backend_host}]}}]
ports: [{{port: {backend_port}}}]
"""


def nack_route(name: str, path: str, *, regex: bool = False) -> str:
    kind = "RegularExpression" if regex else "PathPrefix"
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [{name}.example]
  rules:
  - matches: [{{path: {{type: {kind}, value: "{path}"}}}}]
    backendRefs: [{{name: svc, port: 80}}]
"""


async def test_11_http_route_beside_grpc_route_to_one_service_port(
    plane: Plane, backend: Backend
) -> None:
    """A GRPCRoute to the same Service port no longer turns the HTTPRoute's cluster
    into HTTP/2: the HTTP/1 backend keeps answering the HTTPRoute (it got 502)."""
    import yaml

    from propylon.gatewayapi import Inputs, build
    from propylon.resources import parse_object

    address, port = free_address()
    text = NACK_BASE.format(port=port, backend_host=backend.host, backend_port=backend.port)
    text += "---\n" + nack_route("web", "/")
    text += """---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: rpc}
spec:
  parentRefs: [{name: gw}]
  hostnames: [rpc.example]
  rules: [{backendRefs: [{name: svc, port: 80}]}]
"""
    objects = {o.key: o for o in (parse_object(d) for d in yaml.safe_load_all(text) if d)}
    result = build(Inputs(objects=objects, default_pool=(f"{address}/32",)))
    res = Translator().translate(result.model, OPTIONS)
    await plane.xds.wait_acked(plane.xds.update(res), node_id=plane.envoy.node_id)

    async def served() -> None:
        assert (await _get((address, port), "/", "web.example")).status_code == 200

    await eventually(served, timeout=10, what="the HTTPRoute over HTTP/1")
