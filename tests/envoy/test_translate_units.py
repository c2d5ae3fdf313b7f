"""Focused checks of translator shapes (the golden files show the whole picture)."""

from __future__ import annotations

from typing import Any

from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]

from propylon import model as m
from propylon.envoy import (
    INVALID_BACKEND_CLUSTER,
    ROUTE_TYPE,
    SCOPED_ROUTE_TYPE,
    XdsResources,
    translate,
)

L = "ns/gw/80"


def one_route(route: m.Route, hostnames: tuple[str, ...] = ("a.test",), **kw: Any) -> XdsResources:
    vh = m.VirtualHost(f"{L}/{hostnames[0]}", hostnames, (route,))
    model = m.Model(listeners=(m.Listener(L, "127.0.0.5", 80, http=(vh,)),))
    return translate(model, m.ProxyOptions(**kw))


def vhost(res: XdsResources) -> dict[str, Any]:
    d: dict[str, Any] = MessageToDict(res.routes[L], preserving_proto_field_name=True)
    return d["virtual_hosts"][0]  # type: ignore[no-any-return]


def route_dict(res: XdsResources) -> dict[str, Any]:
    return vhost(res)["routes"][0]  # type: ignore[no-any-return]


def fwd(*backends: m.WeightedBackend, path: m.PathMatch | None = None) -> m.Route:
    match = m.RouteMatch(path=path) if path else m.RouteMatch()
    return m.Route("r", match, m.Forward(backends))


def test_domains_ignore_the_port() -> None:
    res = one_route(fwd(m.WeightedBackend("c")), ("a.test", "*.b.test"))
    assert vhost(res)["domains"] == ["a.test", "*.b.test"]
    # `host:port` matches by the host alone, wildcards included (`*.b.test:*` would not
    # be a valid Envoy domain), and the Host header sent upstream keeps its port.
    assert res.routes[L].ignore_port_in_host_matching  # type: ignore[attr-defined]
    assert vhost(one_route(fwd(m.WeightedBackend("c")), ("*",)))["domains"] == ["*"]


def _listeners(*hosts_per_listener: tuple[str, ...]) -> m.Model:
    def vh(port: int, h: str) -> m.VirtualHost:
        return m.VirtualHost(f"ns/gw/{port}/{h}", (h,), (fwd(m.WeightedBackend("c")),))

    return m.Model(
        listeners=tuple(
            m.Listener(
                f"ns/gw/{80 + i}", "127.0.0.5", 80 + i, http=tuple(vh(80 + i, h) for h in hs)
            )
            for i, hs in enumerate(hosts_per_listener)
        )
    )


def test_scoped_routes_only_for_the_biggest_all_exact_listener() -> None:
    model = _listeners(("a.test", "b.test"), ("c.test", "d.test", "e.test"), ("x.test",))
    res = translate(model, m.ProxyOptions(), scoped_min_hosts=2)
    assert sorted(res.routes) == ["ns/gw/80", "ns/gw/82"]
    assert sorted(res.scoped_routes) == ["ns/gw/81/c.test", "ns/gw/81/d.test", "ns/gw/81/e.test"]
    scope: Any = res.scoped_routes["ns/gw/81/d.test"]
    assert [f.string_key for f in scope.key.fragments] == ["d.test"]
    assert [v.domains for v in scope.route_configuration.virtual_hosts] == [["d.test"]]
    hcms = {
        name: MessageToDict(lst, preserving_proto_field_name=True)["filter_chains"][0]["filters"][
            0
        ]["typed_config"]
        for name, lst in res.listeners.items()
    }
    assert "scoped_routes" in hcms["ns/gw/81"] and "rds" not in hcms["ns/gw/81"]
    assert "rds" in hcms["ns/gw/80"]
    # Below the threshold, or with a wildcard or `*` host: one RouteConfiguration.
    assert not translate(model, m.ProxyOptions(), scoped_min_hosts=4).scoped_routes
    for other in ("*.w.test", "*"):
        wild = _listeners(("a.test", "b.test", other))
        assert not translate(wild, m.ProxyOptions(), scoped_min_hosts=1).scoped_routes
    assert not translate(model, m.ProxyOptions()).scoped_routes  # default: 100 hosts


