"""One flow in one direction -> allowed or not, which requests, and why.

Cilium's semantics: an endpoint that no rule with a section in a direction selects is
not enforced there (everything allowed); once one selects it, only what an allow rule
admits passes (default deny); a matching deny rule wins over every allow rule."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from propylon.model import HttpRule
from propylon.policy.identity import Identity
from propylon.policy.rules import Direction, Rule, Section


@dataclass(frozen=True, slots=True)
class Verdict:
    """`http`: None means any request on the flow; otherwise one of these must match.
    `rules`: the rules that decided (deny, or the allowing rules); `why`: in words."""

    allowed: bool
    http: tuple[HttpRule, ...] | None
    rules: tuple[str, ...]
    why: str


def decide(
    rules: Sequence[Rule],
    sections: Sequence[Section],
    direction: Direction,
    subject: Identity,
    peer: Identity,
    port: int,
    protocol: str = "TCP",
) -> Verdict:
    """`subject`: the endpoint whose policy applies (the destination for ingress, the
    source for egress); `peer`: the other end."""
    where = f"{direction} of {subject.describe()} from {peer.describe()} on port {port}"
    if direction == "egress":
        where = f"egress of {subject.describe()} to {peer.describe()} on port {port}"
    relevant = [r for r in rules if r.direction == direction and r.selector.matches(subject)]
    for r in relevant:
        if r.deny and r.peers.matches(peer) and r.port_matches(port, protocol):
            return Verdict(False, None, (r.name,), f"{where}: denied by {r.name}")
    enforcing = sorted(
        {
            s.policy
            for s in sections
            if s.direction == direction and s.default_deny and s.selector.matches(subject)
        }
    )
    if not enforcing:
        return Verdict(True, None, (), f"{where}: no policy selects it in this direction")
    allowing = [
        r
        for r in relevant
        if not r.deny and r.peers.matches(peer) and r.port_matches(port, protocol)
    ]
    if not allowing:
        return Verdict(
            False,
            None,
            tuple(enforcing),
            f"{where}: default deny (selected by {', '.join(enforcing)}; no rule allows it)",
        )
    names = tuple(r.name for r in allowing)
    if any(r.http is None for r in allowing):
        # An L3/L4 allow admits every request, whatever L7 rules others add.
        return Verdict(True, None, names, f"{where}: allowed by {', '.join(names)}")
    http: list[HttpRule] = []
    for r in allowing:
        for h in r.http or ():
            if h not in http:
                http.append(h)
    return Verdict(
        True, tuple(http), names, f"{where}: allowed for the HTTP rules of {', '.join(names)}"
    )
