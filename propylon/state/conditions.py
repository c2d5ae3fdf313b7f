"""Filling `lastTransitionTime` in statuses (the pure core reads no clock).

Every `conditions` list anywhere in a status is merged with the one at the same place in
the previous status: a condition keeps its previous `lastTransitionTime` when a condition
of the same `type` had the same `status`, and gets `now` otherwise. List items are paired
with their previous selves by identity, not position: listeners by `name`, route parents
by `parentRef` (+ `controllerName`), anything else by index.

The merged statuses of one call share their equal parts: thousands of routes on one
Gateway have the same status, with the same transition times after a start-up, and
each kept its own copy (6.2 MiB at 5000 routes). Merged statuses are read, never
modified (writers encode them; the Kubernetes patch copies).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from propylon.clock import format_timestamp


def _timestamp(now: datetime | str) -> str:
    return now if isinstance(now, str) else format_timestamp(now)


def _identity(item: Any, index: int) -> str:
    if isinstance(item, Mapping):
        if "parentRef" in item:
            ref = json.dumps(item["parentRef"], sort_keys=True)
            return f"parent:{ref}:{item.get('controllerName', '')}"
        if isinstance(item.get("name"), str):
            return f"name:{item['name']}"
    return f"index:{index}"


_SCALARS = (str, int, float, bool, type(None))


class _Shared:
    """Equal dicts and lists made by one merge, as one object (hash-consing: a container
    is looked up by its scalars and the identities of its children, which are shared
    already; the memo keeps them alive, so an identity is never reused within a call)."""

    __slots__ = ("memo",)

    def __init__(self) -> None:
        self.memo: dict[tuple[Any, ...], Any] = {}

    def _part(self, value: Any) -> Any:
        # The type too: True == 1 and 1 == 1.0, but JSON tells them apart.
        return (type(value), value) if type(value) in _SCALARS else id(value)

    def dict(self, value: dict[str, Any]) -> dict[str, Any]:
        key = (dict, *((k, self._part(v)) for k, v in value.items()))
        shared: dict[str, Any] = self.memo.setdefault(key, value)
        return shared

    def list(self, value: list[Any]) -> list[Any]:
        key = (list, *map(self._part, value))
        shared: list[Any] = self.memo.setdefault(key, value)
        return shared


def _merge_condition_list(previous: Any, new: list[Any], now: str, shared: _Shared) -> list[Any]:
    before: dict[str, Mapping[str, Any]] = {}
    if isinstance(previous, list):
        for cond in previous:
            if isinstance(cond, Mapping) and isinstance(cond.get("type"), str):
                before[cond["type"]] = cond
    merged: list[Any] = []
    for cond in new:
        if not isinstance(cond, Mapping):
            merged.append(cond)
            continue
        out = dict(cond)
        old = before.get(str(cond.get("type")))
        if (
            old is not None
            and old.get("status") == cond.get("status")
            and isinstance(old.get("lastTransitionTime"), str)
        ):
            out["lastTransitionTime"] = old["lastTransitionTime"]
        else:
            out["lastTransitionTime"] = now
        merged.append(shared.dict(out))
    return shared.list(merged)


def _merge(previous: Any, new: Any, now: str, shared: _Shared) -> Any:
    if isinstance(new, Mapping):
        prev = previous if isinstance(previous, Mapping) else {}
        out: dict[str, Any] = {}
        for key, value in new.items():
            if key == "conditions" and isinstance(value, list):
                out[key] = _merge_condition_list(prev.get(key), value, now, shared)
            else:
                out[key] = _merge(prev.get(key), value, now, shared)
        return shared.dict(out)
    if isinstance(new, list):
        prev_by_id: dict[str, Any] = {}
        if isinstance(previous, list):
            prev_by_id = {_identity(item, i): item for i, item in enumerate(previous)}
        return shared.list(
            [
                _merge(prev_by_id.get(_identity(item, i)), item, now, shared)
                for i, item in enumerate(new)
            ]
        )
    return new


def merge_conditions(
    previous_status: Mapping[str, Any] | None,
    new_status: Mapping[str, Any],
    now: datetime | str,
) -> dict[str, Any]:
    """`new_status` with every condition's `lastTransitionTime` filled in (a new dict;
    the inputs are not modified)."""
    merged: dict[str, Any] = _merge(previous_status or {}, new_status, _timestamp(now), _Shared())
    return merged


def merge_statuses(
    previous: Mapping[Any, Mapping[str, Any]],
    new: Mapping[Any, Mapping[str, Any]],
    now: datetime | str,
) -> dict[Any, dict[str, Any]]:
    """`merge_conditions` for every object of a build (keys are ObjectKeys)."""
    stamp, shared = _timestamp(now), _Shared()
    return {
        key: _merge(previous.get(key) or {}, status, stamp, shared) for key, status in new.items()
    }
