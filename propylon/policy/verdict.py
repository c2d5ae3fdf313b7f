"""One flow in one direction -> allowed or not, which requests, and why.

Cilium's semantics: an endpoint that no rule with a section in a direction selects is
not enforced there (everything allowed); once one selects it, only what an allow rule
admits passes (default deny); a matching deny rule wins over every allow rule."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from propylon.model import HttpRule
from propylon.policy.identity import Identity
from propylon.policy.rules import Direction, Rule


@dataclass(frozen=True, slots=True)
class Verdict:
    """`http`: None means any request on the flow; otherwise one of these must match.
    `rules`: the rules that decided (deny, or the allowing rules); `why` (in words) is
    made only when asked for: the engine decides thousands of flows per change."""

    allowed: bool
    http: tuple[HttpRule, ...] | None
    rules: tuple[str, ...]
    outcome: str  # "denied", "unselected", "default-deny", "allowed", "allowed-l7"
    direction: Direction
    subject: Identity
    peer: Identity
    port: int

    @property
    def why(self) -> str:
        s, p = self.subject.describe(), self.peer.describe()
        if self.direction == "egress":
            where = f"egress of {s} to {p} on port {self.port}"
        else:
            where = f"ingress of {s} from {p} on port {self.port}"
        names = ", ".join(self.rules)
        return (
            where
            + {
                "denied": f": denied by {names}",
                "unselected": ": no policy selects it in this direction",
                "default-deny": f": default deny (selected by {names}; no rule allows it)",
                "allowed": f": allowed by {names}",
                "allowed-l7": f": allowed for the HTTP rules of {names}",
                "outside": f": {s} is outside the cluster (no ingress policy)",
            }[self.outcome]
        )


def decide(
    rules: Sequence[Rule],
    enforcing: Sequence[str],
    direction: Direction,
    subject: Identity,
    peer: Identity,
    port: int,
    protocol: str = "TCP",
) -> Verdict:
    """`rules`: those of `direction` that select `subject` (the endpoint whose policy
    applies: the destination for ingress, the source for egress); `enforcing`: the
    policies that put it into default deny there; `peer`: the other end."""
    flow = (direction, subject, peer, port)
    for r in rules:
        if r.deny and r.peers.matches(peer) and r.port_matches(port, protocol):
            return Verdict(False, None, (r.name,), "denied", *flow)
    if not enforcing:
        return Verdict(True, None, (), "unselected", *flow)
    allowing = [
        r for r in rules if not r.deny and r.peers.matches(peer) and r.port_matches(port, protocol)
    ]
    if not allowing:
        return Verdict(False, None, tuple(enforcing), "default-deny", *flow)
    names = tuple(r.name for r in allowing)
    if any(r.http is None for r in allowing):
        # An L3/L4 allow admits every request, whatever L7 rules others add.
        return Verdict(True, None, names, "allowed", *flow)
    http: list[HttpRule] = []
    for r in allowing:
        for h in r.http or ():
            if h not in http:
                http.append(h)
    return Verdict(True, tuple(http), names, "allowed-l7", *flow)
