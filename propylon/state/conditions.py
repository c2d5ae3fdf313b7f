"""Filling `lastTransitionTime` in statuses (the pure core reads no clock).

Every `conditions` list anywhere in a status is merged with the one at the same place in
the previous status: a condition keeps its previous `lastTransitionTime` when a condition
of the same `type` had the same `status`, and gets `now` otherwise. List items are paired
with their previous selves by identity, not position: listeners by `name`, route parents
by `parentRef` (+ `controllerName`), anything else by index.
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


def _merge_condition_list(previous: Any, new: list[Any], now: str) -> list[Any]:
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
        merged.append(out)
    return merged


def _merge(previous: Any, new: Any, now: str) -> Any:
    if isinstance(new, Mapping):
        prev = previous if isinstance(previous, Mapping) else {}
        out: dict[str, Any] = {}
        for key, value in new.items():
            if key == "conditions" and isinstance(value, list):
                out[key] = _merge_condition_list(prev.get(key), value, now)
            else:
                out[key] = _merge(prev.get(key), value, now)
        return out
    if isinstance(new, list):
        prev_by_id: dict[str, Any] = {}
        if isinstance(previous, list):
            prev_by_id = {_identity(item, i): item for i, item in enumerate(previous)}
        return [_merge(prev_by_id.get(_identity(item, i)), item, now) for i, item in enumerate(new)]
    return new


def merge_conditions(
    previous_status: Mapping[str, Any] | None,
    new_status: Mapping[str, Any],
    now: datetime | str,
) -> dict[str, Any]:
    """`new_status` with every condition's `lastTransitionTime` filled in (a new dict;
    the inputs are not modified)."""
    merged: dict[str, Any] = _merge(previous_status or {}, new_status, _timestamp(now))
    return merged


def merge_statuses(
    previous: Mapping[Any, Mapping[str, Any]],
    new: Mapping[Any, Mapping[str, Any]],
    now: datetime | str,
) -> dict[Any, dict[str, Any]]:
    """`merge_conditions` for every object of a build (keys are ObjectKeys)."""
    stamp = _timestamp(now)
    return {key: merge_conditions(previous.get(key), status, stamp) for key, status in new.items()}
