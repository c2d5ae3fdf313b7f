"""Hand-built models for the golden xDS tests (one per feature area)."""

from __future__ import annotations

from pathlib import Path

from propylon import model as m

DATA = Path(__file__).parent / "data"
CERT = (DATA / "example.com.crt").read_text()
KEY = (DATA / "example.com.key").read_text()

HTTP_L = "default/gw/80"
SVC = "default:echo:8080"
SVC2 = "default:echo2:8080"


def _cluster(name: str, port: int = 8080, **kw: object) -> m.Cluster:
    return m.Cluster(name=name, endpoints=(m.Endpoint("10.0.0.1", port),), **kw)  # type: ignore[arg-type]


def http_features() -> m.Model:
    fwd = m.Forward((m.WeightedBackend(SVC),))
    routes = (
        m.Route(
            "HTTPRoute/default/r/rule/0/match/0",
            m.RouteMatch(path=m.PathMatch(m.PathMatchType.EXACT, "/exact")),
            fwd,
            response_headers=m.HeaderModifier(set=(("x-set", "1"),), add=(("x-add", "2"),)),
            request_headers=m.HeaderModifier(remove=("x-drop",)),
        ),
        m.Route(
            "HTTPRoute/default/r/rule/1/match/0",
            m.RouteMatch(
                path=m.PathMatch(m.PathMatchType.PREFIX, "/api"),
                headers=(
                    m.HeaderMatch("x-version", "v1"),
                    m.HeaderMatch("x-re", "^a.*$", m.ValueMatchType.REGEX),
                ),
                query_params=(m.QueryParamMatch("q", "1"),),
                method="GET",
            ),
            m.Forward(
                (
                    m.WeightedBackend(SVC, 3),
                    m.WeightedBackend(
                        SVC2, 1, request_headers=m.HeaderModifier(set=(("x-b", "2"),))
                    ),
                    m.WeightedBackend(None, 1),
                )
            ),
            rewrite=m.URLRewrite(
                "rewritten.example.com", m.PathModifier(m.PathModifierType.PREFIX, "/")
            ),
            mirrors=(m.Mirror(SVC2, 50, 100),),
            timeout_ms=10_000,
            backend_timeout_ms=2_000,
        ),
        m.Route(
            "HTTPRoute/default/r/rule/2/match/0",
            m.RouteMatch(path=m.PathMatch(m.PathMatchType.REGEX, "/re/[0-9]+")),
            m.Redirect(scheme="https", hostname="other.example.com", status_code=301),
        ),
        m.Route(
            "HTTPRoute/default/r/rule/3/match/0",
            m.RouteMatch(path=m.PathMatch(m.PathMatchType.PREFIX, "/old")),
            m.Redirect(path=m.PathModifier(m.PathModifierType.PREFIX, "/new"), status_code=308),
        ),
        m.Route(
            "HTTPRoute/default/r/rule/4/match/0",
            m.RouteMatch(path=m.PathMatch(m.PathMatchType.PREFIX, "/full")),
            fwd,
            rewrite=m.URLRewrite(path=m.PathModifier(m.PathModifierType.FULL, "/replaced")),
            cors=m.CORS(
                allow_origins=("https://*.example.com", "http://a.test"),
                allow_methods=("GET", "POST"),
                allow_headers=("x-a",),
                expose_headers=("x-b",),
                max_age_seconds=60,
                allow_credentials=True,
            ),
            timeout_ms=0,
        ),
        m.Route(
            "HTTPRoute/default/r/rule/5/match/0",
            m.RouteMatch(path=m.PathMatch(m.PathMatchType.PREFIX, "/broken")),
            m.Forward((m.WeightedBackend(None),)),
        ),
        m.Route(
            "HTTPRoute/default/r/rule/6/match/0",
            m.RouteMatch(),
            m.DirectResponse(404, "not here"),
        ),
    )
    vhosts = (
        m.VirtualHost(f"{HTTP_L}/example.com", ("example.com",), routes),
        m.VirtualHost(
            f"{HTTP_L}/*.wild.test", ("*.wild.test",), (m.Route("x", m.RouteMatch(), fwd),)
        ),
        m.VirtualHost(f"{HTTP_L}/*", ("*",), (m.Route("y", m.RouteMatch(), fwd),)),
    )
    return m.Model(
        listeners=(m.Listener(HTTP_L, "127.0.0.10", 80, http=vhosts),),
        clusters=(_cluster(SVC), _cluster(SVC2, protocol=m.AppProtocol.WEBSOCKET)),
    )


