from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from propylon.clock import new_uid, timestamp_now
from propylon.resources.meta import ObjectKey
from propylon.state import STATE_DIR_ENV, StateDir, default_state_dir
from propylon.state.statedir import _Fragments, _SharedFragments
from propylon.store import ChangeSet, Origin, Store, StoredObject
from propylon.store.testing import fake_object


def test_default_state_dir() -> None:
    assert default_state_dir({STATE_DIR_ENV: "/x/y"}) == Path("/x/y")
    assert default_state_dir({}) == Path.home() / ".local/state/propylon"


def test_metadata_round_trip_through_store(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    store = Store(now=timestamp_now, new_uid=new_uid)
    gw = fake_object("Gateway", "gw", spec={"a": 1})
    store.apply(ChangeSet({gw.key: StoredObject(gw, Origin("f", 0))}))
    store.apply(
        ChangeSet({gw.key: StoredObject(fake_object("Gateway", "gw", spec={"a": 2}), None)})
    )
    state.save_metadata(store.export_records())
    assert not list(state.path.glob(".*tmp"))  # no temp files left behind

    restarted = Store(now=timestamp_now, new_uid=new_uid, records=state.load_metadata())
    snap = restarted.apply(
        ChangeSet({gw.key: StoredObject(fake_object("Gateway", "gw", spec={"a": 2}))})
    )
    assert snap[gw.key].resource.metadata.generation == 2


def test_statuses_round_trip_and_corrupt_files(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    key = ObjectKey("Gateway", "default", "gw")
    cluster = ObjectKey("GatewayClass", "", "c")
    state.save_statuses({key: {"conditions": []}, cluster: {"x": 1}})
    assert state.load_statuses() == {key: {"conditions": []}, cluster: {"x": 1}}
    state.status_file.write_text("{not json")
    assert state.load_statuses() == {}
    assert state.load_metadata() == {}


def test_pid_file(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "s")
    assert state.running_pid() is None
    state.write_pid()
    assert state.read_pid() == os.getpid() == state.running_pid()
    state.remove_pid()
    assert not state.pid_file.exists()
    state.write_pid(2**22 + 12345)  # surely not a live process
    assert state.running_pid() is None


def test_status_keeper_merges_persists_and_reloads(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from propylon.state import StatusKeeper

    key = ObjectKey("Gateway", "default", "gw")
    state = StateDir(tmp_path)
    clock = [datetime(2026, 1, 1, tzinfo=UTC)]
    keeper = StatusKeeper(state, now=lambda: clock[0])
    cond = {"type": "Programmed", "status": "True", "observedGeneration": 1}
    keeper.update({key: {"conditions": [cond]}})
    clock[0] = datetime(2026, 1, 2, tzinfo=UTC)
    # Restart: a new keeper reads status.json, so the transition time is kept.
    again = StatusKeeper(state, now=lambda: clock[0])
    out = again.update({key: {"conditions": [cond]}})
    assert out[key]["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    doc = again.documents([fake_object("Gateway", "gw")])[0]
    assert doc["status"] == out[key] and doc["metadata"]["name"] == "gw"
    assert again.update({}) == {} and state.load_statuses() == {}


def test_fragments_render_what_a_fresh_render_gives_and_reencode_only_changed_groups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The kept group texts never show a stale member: after random additions, removals
    and replaced values, the text is a fresh renderer's, and valid JSON of the members;
    an unchanged set encodes no value again, one new member encodes about one group."""
    rng = random.Random(7)
    shared = {"conditions": [{"type": "Accepted"}]}  # a value object many names share
    members: dict[str, Any] = {f"HTTPRoute/ns/r{i}": {"g": i} for i in range(600)}
    kept, shared_kept = _Fragments(), _SharedFragments()
    for _ in range(60):
        for _ in range(rng.randrange(1, 6)):
            name = f"HTTPRoute/ns/r{rng.randrange(900)}"
            roll = rng.random()
            if roll < 0.3:
                members.pop(name, None)
            elif roll < 0.5:
                members[name] = shared
            else:
                members[name] = {"g": rng.randrange(5)}
        items = sorted(members.items())
        text = kept.render(items)
        assert text == _Fragments().render(items) == shared_kept.render(items)
        assert json.loads(text) == dict(items)

    encoded: list[Any] = []
    real_dumps = json.dumps

    def counting(value: Any, **kwargs: Any) -> str:
        if isinstance(value, dict):
            encoded.append(value)
        return real_dumps(value, **kwargs)

    monkeypatch.setattr("propylon.state.statedir.json.dumps", counting)
    kept.render(sorted(members.items()))
    assert encoded == []
    members["HTTPRoute/ns/r450x"] = {"g": "new"}
    kept.render(sorted(members.items()))
    assert {"g": "new"} in encoded and len(encoded) < 300  # one group, not all members