def test_prefix_semantics() -> None:
    r = route_dict(
        one_route(fwd(m.WeightedBackend("c"), path=m.PathMatch(m.PathMatchType.PREFIX, "/foo/")))
    )
    assert r["match"] == {"path_separated_prefix": "/foo"}
    r = route_dict(one_route(fwd(m.WeightedBackend("c"))))
    assert r["match"] == {"prefix": "/"}


def test_unresolved_backends() -> None:
    r = route_dict(one_route(fwd(m.WeightedBackend(None))))
    assert r["direct_response"] == {"status": 500}
    r = route_dict(one_route(fwd(m.WeightedBackend(None), m.WeightedBackend("c", 3))))
    clusters = r["route"]["weighted_clusters"]["clusters"]
    assert [(c["name"], c["weight"]) for c in clusters] == [(INVALID_BACKEND_CLUSTER, 1), ("c", 3)]
    assert r["route"]["cluster_not_found_response_code"] == "INTERNAL_SERVER_ERROR"
    r = route_dict(one_route(fwd(m.WeightedBackend("c", 0))))
    assert r["direct_response"] == {"status": 500}


def test_grpc_catch_all_only_with_grpc_routes() -> None:
    plain = vhost(one_route(fwd(m.WeightedBackend("c"))))
    assert len(plain["routes"]) == 1
    grpc_route = m.Route("g", m.RouteMatch(grpc=True), m.Forward((m.WeightedBackend("c"),)))
    routes = vhost(one_route(grpc_route))["routes"]
    assert routes[-1]["match"] == {
        "prefix": "/",
        "headers": [{"name": "content-type", "string_match": {"prefix": "application/grpc"}}],
    }
    assert routes[-1]["direct_response"] == {"status": 200}