def grpc() -> m.Model:
    g = "default:grpc:50051"
    routes = (
        m.Route(
            "GRPCRoute/default/g/rule/0/match/0",
            m.RouteMatch(path=m.PathMatch(m.PathMatchType.EXACT, "/pkg.Svc/Method"), grpc=True),
            m.Forward((m.WeightedBackend(g),)),
        ),
        m.Route(
            "GRPCRoute/default/g/rule/1/match/0",
            m.RouteMatch(path=m.PathMatch(m.PathMatchType.PREFIX, "/pkg.Other/"), grpc=True),
            m.Forward((m.WeightedBackend(g),)),
        ),
    )
    return m.Model(
        listeners=(
            m.Listener(
                "default/gw/8080",
                "127.0.0.11",
                8080,
                http=(
                    m.VirtualHost(
                        "default/gw/8080/grpc.example.com", ("grpc.example.com",), routes
                    ),
                ),
            ),
        ),
        clusters=(_cluster(g, 50051, protocol=m.AppProtocol.H2C),),
    )


def tls() -> m.Model:
    secure = "default:secure:443"
    fwd = m.Forward((m.WeightedBackend(SVC),))
    term_a = m.TLSTermination(
        ("a.example.com",),
        ("default/example-cert",),
        (
            m.VirtualHost(
                "default/gw/443/a.example.com",
                ("a.example.com",),
                (m.Route("a", m.RouteMatch(), fwd),),
            ),
        ),
    )
    term_b = m.TLSTermination(
        ("b.example.com", "c.example.com"),
        ("default/example-cert",),
        (
            m.VirtualHost(
                "default/gw/443/b.example.com",
                ("b.example.com",),
                (m.Route("b", m.RouteMatch(), m.Forward((m.WeightedBackend(secure),))),),
            ),
            m.VirtualHost(
                "default/gw/443/c.example.com",
                ("c.example.com",),
                (m.Route("c", m.RouteMatch(), fwd),),
            ),
        ),
    )
    pt = m.TLSPassthrough(
        "TLSRoute/default/pt", ("pt.example.com",), (m.WeightedBackend("default:tls:8443", 1),)
    )
    return m.Model(
        listeners=(
            m.Listener(
                "default/gw/443", "127.0.0.12", 443, https=(term_a, term_b), passthrough=(pt,)
            ),
        ),
        clusters=(
            _cluster(SVC),
            _cluster(
                secure,
                443,
                tls=m.UpstreamTLS(
                    "secure.example.com", CERT, (("Hostname", "secure.example.com"),)
                ),
            ),
            _cluster("default:tls:8443", 8443, protocol=m.AppProtocol.TCP),
        ),
        secrets=(
            m.Secret("default/example-cert", CERT, KEY),
            m.Secret("default/unused", CERT, KEY),
        ),
    )


def scoped() -> m.Model:
    """Scoped RDS: the plain HTTP listener's hosts are all exact (one scope per hostname,
    a virtual host with two hostnames gives two scopes); the HTTPS chain has a wildcard
    and keeps its RouteConfiguration. Translated with `scoped_min_hosts=2`."""
    fwd = m.Forward((m.WeightedBackend(SVC),))
    https_l = "default/gw/443"
    vhosts = (
        m.VirtualHost(
            f"{HTTP_L}/a.example.com",
            ("a.example.com", "b.example.com"),
            (m.Route("a", m.RouteMatch(), fwd),),
        ),
        m.VirtualHost(
            f"{HTTP_L}/c.example.com",
            ("c.example.com",),
            (m.Route("c", m.RouteMatch(), m.DirectResponse(200, "c")),),
        ),
    )
    term = m.TLSTermination(
        ("a.example.com", "*.example.com"),
        ("default/example-com",),
        (
            m.VirtualHost(
                f"{https_l}/a.example.com", ("a.example.com",), (m.Route("s", m.RouteMatch(), fwd),)
            ),
            m.VirtualHost(
                f"{https_l}/*.example.com", ("*.example.com",), (m.Route("w", m.RouteMatch(), fwd),)
            ),
        ),
    )
    return m.Model(
        listeners=(
            m.Listener(HTTP_L, "127.0.0.10", 80, http=vhosts),
            m.Listener(https_l, "127.0.0.10", 443, https=(term,)),
        ),
        clusters=(_cluster(SVC),),
        secrets=(m.Secret("default/example-com", CERT, KEY),),
    )


def redirect_port() -> m.Model:
    """Issue #11 item 9: on a listener of port 8080, a redirect to https leaves port 443
    out: an exact host is written without a port, a wildcard host keeps `:443`."""
    name = "default/gw/8080"
    to_https = (
        m.Route(
            "HTTPRoute/default/r/rule/0/match/0",
            m.RouteMatch(path=m.PathMatch(m.PathMatchType.PREFIX, "/")),
            m.Redirect(scheme="https"),
        ),
    )
    return m.Model(
        listeners=(
            m.Listener(
                name,
                "127.0.0.1",
                8080,
                http=(
                    m.VirtualHost(f"{name}/a.example.com", ("a.example.com",), to_https),
                    m.VirtualHost(f"{name}/*.example.com", ("*.example.com",), to_https),
                ),
            ),
        ),
        clusters=(),
    )


MODELS = {
    "http_features": http_features,
    "grpc": grpc,
    "tls": tls,
    "scoped": scoped,
    "redirect_port": redirect_port,
}
#: `scoped_min_hosts` per model (default: the translator's).
SCOPED_MIN = {"scoped": 2}
