"""Statuses across builds and restarts: merge `lastTransitionTime`, persist, serve.

The runtime calls `StatusKeeper.update(build.statuses)` after each build; the keeper
fills in transition times against the last statuses (loaded from `status.json` at
start, so times survive restarts), forgets objects that no longer have a status, and
rewrites `status.json` when something changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from propylon.clock import utc_now
from propylon.resources.meta import ObjectKey
from propylon.state.conditions import merge_statuses
from propylon.state.documents import to_document
from propylon.state.statedir import StateDir
from propylon.store import Resource


class StatusKeeper:
    def __init__(self, state: StateDir | None, *, now: Callable[[], datetime] = utc_now) -> None:
        self._state = state
        self._now = now
        self.statuses: dict[ObjectKey, dict[str, Any]] = state.load_statuses() if state else {}

    def update(self, new: Mapping[ObjectKey, Mapping[str, Any]]) -> dict[ObjectKey, dict[str, Any]]:
        """Merge a build's statuses with the previous ones; returns (and keeps) the result."""
        merged = merge_statuses(self.statuses, new, self._now())
        if merged != self.statuses:
            self.statuses = merged
            if self._state is not None:
                self._state.save_statuses(merged)
        return self.statuses

    def get(self, key: ObjectKey) -> dict[str, Any] | None:
        return self.statuses.get(key)

    def documents(self, resources: Iterable[Resource]) -> list[dict[str, Any]]:
        """Objects as the API serves them: each resource with its merged status (or the
        status it carries itself, e.g. a generated Service's load balancer address)."""
        return [to_document(r, self.statuses.get(r.key)) for r in resources]
