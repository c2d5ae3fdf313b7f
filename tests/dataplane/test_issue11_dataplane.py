"""Issue #11 through a real Envoy: redirects leave the well-known port out (item 9),
hosts match case-insensitively and with a trailing dot in both routing modes (item 10)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from conftest import Plane
from dataplane_helpers import Backend, eventually, forward, free_address, start_backend

from propylon import model as m
from propylon.envoy import Translator

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