def test_bind_all_and_xff() -> None:
    res = one_route(fwd(m.WeightedBackend("c")), bind_all=True, xff_num_trusted_hops=2)
    d = MessageToDict(res.listeners[L], preserving_proto_field_name=True)
    assert d["address"]["socket_address"]["address"] == "0.0.0.0"
    hcm = d["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["xff_num_trusted_hops"] == 2 and hcm["use_remote_address"] is True
    assert hcm["rds"]["route_config_name"] == L


def test_prefix_rewrite_to_root() -> None:
    route = m.Route(
        "r",
        m.RouteMatch(path=m.PathMatch(m.PathMatchType.PREFIX, "/foo")),
        m.Forward((m.WeightedBackend("c"),)),
        rewrite=m.URLRewrite(path=m.PathModifier(m.PathModifierType.PREFIX, "/")),
    )
    r = route_dict(one_route(route))
    assert r["route"]["regex_rewrite"] == {"pattern": {"regex": "^/foo/*"}, "substitution": "/"}


def test_unused_secrets_not_sent() -> None:
    model = m.Model(secrets=(m.Secret("ns/s", "x", "y"),))
    assert translate(model, m.ProxyOptions()).secrets == {}


def test_tls_listener_without_routes_still_valid() -> None:
    """A TLS listener with no usable route (e.g. its TLSRoute's only backend is not
    permitted) must still have a filter chain: Envoy NACKs a listener without one.
    Its connections go to the undefined invalid-backend cluster, i.e. are closed."""
    model = m.Model(listeners=(m.Listener("ns/gw/443", "127.0.0.5", 443),))
    res = translate(model, m.ProxyOptions())
    d: dict[str, Any] = MessageToDict(res.listeners["ns/gw/443"], preserving_proto_field_name=True)
    (chain,) = d["filter_chains"]
    assert chain["filters"][0]["typed_config"]["cluster"] == INVALID_BACKEND_CLUSTER


def test_redirect_port_omitted_when_well_known() -> None:
    """Gateway API RequestRedirect port defaults: the new scheme's well-known port, else
    the listener's; a Location SHOULD NOT carry the well-known port of its scheme."""
    from propylon.envoy.route import _redirect

    def red(origin: tuple[str, int], exact: str | None = None, **kw: Any) -> dict[str, Any]:
        msg = _redirect(m.Redirect(**kw), m.RouteMatch(), origin, exact)
        d: dict[str, Any] = MessageToDict(msg, preserving_proto_field_name=True)
        d.pop("response_code", None)
        return d

    host = {"hostname": "example.org"}
    to = {"host_redirect": "example.org"}
    http80, http8080, https443 = ("http", 80), ("http", 8080), ("https", 443)
    # the same matrix as upstream's HTTPRouteRedirectPortAndScheme
    assert red(http80, **host) == to
    assert red(http80, port=80, **host) == to
    assert red(http80, port=8080, **host) == {**to, "port_redirect": 8080}
    assert red(http80, scheme="https", **host) == {**to, "scheme_redirect": "https"}
    assert red(http80, scheme="https", port=443, **host) == {**to, "scheme_redirect": "https"}
    assert red(http80, scheme="https", port=8443, **host)["port_redirect"] == 8443
    assert red(http8080, **host) == {**to, "port_redirect": 8080}
    assert red(http8080, port=80, **host) == to
    assert red(http8080, scheme="https", **host) == {**to, "scheme_redirect": "https"}
    assert red(https443, **host) == to
    assert red(https443, port=443, **host) == to
    assert red(https443, port=8443, **host)["port_redirect"] == 8443
    assert red(https443, scheme="http", **host) == {**to, "scheme_redirect": "http"}
    assert red(https443, scheme="http", port=8080, **host)["port_redirect"] == 8080
    # the request's Host is kept: without a port on a well-known listener port...
    assert red(http80, scheme="https") == {"scheme_redirect": "https"}
    assert red(http80) == {}
    # ...but a non-default listener port in it must be replaced
    assert red(http8080, scheme="https") == {"scheme_redirect": "https", "port_redirect": 443}
    assert red(http8080, port=80) == {"port_redirect": 80}
    assert red(http8080) == {"port_redirect": 8080}
    # ...and with the virtual host's one exact hostname, it goes with no port at all
    # (issue #11, item 9: `https://host/`, not `https://host:443/`)
    exact = {"exact": "h.example"}
    assert red(http8080, scheme="https", **exact) == {
        "scheme_redirect": "https",
        "host_redirect": "h.example",
    }
    assert red(http8080, port=80, **exact) == {"host_redirect": "h.example"}
    assert red(http8080, **exact) == {"port_redirect": 8080}


def test_spliced_route_configurations_and_scopes_are_canonical_bytes() -> None:
    """Route configurations and scopes are put together from their virtual hosts' bytes:
    the result must be exactly what serializing the whole message gives (Envoy and the
    versions see the bytes), with and without scoped RDS, with one and many hosts."""
    for min_hosts in (2, 100):
        model = _listeners(("a.test", "b.test", "c.test"), ("d.test",))
        res = translate(model, m.ProxyOptions(), scoped_min_hosts=min_hosts)
        spliced = {**res.encoded[ROUTE_TYPE], **res.encoded[SCOPED_ROUTE_TYPE]}
        assert len(spliced) == (4 if min_hosts == 2 else 2)
        for name, enc in spliced.items():
            assert enc.message.SerializeToString(deterministic=True) == enc.data, name
            assert enc.message.name == name  # type: ignore[attr-defined]


def test_node_port_is_an_additional_address_of_the_listener() -> None:
    """Kubernetes (no kube-proxy): the Gateway listener also binds its Service's node port,
    with the same filter chains; not with hostNetwork (no Service then)."""
    res = one_route(fwd(m.WeightedBackend("ns:svc:80", 1)), node_ports=((L, 31080),))
    listener = MessageToDict(res.listeners[L], preserving_proto_field_name=True)
    assert listener["address"]["socket_address"] == {"address": "127.0.0.5", "port_value": 80}
    assert listener["additional_addresses"] == [
        {"address": {"socket_address": {"address": "0.0.0.0", "port_value": 31080}}}
    ]
    plain = one_route(fwd(m.WeightedBackend("ns:svc:80", 1)), node_ports=(("ns/other/80", 1),))
    assert "additional_addresses" not in MessageToDict(plain.listeners[L])
    host = one_route(
        fwd(m.WeightedBackend("ns:svc:80", 1)), node_ports=((L, 31080),), bind_all=True
    )
    assert "additional_addresses" not in MessageToDict(host.listeners[L])


def test_tcp_listener_takes_the_listener_knobs_udp_listener_none() -> None:
    """PROXY protocol and source ranges are TCP filters: a TCP listener (TCPRoute) gets
    them as every other TCP listener; a UDP listener gets no PROXY protocol (Envoy would
    reject a TCP listener filter on a UDP socket) and its source ranges as the UDP
    proxy's matcher on the client address."""
    forward = m.StreamForward("TCPRoute/ns/r", (m.WeightedBackend("ns:svc:80:tcp", 1),))
    options = m.ListenerOptions(source_ranges=m.SourceRanges(("127.0.0.0/8",), deny=False))
    model = m.Model(
        listeners=(
            m.Listener("ns/gw/53", "127.0.0.5", 53, tcp=forward, options=options),
            m.Listener("ns/gw/53/udp", "127.0.0.5", 53, udp=forward, options=options),
        )
    )
    res = translate(model, m.ProxyOptions(proxy_protocol=True))
    tcp = MessageToDict(res.listeners["ns/gw/53"], preserving_proto_field_name=True)
    udp = MessageToDict(res.listeners["ns/gw/53/udp"], preserving_proto_field_name=True)
    assert [f["name"] for f in tcp["listener_filters"]] == ["envoy.filters.listener.proxy_protocol"]
    filters = [f["name"] for f in tcp["filter_chains"][0]["filters"]]
    assert filters == ["envoy.filters.network.rbac", "envoy.filters.network.tcp_proxy"]
    assert [f["name"] for f in udp["listener_filters"]] == ["envoy.filters.udp_listener.udp_proxy"]
    assert "filter_chains" not in udp
    assert udp["address"]["socket_address"]["protocol"] == "UDP"
    tree = udp["listener_filters"][0]["typed_config"]["matcher"]["matcher_tree"]
    ranges = tree["custom_match"]["typed_config"]["range_matchers"][0]["ranges"]
    assert ranges == [{"address_prefix": "127.0.0.0", "prefix_len": 8}]


def test_retry_policy_from_route_retry() -> None:
    retry = m.Retry(codes=(500, 503), attempts=3, backoff_ms=100)
    route = m.Route("r", m.RouteMatch(), m.Forward((m.WeightedBackend("c"),)), retry=retry)
    policy = route_dict(one_route(route))["route"]["retry_policy"]
    assert policy == {
        "retry_on": "retriable-status-codes,connect-failure,refused-stream,reset",
        "retriable_status_codes": [500, 503],
        "num_retries": 3,  # tries after the first, as `attempts` counts them
        "retry_back_off": {"base_interval": "0.100s"},
    }
    # With timeouts.backendRequest: the per-try timeout joins the retries (not 0 retries).
    route = m.Route(
        "r",
        m.RouteMatch(),
        m.Forward((m.WeightedBackend("c"),)),
        retry=retry,
        backend_timeout_ms=500,
    )
    policy = route_dict(one_route(route))["route"]["retry_policy"]
    assert (policy["num_retries"], policy["per_try_timeout"]) == (3, "0.500s")
    # No codes: only connection failures are tried again; Envoy's default count.
    route = m.Route("r", m.RouteMatch(), m.Forward((m.WeightedBackend("c"),)), retry=m.Retry())
    policy = route_dict(one_route(route))["route"]["retry_policy"]
    assert policy == {"retry_on": "connect-failure,refused-stream,reset"}
