"""Route statuses shared between routes that have the same one.

Thousands of routes on one Gateway each had their own copy of the same status: the same
parentRef, controller, conditions and messages (at 5000 routes, 6.3 MiB of dicts and
strings, a third of the Builder's memory). A route's status depends only on its parent
results, its generation and its backends' verdict, so routes for which those are equal
get the one status object. Statuses are read, never modified, after they are built
(writers copy them: `propylon.state.merge_statuses`, the Kubernetes status patch).

A memo of values, owned by one `World` (whose Gateways the statuses name); bounded, so
that generations and messages of routes long changed do not accumulate.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from propylon.gatewayapi.routes import ParentResult
from propylon.resources.struct import field_values

#: At most this many distinct route statuses are kept; past it the memo starts afresh
#: (statuses given out stay valid: they are only no longer shared with later ones).
MAX_SHARED = 4096


class StatusParts:
    def __init__(self, limit: int = MAX_SHARED) -> None:
        self._limit = limit
        self._statuses: dict[Hashable, dict[str, Any]] = {}

    def route_status(
        self, parents: Sequence[ParentResult], generation: int, refs_reason: str, refs_message: str
    ) -> dict[str, Any]:
        """`{"parents": [...]}`, each parent's `ParentResult.status`: the same object as
        for every earlier route with equal inputs."""
        try:
            key = (
                generation,
                refs_reason,
                refs_message,
                tuple(
                    (type(p.ref), field_values(p.ref), p.accepted, p.reason, p.message)
                    for p in parents
                ),
            )
            hash(key)
        except TypeError:  # a reference field that is not a plain value: not shared
            return _status(parents, generation, refs_reason, refs_message)
        status = self._statuses.get(key)
        if status is None:
            if len(self._statuses) >= self._limit:
                self._statuses.clear()
            status = self._statuses[key] = _status(parents, generation, refs_reason, refs_message)
        return status


def _status(
    parents: Sequence[ParentResult], generation: int, refs_reason: str, refs_message: str
) -> dict[str, Any]:
    return {"parents": [p.status(generation, refs_reason, refs_message) for p in parents]}
