"""Listener isolation's hostname index (`PeerHostnames`) answers as the scan over every
peer listener that it replaced (a port may carry thousands of ListenerSet listeners)."""

from __future__ import annotations

import random

from propylon.gatewayapi.assemble import PeerHostnames
from propylon.gatewayapi.hostnames import covers
from propylon.gatewayapi.listeners import ListenerState
from propylon.resources import Gateway, Listener, parse_object

GATEWAY = parse_object(
    {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "gw"},
        "spec": {
            "gatewayClassName": "c",
            "listeners": [{"name": "x", "port": 80, "protocol": "HTTP"}],
        },
    }
)
LABELS = ["a", "b", "c"]


def _hostname(rng: random.Random) -> str | None:
    roll = rng.random()
    if roll < 0.1:
        return None
    labels = [rng.choice(LABELS) for _ in range(rng.randint(1, 3))]
    if roll < 0.5:
        return "*." + ".".join(labels)
    return ".".join(labels)


def _scan_shadowed(host: str, owner: ListenerState, peers: list[ListenerState]) -> bool:
    mine = owner.spec.hostname
    for other in peers:
        theirs = other.spec.hostname
        if other is owner or theirs == mine:
            continue
        if covers(mine, theirs) and covers(theirs, None if host == "*" else host):
            return True
    return False


def _scan_covered(hostname: str, owner: ListenerState, peers: list[ListenerState]) -> bool:
    return any(
        o is not owner and o.spec.hostname != hostname and covers(o.spec.hostname, hostname)
        for o in peers
    )


def test_same_answers_as_the_scan() -> None:
    assert isinstance(GATEWAY, Gateway)
    rng = random.Random(1713)
    for _ in range(300):
        hostnames = {_hostname(rng) for _ in range(rng.randint(1, 8))}
        peers = [
            ListenerState(GATEWAY, Listener(name=f"l{i}", port=80, protocol="HTTP", hostname=h))
            for i, h in enumerate(hostnames)
        ]
        index = PeerHostnames(peers)
        for owner in peers:
            for _ in range(6):
                host = _hostname(rng) or "*"
                assert index.shadowed(host, owner) == _scan_shadowed(host, owner, peers), (
                    host,
                    owner.spec.hostname,
                    sorted(map(str, hostnames)),
                )
            if owner.spec.hostname:
                assert index.covered_by_another(owner.spec.hostname) == _scan_covered(
                    owner.spec.hostname, owner, peers
                )
