"""Real Envoy, real sockets: AdsServer + EnvoySupervisor + hand-built models."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dataplane_helpers import (
    Backend,
    Plane,
    eventually,
    forward,
    free_address,
    http_model,
    make_ca,
    start_backend,
    start_tls_backend,
)

from propylon import model as m
from propylon.envoy import Translator

pytestmark = pytest.mark.e2e
OPTIONS = m.ProxyOptions()


@pytest.fixture
def backends() -> Iterator[dict[str, Backend]]:
    b = {name: start_backend(name) for name in ("one", "two")}
    yield b
    for x in b.values():
        x.close()


def clusters(b: dict[str, Backend]) -> dict[str, tuple[str, int]]:
    return {f"default:{n}:80": (x.host, x.port) for n, x in b.items()}


def non_loopback_address() -> str | None:
    """An address of this host outside 127/8 (a client bound to it is "external")."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
        except OSError:
            return None
        addr = str(s.getsockname()[0])
    return None if addr.startswith("127.") else addr


async def get_ok(url: str, **kw: object) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False) as c:
        r = await c.get(url, **kw)  # type: ignore[arg-type]
    assert r.status_code == 200, (r.status_code, r.text)
    return r


async def test_http_route(plane: Plane, backends: dict[str, Backend]) -> None:
    lst = free_address()
    model = http_model(lst, clusters(backends), (forward("r0", "default:one:80"),))
    version = plane.xds.update(Translator().translate(model, OPTIONS))
    await plane.xds.wait_acked(version, node_id=plane.envoy.node_id)
    url = f"http://{lst[0]}:{lst[1]}/hello"
    r = await eventually(lambda: get_ok(url), what="first 200")
    body = r.json()
    assert body["backend"] == "one"
    assert body["path"] == "/hello"
    # Envoy appends the peer address to X-Forwarded-For (for a loopback peer: the host's
    # own address, its local_info address, and the request counts as internal).
    xff = body["headers"]["x-forwarded-for"]
    assert xff
    r = await get_ok(url, headers={"x-forwarded-for": "10.9.9.9"})
    assert r.json()["headers"]["x-forwarded-for"] == f"10.9.9.9,{xff}"
    # From a non-loopback source, the client is external: X-Envoy-External-Address.
    outside = non_loopback_address()
    if outside is None:
        return
    transport = httpx.AsyncHTTPTransport(local_address=outside)
    async with httpx.AsyncClient(trust_env=False, transport=transport) as c:
        r = await c.get(url, headers={"x-forwarded-for": "10.9.9.9"})
    assert r.json()["headers"]["x-forwarded-for"] == f"10.9.9.9,{outside}"
    assert r.json()["headers"]["x-envoy-external-address"] == outside


async def test_update_under_keepalive_load(plane: Plane, backends: dict[str, Backend]) -> None:
    """Route changes, and switching to another cluster (the old one removed), while a
    keep-alive client sends requests: none fails and Envoy is never restarted."""
    lst = free_address()
    url = f"http://{lst[0]}:{lst[1]}/load"
    tr = Translator()
    cl = clusters(backends)
    one = {"default:one:80": cl["default:one:80"]}
    two = {"default:two:80": cl["default:two:80"]}

    def publish(model: m.Model) -> int:
        return plane.xds.update(tr.translate(model, OPTIONS))

    await plane.xds.wait_acked(
        publish(http_model(lst, one, (forward("r", "default:one:80"),))), timeout=10
    )
    await eventually(lambda: get_ok(url), what="first 200")
    pid = plane.envoy.pid
    failures: list[str] = []
    seen: list[tuple[str, str | None]] = []
    stop = asyncio.Event()

    async def client() -> None:
        async with httpx.AsyncClient(trust_env=False) as c:
            while not stop.is_set():
                try:
                    r = await c.get(url)
                except httpx.HTTPError as e:
                    failures.append(repr(e))
                    continue
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text}")
                else:
                    seen.append((r.json()["backend"], r.headers.get("x-step")))

    task = asyncio.create_task(client())
    steps = [
        (one, "default:one:80", "1", "one"),
        ({**one, **two}, "default:two:80", "2", "two"),
        (two, "default:two:80", "3", "two"),  # cluster one removed
        (one, "default:one:80", "4", "one"),  # cluster two removed, one back
    ]
    for cls, target, step, expect in steps:
        mod = m.HeaderModifier(set=(("x-step", step),))
        v = publish(http_model(lst, cls, (forward("r", target, response_headers=mod),)))
        await plane.xds.wait_acked(v, timeout=10)
        n = len(seen)

        async def probe(n: int = n, step: str = step, expect: str = expect) -> None:
            assert sum(s == (expect, step) for s in seen[n:]) >= 10, seen[-3:]
            assert not failures

        await eventually(probe, what=f"step {step}")
    stop.set()
    await task
    assert not failures, failures[:5]
    assert len(seen) >= 40
    assert plane.envoy.pid == pid and plane.envoy.restarts == 0


