"""A Translator with memory gives what a fresh translation gives, over random sequences of
changes where unchanged virtual hosts and clusters keep their identity (as the
incremental Builder hands them over)."""

from __future__ import annotations

import random

import pytest

from propylon import model as m
from propylon.envoy import SCOPED_ROUTE_TYPE, Translator, translate

OPTIONS = m.ProxyOptions()


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
        got = tr.translate(model, OPTIONS).by_type()
        want = translate(model, OPTIONS, scoped_min_hosts=4).by_type()
        assert list(got) == list(want)
        scoped_steps += bool(want[SCOPED_ROUTE_TYPE])
        for type_url, resources in want.items():
            assert list(got[type_url]) == list(resources), type_url  # same names, sorted
            for name, enc in resources.items():
                assert got[type_url][name].data == enc.data, (type_url, name)
    assert 0 < scoped_steps < 60
