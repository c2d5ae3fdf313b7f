"""The per-stream ADS state machine, driven by hand (no sockets)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from propylon import model as m
from propylon.envoy import (
    CLUSTER_TYPE as CDS,
)
from propylon.envoy import (
    ENDPOINT_TYPE as EDS,
)
from propylon.envoy import (
    LISTENER_TYPE as LDS,
)
from propylon.envoy import (
    ROUTE_TYPE as RDS,
)
from propylon.envoy import (
    Translator,
    XdsResources,
)
from propylon.xds import AdsStream, Request, Response

L = "default/gw/80"


def snapshot(
    tr: Translator, clusters: tuple[str, ...], target: str, header: str = ""
) -> XdsResources:
    mod = m.HeaderModifier(set=(("x-v", header),)) if header else None
    route = m.Route(
        "r", m.RouteMatch(), m.Forward((m.WeightedBackend(target),)), response_headers=mod
    )
    model = m.Model(
        listeners=(
            m.Listener(L, "127.0.0.1", 80, http=(m.VirtualHost(f"{L}/*", ("*",), (route,)),)),
        ),
        clusters=tuple(m.Cluster(c, (m.Endpoint("10.0.0.1", 80),)) for c in clusters),
    )
    return tr.translate(model, m.ProxyOptions())


@dataclass
class Harness:
    delta: bool
    out: list[Response] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stream = AdsStream(delta=self.delta, send=self.out.append)

    nonces: dict[str, str] = field(default_factory=dict)

    def take(self) -> list[Response]:
        got, self.out[:] = list(self.out), []
        for r in got:
            self.nonces[r.type_url] = r.nonce
        return got

    def request(
        self,
        type_url: str,
        names: tuple[str, ...] = (),
        *,
        nonce: str = "",
        error: str | None = None,
        subscribe: tuple[str, ...] = (),
        unsubscribe: tuple[str, ...] = (),
    ) -> None:
        self.stream.on_request(
            Request(
                type_url,
                nonce=nonce,
                error=error,
                node_id="n",
                names=names,
                subscribe=subscribe,
                unsubscribe=unsubscribe,
            )
        )

    def ack(self, r: Response, names: tuple[str, ...] = ()) -> None:
        self.request(r.type_url, names, nonce=r.nonce)


def only(responses: list[Response], type_url: str) -> Response:
    assert [r.type_url for r in responses] == [type_url], [r.type_url for r in responses]
    return responses[0]


def bring_up(h: Harness, snap: XdsResources) -> None:
    """The usual Envoy start-up sequence, checking the order the server answers in."""
    h.stream.set_snapshot(snap, 1)
    assert h.take() == []
    h.request(CDS)
    cds = only(h.take(), CDS)
    assert set(cds.resources) == set(snap.clusters)
    h.request(LDS)  # Envoy would wait, but even if it asks early: no listener before EDS
    assert h.take() == []
    h.ack(cds)
    names = tuple(snap.clusters)
    h.request(EDS, names, subscribe=names)
    eds = h.take()
    # EDS goes out; LDS is held until the endpoints are acknowledged
    eds_r = only(eds, EDS)
    assert set(eds_r.resources) == set(names)
    h.ack(eds_r, names)
    lds = only(h.take(), LDS)
    assert set(lds.resources) == {L}
    h.ack(lds)
    assert h.stream.acked_version == 0  # routes not subscribed yet
    h.request(RDS, (L,), subscribe=(L,))
    rds = only(h.take(), RDS)
    h.ack(rds, (L,))
    assert h.take() == []
    assert h.stream.acked_version == 1


@pytest.mark.parametrize("delta", [True, False], ids=["delta", "sotw"])
def test_startup_order(delta: bool) -> None:
    bring_up(Harness(delta), snapshot(Translator(), ("a",), "a"))


@pytest.mark.parametrize("delta", [False], ids=["sotw"])  # Delta: the test below
def test_make_before_break(delta: bool) -> None:
    tr = Translator()
    h = Harness(delta)
    bring_up(h, snapshot(tr, ("a",), "a"))
    h.stream.set_snapshot(snapshot(tr, ("b",), "b"), 2)
    cds = only(h.take(), CDS)
    # the old cluster stays while routes may still use it
    if delta:
        assert set(cds.resources) == {"b"} and cds.removed == ()
    else:
        assert set(cds.resources) == {"a", "b"}
    h.ack(cds)
    assert h.take() == []  # no route before Envoy subscribed to b's endpoints
    h.request(EDS, ("a", "b"), nonce=h.nonces[EDS], subscribe=("b",))
    eds = only(h.take(), EDS)
    assert "b" in eds.resources
    h.ack(eds, ("a", "b"))
    rds = only(h.take(), RDS)
    assert h.stream.acked_version == 1
    h.ack(rds, (L,))
    # routes acknowledged: now the old cluster goes
    got = h.take()
    cds2 = got[0]
    assert cds2.type_url == CDS
    if delta:
        assert cds2.resources == {} and cds2.removed == ("a",)
        # and the endpoints of the removed cluster are withdrawn
        assert [(r.type_url, r.removed) for r in got[1:]] == [(EDS, ("a",))]
    else:
        assert set(cds2.resources) == {"b"}
        assert [(r.type_url, set(r.resources)) for r in got[1:]] == [(EDS, {"b"})]
    for r in got:
        h.ack(r, ("b",))
    h.request(EDS, ("b",), nonce=h.nonces[EDS], unsubscribe=("a",))
    assert h.take() == []
    assert h.stream.acked_version == 2


def test_delta_new_cluster_goes_with_endpoints_and_route() -> None:
    """Delta, a cluster new to Envoy: its endpoints (not yet subscribed) and the route
    that uses it go out at once, in that order; the old cluster still goes only after
    the route is acknowledged (make before break)."""
    tr = Translator()
    h = Harness(True)
    bring_up(h, snapshot(tr, ("a",), "a"))
    h.stream.set_snapshot(snapshot(tr, ("b",), "b"), 2)
    cds, eds, rds = h.take()
    assert [cds.type_url, eds.type_url, rds.type_url] == [CDS, EDS, RDS]
    assert set(cds.resources) == {"b"} and cds.removed == ()
    assert set(eds.resources) == {"b"} and eds.removed == ()
    assert set(rds.resources) == {L}
    h.ack(cds)
    h.request(EDS, subscribe=("b",))  # Envoy subscribes while warming b
    assert h.take() == []  # already sent: not again
    h.ack(eds)
    assert h.take() == []  # a stays while the route may still use it
    assert h.stream.acked_version == 1
    h.ack(rds)
    got = h.take()
    assert [(r.type_url, r.removed) for r in got] == [(CDS, ("a",)), (EDS, ("a",))]
    for r in got:
        h.ack(r)
    h.request(EDS, unsubscribe=("a",))
    assert h.take() == []
    assert h.stream.acked_version == 2


def test_delta_updated_cluster_still_waits_for_acks() -> None:
    """A cluster update (not new to Envoy) keeps the wait: the route goes only once the
    cluster and its endpoints are acknowledged."""
    tr = Translator()
    h = Harness(True)
    bring_up(h, snapshot(tr, ("a",), "a"))
    model = m.Model(
        listeners=(
            m.Listener(
                L,
                "127.0.0.1",
                80,
                http=(
                    m.VirtualHost(
                        f"{L}/*",
                        ("*",),
                        (
                            m.Route(
                                "r",
                                m.RouteMatch(),
                                m.Forward((m.WeightedBackend("a"),)),
                                response_headers=m.HeaderModifier(set=(("x-v", "2"),)),
                            ),
                        ),
                    ),
                ),
            ),
        ),
        clusters=(m.Cluster("a", (m.Endpoint("10.0.0.1", 80),), protocol=m.AppProtocol.H2C),),
    )
    h.stream.set_snapshot(tr.translate(model, m.ProxyOptions()), 2)
    got = h.take()
    assert [r.type_url for r in got] == [CDS, EDS]
    h.ack(got[0])
    assert h.take() == []
    h.ack(got[1])
    assert only(h.take(), RDS).snapshot_version == 2


@pytest.mark.parametrize("delta", [True, False], ids=["delta", "sotw"])
def test_batches_while_waiting_for_ack(delta: bool) -> None:
    tr = Translator()
    h = Harness(delta)
    bring_up(h, snapshot(tr, ("a",), "a"))
    h.stream.set_snapshot(snapshot(tr, ("a",), "a", "1"), 2)
    rds = only(h.take(), RDS)
    h.stream.set_snapshot(snapshot(tr, ("a",), "a", "2"), 3)
    h.stream.set_snapshot(snapshot(tr, ("a",), "a", "3"), 4)
    assert h.take() == []  # one response in flight per type
    h.ack(rds, (L,))
    last = only(h.take(), RDS)
    assert last.snapshot_version == 4
    h.ack(last, (L,))
    assert h.take() == [] and h.stream.acked_version == 4


@pytest.mark.parametrize("delta", [True, False], ids=["delta", "sotw"])
def test_nack(delta: bool) -> None:
    tr = Translator()
    h = Harness(delta)
    bring_up(h, snapshot(tr, ("a",), "a"))
    h.stream.set_snapshot(snapshot(tr, ("a",), "a", "bad"), 2)
    rds = only(h.take(), RDS)
    h.request(RDS, (L,), nonce=rds.nonce, error="rejected: bad header")
    assert h.take() == []  # the same content is not resent
    assert h.stream.acked_version == 1 and h.stream.nacked_version == 2
    assert h.stream.last_nack == "rejected: bad header"
    h.stream.set_snapshot(snapshot(tr, ("a",), "a", "good"), 3)
    fixed = only(h.take(), RDS)
    h.ack(fixed, (L,))
    assert h.stream.acked_version == 3


def test_sotw_stale_nonce_ignored() -> None:
    tr = Translator()
    h = Harness(False)
    bring_up(h, snapshot(tr, ("a",), "a"))
    h.stream.set_snapshot(snapshot(tr, ("a",), "a", "1"), 2)
    first = only(h.take(), RDS)
    h.ack(first, (L,))
    h.stream.set_snapshot(snapshot(tr, ("a",), "a", "2"), 3)
    second = only(h.take(), RDS)
    h.request(RDS, (L,), nonce=first.nonce)  # an old request arriving late
    assert h.take() == [] and h.stream.acked_version == 2
    h.ack(second, (L,))
    assert h.stream.acked_version == 3


def test_sotw_listener_removal_sends_full_set() -> None:
    tr = Translator()
    h = Harness(False)
    bring_up(h, snapshot(tr, ("a",), "a"))
    h.stream.set_snapshot(XdsResources(), 2)
    lds, rds = h.take()
    assert (lds.type_url, lds.resources) == (LDS, {})
    assert (rds.type_url, rds.resources) == (RDS, {})
    h.ack(lds)
    h.ack(rds)
    h.request(RDS, (), nonce=rds.nonce)  # Envoy drops the route subscription
    cds, eds = h.take()
    assert (cds.type_url, cds.resources, eds.type_url, eds.resources) == (CDS, {}, EDS, {})
    h.ack(cds)
    h.ack(eds, ("a",))
    h.request(EDS, (), nonce=h.nonces[EDS])
    assert h.take() == []
    assert h.stream.acked_version == 2


def test_delta_initial_versions_skip_unchanged() -> None:
    tr = Translator()
    snap = snapshot(tr, ("a",), "a")
    h = Harness(True)
    h.stream.set_snapshot(snap, 1)
    enc = snap.by_type()[CDS]
    h.stream.on_request(
        Request(CDS, node_id="n", initial_versions={"a": enc["a"].version, "old": "x"})
    )
    cds = only(h.take(), CDS)
    assert cds.resources == {} and cds.removed == ("old",)


def test_delta_removed_route() -> None:
    tr = Translator()
    h = Harness(True)
    bring_up(h, snapshot(tr, ("a",), "a"))
    h.stream.set_snapshot(XdsResources(), 2)
    lds, rds = h.take()
    assert (lds.type_url, lds.removed) == (LDS, (L,))
    assert (rds.type_url, rds.removed) == (RDS, (L,))


@pytest.mark.parametrize("delta", [True, False], ids=["delta", "sotw"])
def test_updated_cluster_gets_its_endpoints_again(delta: bool) -> None:
    """Envoy warms an updated cluster again and holds the CDS ACK until it has the
    endpoints, so they are resent even though they did not change."""
    tr = Translator()
    h = Harness(delta)
    bring_up(h, snapshot(tr, ("a",), "a"))
    model = m.Model(
        listeners=(),
        clusters=(m.Cluster("a", (m.Endpoint("10.0.0.1", 80),), protocol=m.AppProtocol.H2C),),
    )
    changed = tr.translate(model, m.ProxyOptions())
    h.stream.set_snapshot(changed, 2)
    got = h.take()
    assert [r.type_url for r in got][:2] == [CDS, EDS]
    assert set(got[1].resources) == {"a"}


def test_delta_subscription_change_sends_only_new_names() -> None:
    tr = Translator()
    h = Harness(True)
    bring_up(h, snapshot(tr, ("a", "b"), "a"))
    h.stream.set_snapshot(snapshot(tr, ("a", "b", "c"), "a"), 2)
    cds, eds = h.take()  # a new cluster's endpoints go right behind it
    assert (cds.type_url, set(cds.resources)) == (CDS, {"c"})
    assert (eds.type_url, set(eds.resources), eds.removed) == (EDS, {"c"}, ())
    h.ack(cds)
    h.request(EDS, subscribe=("c",))  # Delta: no nonce on a subscription change
    assert h.take() == []  # c's endpoints were sent: not again
    h.ack(eds)
    assert h.take() == [] and h.stream.acked_version == 2
