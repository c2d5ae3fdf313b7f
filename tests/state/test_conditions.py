from __future__ import annotations

from datetime import UTC, datetime

from propylon.state import merge_conditions, merge_statuses

T0 = "2026-01-01T00:00:00Z"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
T1 = "2026-01-02T03:04:05Z"


def cond(type_: str, status: str, **extra: object) -> dict[str, object]:
    return {"type": type_, "status": status, "reason": type_, "observedGeneration": 1, **extra}


def test_first_status_gets_now_everywhere() -> None:
    new = {
        "conditions": [cond("Accepted", "True")],
        "listeners": [{"name": "web", "conditions": [cond("Programmed", "True")]}],
    }
    merged = merge_conditions(None, new, NOW)
    assert merged["conditions"][0]["lastTransitionTime"] == T1
    assert merged["listeners"][0]["conditions"][0]["lastTransitionTime"] == T1
    assert "lastTransitionTime" not in new["conditions"][0]  # type: ignore[index]


def test_unchanged_status_keeps_time_changed_status_gets_now() -> None:
    previous = {
        "conditions": [
            cond("Accepted", "True", lastTransitionTime=T0),
            cond("Programmed", "False", lastTransitionTime=T0),
        ]
    }
    new = {
        "conditions": [
            cond("Accepted", "True", reason="Other", observedGeneration=2),
            cond("Programmed", "True"),
            cond("ResolvedRefs", "True"),
        ]
    }
    merged = merge_conditions(previous, new, NOW)
    times = {c["type"]: c["lastTransitionTime"] for c in merged["conditions"]}
    assert times == {"Accepted": T0, "Programmed": T1, "ResolvedRefs": T1}
    assert merged["conditions"][0]["observedGeneration"] == 2


def test_listeners_matched_by_name_and_parents_by_ref() -> None:
    ref_a = {"name": "gw", "namespace": "default", "sectionName": "a"}
    ref_b = {"name": "gw", "namespace": "default", "sectionName": "b"}
    previous = {
        "listeners": [
            {"name": "a", "conditions": [cond("Programmed", "True", lastTransitionTime=T0)]},
            {"name": "b", "conditions": [cond("Programmed", "True", lastTransitionTime=T0)]},
        ],
        "parents": [
            {
                "parentRef": ref_a,
                "controllerName": "c",
                "conditions": [cond("Accepted", "True", lastTransitionTime=T0)],
            },
        ],
    }
    new = {
        "listeners": [  # reordered, and "a" changed
            {"name": "b", "conditions": [cond("Programmed", "True")]},
            {"name": "a", "conditions": [cond("Programmed", "False")]},
        ],
        "parents": [
            {"parentRef": ref_b, "controllerName": "c", "conditions": [cond("Accepted", "True")]},
            {"parentRef": ref_a, "controllerName": "c", "conditions": [cond("Accepted", "True")]},
        ],
    }
    merged = merge_conditions(previous, new, T1)
    assert [lis["conditions"][0]["lastTransitionTime"] for lis in merged["listeners"]] == [T0, T1]
    assert [p["conditions"][0]["lastTransitionTime"] for p in merged["parents"]] == [T1, T0]


def test_merge_statuses() -> None:
    prev = {"k": {"conditions": [cond("Accepted", "True", lastTransitionTime=T0)]}}
    out = merge_statuses(prev, {"k": {"conditions": [cond("Accepted", "True")]}, "j": {}}, NOW)
    assert out["k"]["conditions"][0]["lastTransitionTime"] == T0 and out["j"] == {}


def test_merged_statuses_share_equal_parts_and_keep_json_types_apart() -> None:
    """Equal statuses merged at one time are one object (thousands of routes have the
    same status); values JSON tells apart (true and 1, 1 and 1.0) are not merged."""
    status = {"parents": [{"parentRef": {"name": "gw"}, "conditions": [cond("A", "True")]}]}
    merged = merge_statuses(
        {"b": {"parents": []}},
        {
            "a": status,
            "b": {"parents": [{"parentRef": {"name": "gw"}, "conditions": [cond("A", "True")]}]},
            "c": {"x": True, "y": [1]},
            "d": {"x": 1, "y": [1.0]},
        },
        NOW,
    )
    assert merged["a"] is merged["b"]
    assert merged["a"]["parents"][0]["conditions"][0]["lastTransitionTime"] == T1
    assert merged["c"] == {"x": True, "y": [1]} and merged["d"] == {"x": 1, "y": [1.0]}
    assert merged["c"]["x"] is True and merged["d"]["x"] is not True
    assert type(merged["d"]["y"][0]) is float and type(merged["c"]["y"][0]) is int
    assert "lastTransitionTime" not in status["parents"][0]["conditions"][0]  # type: ignore[index]