async def test_restart_after_sigkill(plane: Plane, backends: dict[str, Backend]) -> None:
    lst = free_address()
    model = http_model(lst, clusters(backends), (forward("r0", "default:two:80"),))
    await plane.xds.wait_acked(plane.xds.update(Translator().translate(model, OPTIONS)))
    url = f"http://{lst[0]}:{lst[1]}/"
    await eventually(lambda: get_ok(url), what="first 200")
    old = plane.envoy.pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    await plane.envoy.wait_restarted(1, timeout=30)
    assert plane.envoy.pid not in (None, old)
    r = await eventually(lambda: get_ok(url), timeout=30)
    assert r.json()["backend"] == "two"
    await plane.xds.wait_acked(node_id=plane.envoy.node_id, timeout=30)


async def test_route_features(plane: Plane, backends: dict[str, Backend]) -> None:
    lst = free_address()
    cl = clusters(backends)
    routes = (
        m.Route(
            "redirect",
            m.RouteMatch(path=m.PathMatch(m.PathMatchType.PREFIX, "/old")),
            m.Redirect(path=m.PathModifier(m.PathModifierType.PREFIX, "/new"), status_code=301),
        ),
        m.Route(
            "to-https",
            m.RouteMatch(path=m.PathMatch(m.PathMatchType.PREFIX, "/secure")),
            m.Redirect(scheme="https"),
        ),
        m.Route(
            "to-host-port",
            m.RouteMatch(path=m.PathMatch(m.PathMatchType.PREFIX, "/moved")),
            m.Redirect(hostname="new.test", port=8443, status_code=307),
        ),
        m.Route(
            "to-host",
            m.RouteMatch(path=m.PathMatch(m.PathMatchType.PREFIX, "/elsewhere")),
            m.Redirect(hostname="new.test"),
        ),
        m.Route(
            "direct",
            m.RouteMatch(path=m.PathMatch(m.PathMatchType.EXACT, "/teapot")),
            m.DirectResponse(418, "short and stout"),
        ),
        m.Route(
            "broken",
            m.RouteMatch(path=m.PathMatch(m.PathMatchType.PREFIX, "/broken")),
            m.Forward((m.WeightedBackend(None),)),
        ),
        m.Route(
            "half-broken",
            m.RouteMatch(path=m.PathMatch(m.PathMatchType.PREFIX, "/half")),
            m.Forward((m.WeightedBackend(None), m.WeightedBackend("default:one:80", 0))),
        ),
        m.Route(
            "invalid-share",
            m.RouteMatch(path=m.PathMatch(m.PathMatchType.PREFIX, "/invalid-share")),
            m.Forward((m.WeightedBackend(None, 1), m.WeightedBackend("default:one:80", 1))),
        ),
        m.Route(
            "rewrite",
            m.RouteMatch(
                path=m.PathMatch(m.PathMatchType.PREFIX, "/api"),
                headers=(m.HeaderMatch("x-v", "2"),),
            ),
            m.Forward(
                (
                    m.WeightedBackend(
                        "default:two:80",
                        request_headers=m.HeaderModifier(set=(("x-backend-mod", "yes"),)),
                    ),
                )
            ),
            rewrite=m.URLRewrite("rewritten.test", m.PathModifier(m.PathModifierType.PREFIX, "/")),
            request_headers=m.HeaderModifier(add=(("x-added", "a"),), remove=("x-drop",)),
        ),
        m.Route(
            "query",
            m.RouteMatch(
                path=m.PathMatch(m.PathMatchType.PREFIX, "/api"),
                query_params=(m.QueryParamMatch("q", "x"),),
                method="GET",
            ),
            m.Forward((m.WeightedBackend("default:two:80"),)),
        ),
        forward(
            "mirror",
            "default:one:80",
            "/mirror",
            mirrors=(m.Mirror("default:two:80"),),
            cors=m.CORS(allow_origins=("https://*.example.test",), allow_methods=("PUT",)),
        ),
        forward("default", "default:one:80"),
    )
    model = http_model(lst, cl, routes, hostnames=("features.test",))
    await plane.xds.wait_acked(plane.xds.update(Translator().translate(model, OPTIONS)))
    base = f"http://{lst[0]}:{lst[1]}"
    host = {"host": f"features.test:{lst[1]}"}
    await eventually(lambda: get_ok(f"{base}/", headers=host), what="first 200")
    async with httpx.AsyncClient(trust_env=False, base_url=base, headers=host) as c:
        r = await c.get("/old/x")
        assert r.status_code == 301 and r.headers["location"].endswith("/new/x")
        r = await c.get("/secure/x?y=1")
        assert r.status_code == 302
        # The well-known port of the new scheme is left out (issue #11, item 9).
        assert r.headers["location"] == "https://features.test/secure/x?y=1"
        r = await c.get("/elsewhere")
        assert r.status_code == 302
        assert r.headers["location"] == f"http://new.test:{lst[1]}/elsewhere"
        r = await c.get("/moved")
        assert r.status_code == 307
        assert r.headers["location"] == "http://new.test:8443/moved"
        r = await c.get("/teapot")
        assert (r.status_code, r.text) == (418, "short and stout")
        assert (await c.get("/broken")).status_code == 500
        assert (await c.get("/half")).status_code == 500
        codes = {(await c.get("/invalid-share")).status_code for _ in range(40)}
        assert codes == {200, 500}
        r = await c.get("/api/v1", headers={"x-v": "2", "x-drop": "1", "x-added": "0"})
        body = r.json()
        assert body["backend"] == "two" and body["path"] == "/v1"
        assert body["headers"]["host"] == "rewritten.test"
        assert body["headers"]["x-backend-mod"] == "yes"
        assert body["headers"]["x-added"] == "0,a"
        assert "x-drop" not in body["headers"]
        assert (await c.get("/api?q=x")).json()["backend"] == "two"
        assert (await c.get("/api?q=y")).json()["backend"] == "one"
        assert (await c.get("/apix?q=x")).json()["backend"] == "one"  # prefix is per segment
        r = await c.get("/", headers={"host": "other.test"})
        assert r.status_code == 404  # no virtual host
        assert (await c.get("/mirror/m1")).json()["backend"] == "one"
        r = await c.options(
            "/mirror/x",
            headers={
                "origin": "https://app.example.test",
                "access-control-request-method": "PUT",
            },
        )
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://app.example.test"
        assert "PUT" in r.headers["access-control-allow-methods"]
        r = await c.options(
            "/mirror/x",
            headers={"origin": "https://evil.test", "access-control-request-method": "PUT"},
        )
        assert "access-control-allow-origin" not in r.headers

    async def mirrored() -> None:
        assert any(p == "/mirror/m1" for p, _ in backends["two"].server.requests)

    await eventually(mirrored, what="mirrored request")


