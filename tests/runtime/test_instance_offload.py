"""`propylon run` keeps its event loop free while it reads the manifests, and its local
API builds only the documents a query can match."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from runtime_manifests import GATEWAY

from propylon.resources.meta import ObjectKey
from propylon.runtime import Instance, RunOptions
from propylon.sources import files as files_module
from propylon.state.api import ObjectQuery
from propylon.store import Resource


async def test_files_are_read_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parse of a manifest waits until the loop has run a callback: on the loop it
    would wait in vain (and the document would be reported as unreadable)."""
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "gw.yaml").write_text(GATEWAY)
    loop_ran = threading.Event()
    parse = files_module.default_parse

    def parse_when_the_loop_ran(doc: Mapping[str, Any]) -> Resource:
        if not loop_ran.wait(timeout=10):
            raise AssertionError("the event loop did not run while the file was read")
        return parse(doc)

    monkeypatch.setattr(files_module, "default_parse", parse_when_the_loop_ran)
    instance = Instance(RunOptions(paths=(manifests,), state_dir=tmp_path / "state"))
    changes = instance._files.changes()
    first = asyncio.ensure_future(anext(changes))
    asyncio.get_running_loop().call_soon(loop_ran.set)
    try:
        changeset = await asyncio.wait_for(first, 60)
        assert changeset.diagnostics == ()
        assert ObjectKey("Gateway", "default", "gw") in changeset.objects
    finally:
        instance.stop()
        await changes.aclose()


async def test_objects_query_builds_only_matching_documents(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "gw.yaml").write_text(
        GATEWAY + "---\n" + GATEWAY.replace("name: gw", "name: other")
    )
    instance = Instance(RunOptions(paths=(manifests,), state_dir=tmp_path / "state"))
    changes = instance._files.changes()
    try:
        changeset = await asyncio.wait_for(anext(changes), 60)
    finally:
        instance.stop()
        await changes.aclose()
    instance.evaluation = await asyncio.to_thread(
        lambda: instance._evaluate(changeset, {}, frozenset(), None)[0]
    )

    def names(query: ObjectQuery) -> list[tuple[str, str]]:
        return sorted((d["kind"], d["metadata"]["name"]) for d in instance.objects(query))

    assert names(ObjectQuery()) == [("Gateway", "gw"), ("Gateway", "other")]
    assert names(ObjectQuery("Gateway", "default", "gw")) == [("Gateway", "gw")]
    assert names(ObjectQuery("Gateway", None, "other")) == [("Gateway", "other")]
    assert names(ObjectQuery("Gateway", "elsewhere", None)) == []
    assert names(ObjectQuery("HTTPRoute")) == []
