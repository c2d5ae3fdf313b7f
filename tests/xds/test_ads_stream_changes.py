"""A stream told what changed (`XdsResources.changes`) answers exactly as one that
compares everything: same responses, in the same order, for random sequences of
snapshots arriving while responses are in flight."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field, replace

import pytest

from propylon import model as m
from propylon.envoy import (
    CLUSTER_TYPE as CDS,
)
from propylon.envoy import (
    ENDPOINT_TYPE as EDS,
)
from propylon.envoy import (
    ROUTE_TYPE as RDS,
)
from propylon.envoy import Translator, XdsResources
from propylon.xds import AdsStream, Request, Response
from propylon.xds._stream import ORDER


def random_model(rng: random.Random) -> m.Model:
    clusters = sorted(rng.sample([f"c{i}" for i in range(12)], rng.randint(1, 8)))
    hosts = []
    for i in range(rng.randint(1, 6)):
        target = rng.choice(clusters)
        header = rng.choice(["", "x", "y"])
        mod = m.HeaderModifier(set=(("x-v", header),)) if header else None
        route = m.Route(
            "r", m.RouteMatch(), m.Forward((m.WeightedBackend(target),)), response_headers=mod
        )
        hosts.append(m.VirtualHost(f"vh{i}", (f"h{i}.example",), (route,)))
    listeners = [m.Listener("default/gw/80", "127.0.0.1", 80, http=tuple(hosts))]
    if rng.random() < 0.5:
        listeners.append(
            m.Listener("default/gw/81", "127.0.0.1", 81, http=tuple(hosts[: rng.randint(1, 3)]))
        )
    return m.Model(
        listeners=tuple(listeners),
        clusters=tuple(
            m.Cluster(
                c,
                (m.Endpoint("10.0.0.1", rng.choice([80, 81])),),
                protocol=rng.choice([m.AppProtocol.HTTP1, m.AppProtocol.H2C]),
            )
            for c in clusters
        ),
    )


def with_changes(prev: XdsResources | None, res: XdsResources) -> XdsResources:
    """`res` with a fresh stamp, and the exact differences from `prev` as its changes."""
    if prev is None:
        return replace(res, stamp=m.Stamp(), base=None, changes=None)
    a, b = prev.by_type(), res.by_type()
    changes = {}
    for t in ORDER:
        x, y = a.get(t, {}), b.get(t, {})
        changes[t] = frozenset(
            n
            for n in x.keys() | y.keys()
            if x.get(n) is None or y.get(n) is None or x[n].version != y[n].version
        )
    return replace(res, stamp=m.Stamp(), base=prev.stamp, changes=changes)


@dataclass
class FakeEnvoy:
    """Answers each response the way Envoy does: ACK, and (Delta) subscribes to the
    endpoints of new clusters and drops those of removed ones; (SotW) asks for the
    endpoints of every cluster it has."""

    delta: bool
    clusters: set[str] = field(default_factory=set)

    def answer(self, r: Response) -> list[Request]:
        out = []
        if r.type_url == CDS:
            before = set(self.clusters)
            if self.delta:
                self.clusters |= set(r.resources)
                self.clusters -= set(r.removed)
            else:
                self.clusters = set(r.resources)
            added, gone = self.clusters - before, before - self.clusters
            out.append(Request(CDS, nonce=r.nonce, node_id="n"))
            if self.delta and (added or gone):
                out.append(
                    Request(
                        EDS,
                        node_id="n",
                        subscribe=tuple(sorted(added)),
                        unsubscribe=tuple(sorted(gone)),
                    )
                )
            elif not self.delta and (added or gone):
                out.append(Request(EDS, node_id="n", names=tuple(sorted(self.clusters))))
            return out
        names = tuple(sorted(self.clusters)) if r.type_url == EDS and not self.delta else ()
        if r.type_url == RDS and not self.delta:
            names = ("default/gw/80", "default/gw/81")
        return [Request(r.type_url, nonce=r.nonce, node_id="n", names=names)]


def start(stream: AdsStream, delta: bool) -> None:
    from propylon.envoy import LISTENER_TYPE as LDS

    stream.on_request(Request(CDS, node_id="n"))
    stream.on_request(Request(LDS, node_id="n"))
    routes = ("default/gw/80", "default/gw/81")
    stream.on_request(
        Request(RDS, node_id="n", names=() if delta else routes, subscribe=routes if delta else ())
    )
    stream.on_request(Request(EDS, node_id="n", names=(), subscribe=()))


def shape(r: Response) -> tuple[object, ...]:
    return (
        r.type_url,
        r.nonce,
        tuple((n, e.version) for n, e in r.resources.items()),
        r.removed,
        r.snapshot_version,
    )


@pytest.mark.parametrize("delta", [True, False], ids=["delta", "sotw"])
@pytest.mark.parametrize("seed", range(25))
def test_changes_path_answers_as_full_comparison(delta: bool, seed: int) -> None:
    rng = random.Random(seed)
    tr = Translator()
    told_out: list[Response] = []
    full_out: list[Response] = []
    told = AdsStream(delta=delta, send=told_out.append)
    full = AdsStream(delta=delta, send=full_out.append)
    envoy = FakeEnvoy(delta)
    inflight: deque[Response] = deque()

    def answer_one() -> bool:
        """Both streams said the same; Envoy answers the oldest response in flight."""
        assert [shape(r) for r in told_out] == [shape(r) for r in full_out]
        inflight.extend(told_out)
        told_out.clear()
        full_out.clear()
        if not inflight:
            return False
        for req in envoy.answer(inflight.popleft()):
            told.on_request(req)
            full.on_request(req)
        return True

    prev: XdsResources | None = None
    for version in range(1, 40):
        res = with_changes(prev, tr.translate(random_model(rng), m.ProxyOptions()))
        prev = res
        told.set_snapshot(res, version)
        full.set_snapshot(replace(res, changes=None), version)
        if version == 1:
            start(told, delta)
            start(full, delta)
        # Envoy answers a random number of the responses in flight, in order.
        for _ in range(rng.randint(0, 12)):
            if not answer_one():
                break
        assert [shape(r) for r in told_out] == [shape(r) for r in full_out]
        assert told.acked_version == full.acked_version
    # Then Envoy catches up: both settle on the last version.
    for _ in range(200):
        if not answer_one():
            break
    assert told.acked_version == full.acked_version == version
