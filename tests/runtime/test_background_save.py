"""The state save in the background (hashing in steps on the worker, encoding and
writing on a thread of its own) writes what a save in one go writes, and what it
writes gives a restarted store the same generations and uids."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from runtime_manifests import GATEWAY, GATEWAY_CLASS

from propylon.resources.meta import ObjectKey
from propylon.runtime import Instance, RunOptions
from propylon.sources.files import FileSource
from propylon.store import Store
from propylon.xds import AdsServer

DOCS = GATEWAY_CLASS + "---\n" + GATEWAY

ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r{i}
spec:
  parentRefs:
  - name: gw
  hostnames: [r{i}.example.com]
  rules:
  - backendRefs:
    - name: s{i}
      port: 80
---
apiVersion: v1
kind: Service
metadata:
  name: s{i}
spec:
  ports:
  - port: 80
"""


async def test_background_save_writes_what_a_save_in_one_go_writes(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "base.yaml").write_text(DOCS)
    for i in range(30):
        (manifests / f"r{i}.yaml").write_text(ROUTE.format(i=i))
    instance = Instance(RunOptions(paths=(manifests,), state_dir=tmp_path / "state"))
    instance.state.ensure()
    instance._xds = AdsServer()  # no Envoy: the pushes go nowhere
    source = FileSource([manifests])
    await instance.reconcile(source.load())
    (manifests / "r30.yaml").write_text(ROUTE.format(i=30))
    await instance.reconcile(source.update([manifests / "r30.yaml"]))

    instance._save_later()  # what the timer calls: hash in steps, then write elsewhere
    assert instance._saving is not None
    await asyncio.wait_for(instance._saving, 60)

    assert instance.state.load_statuses() == dict(instance.statuses)
    records = instance.state.load_metadata()
    want = {k: v.to_json() for k, v in instance.store.export_records().items()}
    assert records == want and len(records) == 2 + 2 * 31
    route = ObjectKey("HTTPRoute", "default", "r30")
    assert instance.statuses[route]["parents"][0]["conditions"][0]["status"] == "True"

    # A restart: the same objects keep their uid and generation.
    counter = itertools.count(1)
    restarted = Store(
        now=lambda: "2030-01-01T00:00:00Z", new_uid=lambda: f"new-{next(counter)}", records=records
    )
    snapshot = restarted.apply(FileSource([manifests]).load())
    before = instance.store.snapshot()
    for key in (route, ObjectKey("Gateway", "default", "gw")):
        old, new = before[key].resource.metadata, snapshot[key].resource.metadata
        assert (new.uid, new.generation) == (old.uid, old.generation)