async def test_https_termination_and_passthrough(
    plane: Plane, backends: dict[str, Backend], tmp_path: Path
) -> None:
    """Two TLS-terminating chains chosen by SNI, each with its own certificate and
    routes, and a passthrough chain forwarding TLS untouched to a TLS backend."""
    ca = make_ca()
    a_crt, a_key = ca.issue("a.example.test")
    b_crt, b_key = ca.issue("b.example.test", "*.b.example.test")
    pt_crt, pt_key = ca.issue("pt.example.test")
    tls_backend = start_tls_backend("passthrough", pt_crt, pt_key, tmp_path)
    try:
        lst = free_address()
        name = f"default/gw/{lst[1]}"

        def term(host: str, cert: str, cluster: str) -> m.TLSTermination:
            return m.TLSTermination(
                (host,),
                (cert,),
                (m.VirtualHost(f"{name}/{host}", (host,), (forward(host, cluster),)),),
            )

        model = m.Model(
            listeners=(
                m.Listener(
                    name,
                    lst[0],
                    lst[1],
                    https=(
                        term("a.example.test", "default/a", "default:one:80"),
                        term("b.example.test", "default/b", "default:two:80"),
                    ),
                    passthrough=(
                        m.TLSPassthrough(
                            "TLSRoute/default/pt",
                            ("pt.example.test",),
                            (m.WeightedBackend("default:pt:443"),),
                        ),
                    ),
                ),
            ),
            clusters=(
                m.Cluster(
                    "default:one:80", (m.Endpoint(backends["one"].host, backends["one"].port),)
                ),
                m.Cluster(
                    "default:two:80", (m.Endpoint(backends["two"].host, backends["two"].port),)
                ),
                m.Cluster(
                    "default:pt:443",
                    (m.Endpoint(tls_backend.host, tls_backend.port),),
                    protocol=m.AppProtocol.TCP,
                ),
            ),
            secrets=(m.Secret("default/a", a_crt, a_key), m.Secret("default/b", b_crt, b_key)),
        )
        await plane.xds.wait_acked(plane.xds.update(Translator().translate(model, OPTIONS)))
        url = f"https://{lst[0]}:{lst[1]}/x"

        async def fetch(sni: str) -> httpx.Response:
            async with httpx.AsyncClient(trust_env=False, verify=ca.client_context()) as c:
                r = await c.get(url, headers={"host": sni}, extensions={"sni_hostname": sni})
            assert r.status_code == 200, r.text
            return r

        r = await eventually(lambda: fetch("a.example.test"), what="HTTPS a")
        assert r.json()["backend"] == "one"
        # the certificate was verified against the SNI name, so chain b served b's cert
        assert (await fetch("b.example.test")).json()["backend"] == "two"
        r = await fetch("pt.example.test")
        assert r.json()["backend"] == "passthrough"
        assert "x-forwarded-for" not in r.json()["headers"]  # Envoy never saw HTTP
    finally:
        tls_backend.close()


async def test_grpc_h2c(plane: Plane) -> None:
    """gRPC over a plain HTTP listener (h2c) to an h2c backend; a method no route
    matches gets UNIMPLEMENTED from the catch-all."""
    import grpc

    async def say(request: bytes, context: object) -> bytes:
        return b"echo:" + request

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "test.Echo", {"Say": grpc.unary_unary_rpc_method_handler(say)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        lst = free_address()
        route = m.Route(
            "GRPCRoute/default/echo/rule/0/match/0",
            m.RouteMatch(path=m.PathMatch(m.PathMatchType.EXACT, "/test.Echo/Say"), grpc=True),
            m.Forward((m.WeightedBackend("default:echo:9000"),)),
        )
        model = http_model(
            lst,
            {"default:echo:9000": ("127.0.0.1", port)},
            (route,),
            protocol=m.AppProtocol.H2C,
        )
        await plane.xds.wait_acked(plane.xds.update(Translator().translate(model, OPTIONS)))
        async with grpc.aio.insecure_channel(f"{lst[0]}:{lst[1]}") as channel:
            say_rpc = channel.unary_unary("/test.Echo/Say")

            async def call() -> bytes:
                return bytes(await say_rpc(b"hi", timeout=2))

            assert await eventually(call, what="gRPC call") == b"echo:hi"
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await channel.unary_unary("/test.Echo/Missing")(b"x", timeout=2)
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await server.stop(None)


async def test_websocket_upgrade(plane: Plane) -> None:
    """The HCM allows websocket upgrades; after the 101 bytes flow both ways."""
    guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        key = next(
            line.split(":", 1)[1].strip()
            for line in head.split("\r\n")
            if line.lower().startswith("sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1((key + guid).encode()).digest()).decode()
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept.encode() + b"\r\n\r\n"
        )
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        lst = free_address()
        model = http_model(
            lst,
            {"default:ws:80": ("127.0.0.1", port)},
            (forward("ws", "default:ws:80"),),
            protocol=m.AppProtocol.WEBSOCKET,
        )
        await plane.xds.wait_acked(plane.xds.update(Translator().translate(model, OPTIONS)))

        async def upgrade() -> bytes:
            reader, writer = await asyncio.open_connection(*lst)
            try:
                writer.write(
                    b"GET /ws HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                )
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
                assert head.startswith(b"HTTP/1.1 101"), head
                writer.write(b"raw frame bytes")
                return await asyncio.wait_for(reader.readexactly(15), 2)
            finally:
                writer.close()

        assert await eventually(upgrade, what="websocket") == b"raw frame bytes"
    finally:
        server.close()
        await server.wait_closed()


async def test_upstream_tls(plane: Plane, tmp_path: Path) -> None:
    """BackendTLSPolicy: Envoy originates TLS, checks the CA and the SAN, sends SNI."""
    ca = make_ca()
    crt, key = ca.issue("backend.example.test")
    backend = start_tls_backend("secure", crt, key, tmp_path)
    try:
        lst = free_address()

        def model(san: str) -> m.Model:
            name = f"default/gw/{lst[1]}"
            return m.Model(
                listeners=(
                    m.Listener(
                        name,
                        lst[0],
                        lst[1],
                        http=(
                            m.VirtualHost(
                                f"{name}/*", ("*",), (forward("r", "default:secure:443"),)
                            ),
                        ),
                    ),
                ),
                clusters=(
                    m.Cluster(
                        "default:secure:443",
                        (m.Endpoint(backend.host, backend.port),),
                        tls=m.UpstreamTLS(
                            "backend.example.test", ca.cert_pem, (("Hostname", san),)
                        ),
                    ),
                ),
            )

        tr = Translator()

        async def publish(san: str) -> None:
            await plane.xds.wait_acked(plane.xds.update(tr.translate(model(san), OPTIONS)))

        await publish("backend.example.test")
        url = f"http://{lst[0]}:{lst[1]}/secure"
        r = await eventually(lambda: get_ok(url), what="upstream TLS")
        assert r.json()["backend"] == "secure"
        # a SAN the certificate does not have: the handshake fails, Envoy answers 503
        await publish("wrong.example.test")

        async def refused() -> None:
            async with httpx.AsyncClient(trust_env=False) as c:
                assert (await c.get(url)).status_code == 503

        await eventually(refused, what="SAN mismatch refused")
    finally:
        backend.close()


async def test_scoped_routes_per_host(plane: Plane, backends: dict[str, Backend]) -> None:
    """The connection manager with the most exact hostnames gets one scope per host
    (scoped RDS): a host, and `host:port`, reach their routes; an unknown host gets 404;
    another listener's hosts are not served here (the other, with a wildcard, keeps one
    RouteConfiguration); adding, changing and removing one host touches one scope."""
    a, b = free_address(), free_address()
    cl = clusters(backends)
    tr = Translator(scoped_min_hosts=2)

    def vh(lst: tuple[str, int], host: str, cluster: str) -> m.VirtualHost:
        return m.VirtualHost(f"{lst[1]}/{host}", (host,), (forward(host, cluster),))

    def model(*hosts: str, cluster: str = "default:one:80") -> m.Model:
        return m.Model(
            listeners=(
                m.Listener("default/a/1", a[0], a[1], http=tuple(vh(a, h, cluster) for h in hosts)),
                m.Listener(
                    "default/b/2",
                    b[0],
                    b[1],
                    http=(vh(b, "only-b.test", "default:two:80"), vh(b, "*.wild.test", cluster)),
                ),
            ),
            clusters=tuple(m.Cluster(c, (m.Endpoint(h, p),)) for c, (h, p) in sorted(cl.items())),
        )

    async def publish(mdl: m.Model) -> None:
        res = tr.translate(mdl, OPTIONS)
        assert set(res.routes) == {"default/b/2"}  # a's routes travel as scopes
        await plane.xds.wait_acked(plane.xds.update(res), node_id=plane.envoy.node_id)

    async def status(lst: tuple[str, int], host: str) -> tuple[int, str]:
        async with httpx.AsyncClient(trust_env=False) as c:
            r = await c.get(f"http://{lst[0]}:{lst[1]}/x", headers={"host": host})
        return r.status_code, r.json()["backend"] if r.status_code == 200 else ""

    await publish(model("h1.test", "h2.test"))

    async def served() -> None:
        assert await status(a, "h1.test") == (200, "one")

    await eventually(served, what="scoped host")
    assert await status(a, "h2.test:8080") == (200, "one")
    assert (await status(a, "nope.test"))[0] == 404
    assert (await status(a, "only-b.test"))[0] == 404  # listener isolation
    assert await status(b, "only-b.test") == (200, "two")
    assert await status(b, "x.wild.test:99") == (200, "one")
    assert (await status(b, "h1.test"))[0] == 404

    await publish(model("h1.test", "h2.test", "h3.test"))
    assert await status(a, "h3.test") == (200, "one")
    await publish(model("h1.test", "h3.test", cluster="default:two:80"))
    assert await status(a, "h3.test") == (200, "two")
    assert (await status(a, "h2.test"))[0] == 404
    # Below the threshold: back to one RouteConfiguration, same answers.
    res = tr.translate(model("h3.test"), OPTIONS)
    assert "default/a/1" in res.routes and not res.scoped_routes
    await plane.xds.wait_acked(plane.xds.update(res), node_id=plane.envoy.node_id)
    assert await status(a, "h3.test") == (200, "one")
    assert (await status(a, "h1.test"))[0] == 404


@pytest.mark.parametrize("scoped", [True, False], ids=["scoped", "one-rc"])
async def test_new_routes_to_new_clusters_never_fail(
    plane: Plane, backends: dict[str, Backend], scoped: bool
) -> None:
    """Each change adds a host whose route uses a cluster new to Envoy (over Delta its
    endpoints and the route follow the cluster at once, without waiting for ACKs): a
    client polling the new host sees 404 until the route is there, then 200, never a
    500/503 of a route that arrived before its cluster or endpoints."""
    lst = free_address()
    one = backends["one"]
    tr = Translator(scoped_min_hosts=2 if scoped else 10_000)
    hosts: list[str] = []

    def model() -> m.Model:
        vhosts = tuple(
            m.VirtualHost(f"{lst[1]}/{h}", (h,), (forward(h, f"default:{h}:80"),)) for h in hosts
        )
        return m.Model(
            listeners=(m.Listener("default/gw/1", lst[0], lst[1], http=vhosts),),
            clusters=tuple(
                m.Cluster(f"default:{h}:80", (m.Endpoint(one.host, one.port),)) for h in hosts
            ),
        )

    def get(conn: http.client.HTTPConnection, host: str) -> int:
        conn.request("GET", "/x", headers={"host": host})
        r = conn.getresponse()
        r.read()
        return r.status

    hosts += ["h0.test", "h1.test"]
    await plane.xds.wait_acked(plane.xds.update(tr.translate(model(), OPTIONS)), timeout=10)

    async def first() -> None:
        c = http.client.HTTPConnection(lst[0], lst[1], timeout=5)
        try:
            assert await asyncio.to_thread(get, c, "h0.test") == 200
        finally:
            c.close()

    await eventually(first, what="first host")
    conn = http.client.HTTPConnection(lst[0], lst[1], timeout=5)  # keep-alive from here
    for i in range(2, 14):
        host = f"h{i}.test"
        hosts.append(host)
        version = plane.xds.update(tr.translate(model(), OPTIONS))
        seen: dict[int, int] = {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status = await asyncio.to_thread(get, conn, host)
            seen[status] = seen.get(status, 0) + 1
            if status == 200:
                break
        assert set(seen) <= {404, 200} and 200 in seen, (host, seen)
        await plane.xds.wait_acked(version, timeout=10)
    conn.close()


async def test_listener_update_moves_keepalive_clients_at_once(
    plane: Plane, backends: dict[str, Backend]
) -> None:
    """A listener update (here: its hosts reach the scoped-RDS threshold, so its
    connection manager changes) drains the old listener at once: a keep-alive client
    gets `Connection: close` on its next response, and the new configuration on its
    next connection (with a gradual drain it kept the old routes for about a second)."""
    a = free_address()
    cl = clusters(backends)
    tr = Translator(scoped_min_hosts=2)

    def model(*hosts: str) -> m.Model:
        vhosts = tuple(
            m.VirtualHost(f"{a[1]}/{h}", (h,), (forward(h, "default:one:80"),)) for h in hosts
        )
        return m.Model(
            listeners=(m.Listener("default/a/1", a[0], a[1], http=vhosts),),
            clusters=tuple(m.Cluster(c, (m.Endpoint(h, p),)) for c, (h, p) in sorted(cl.items())),
        )

    async def publish(mdl: m.Model) -> None:
        res = tr.translate(mdl, OPTIONS)
        await plane.xds.wait_acked(plane.xds.update(res), node_id=plane.envoy.node_id)

    async def draining() -> int:
        async with httpx.AsyncClient(trust_env=False) as admin:
            r = await admin.get(
                f"http://{plane.envoy.admin_address}/stats",
                params={"filter": "^listener_manager.total_(listeners|filter_chains)_draining$"},
            )
        # A changed filter chain is replaced in place (its connections drain), a changed
        # listener otherwise as a whole.
        return sum(int(line.split(":")[1]) for line in r.text.splitlines() if ":" in line)

    await publish(model("h1.test"))
    async with httpx.AsyncClient(trust_env=False, base_url=f"http://{a[0]}:{a[1]}") as client:

        async def served() -> None:
            assert (await client.get("/", headers={"host": "h1.test"})).status_code == 200

        await eventually(served, what="first host")
        await publish(model("h1.test", "h2.test"))  # crosses the threshold: new listener

        async def old_chain_draining() -> None:
            assert await draining() >= 1

        await eventually(old_chain_draining, what="the old filter chain draining")
        first = await client.get("/", headers={"host": "h2.test"})
        if first.status_code != 200:  # answered by the old listener: it says goodbye
            assert first.headers.get("connection") == "close"
            assert (await client.get("/", headers={"host": "h2.test"})).status_code == 200


async def test_first_push_of_many_clusters_and_hosts(
    plane: Plane, backends: dict[str, Backend]
) -> None:
    """A first configuration big enough that its responses are encoded off the event
    loop (more than `ENCODE_ON_THREAD_OVER` clusters, endpoints and scopes): Envoy
    takes it whole, the first and the last host answer, and the runtime's hook (which
    returns the responses' freed memory) ran after them."""
    from propylon.xds._server import ENCODE_ON_THREAD_OVER

    a = free_address()
    one = backends["one"]
    n = ENCODE_ON_THREAD_OVER + 200
    vhosts = tuple(
        m.VirtualHost(f"{a[1]}/h{i}.test", (f"h{i}.test",), (forward(f"h{i}.test", f"ns:s{i}:80"),))
        for i in range(n)
    )
    mdl = m.Model(
        listeners=(m.Listener("default/a/1", a[0], a[1], http=vhosts),),
        clusters=tuple(
            m.Cluster(f"ns:s{i}:80", (m.Endpoint(one.host, one.port),)) for i in range(n)
        ),
    )
    res = Translator().translate(mdl, OPTIONS)
    assert len(res.clusters) == n
    await plane.xds.wait_acked(plane.xds.update(res), node_id=plane.envoy.node_id, timeout=60)
    for host in ("h0.test", f"h{n - 1}.test"):
        r = await get_ok(f"http://{a[0]}:{a[1]}/", headers={"host": host})
        assert r.json()["backend"] == "one"
    # The clusters' response was written and its hook done before the next type's.
    assert plane.large_pushes
