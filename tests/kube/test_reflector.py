"""List+watch against a real API server: changes, resume, 410 Gone, CRDs installed later."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from kube_controlplane import ControlPlane
from kube_eventually import eventually

from propylon.kube import kinds
from propylon.kube.api import KubeApi
from propylon.kube.reflector import Event, Reflector
from propylon.kube.source import KubeSource
from propylon.resources import ObjectKey

HERE = Path(__file__).resolve().parent


def _cm(name: str, namespace: str, value: str = "1") -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"v": value},
    }


async def test_watch_sees_adds_updates_deletes(api: KubeApi, namespace: str) -> None:
    events: list[Event] = []
    reflector = Reflector(
        api, kinds.CONFIG_MAP, events.extend, field_selector=f"metadata.namespace={namespace}"
    )
    await api.create(kinds.CONFIG_MAP, _cm("a", namespace), namespace)
    task = asyncio.create_task(reflector.run())
    try:
        await eventually(lambda: (namespace, "a") in reflector.objects, what="initial list")
        await api.create(kinds.CONFIG_MAP, _cm("b", namespace), namespace)
        await api.patch(kinds.CONFIG_MAP, "a", {"data": {"v": "2"}}, namespace=namespace)
        await api.delete(kinds.CONFIG_MAP, "b", namespace)
        await eventually(
            lambda: (
                reflector.objects.get((namespace, "a"), {}).get("data") == {"v": "2"}
                and (namespace, "b") not in reflector.objects
                and any(e.obj is None and e.id == (namespace, "b") for e in events)
            ),
            what="watch events",
        )
        assert reflector.stats.lists == 1  # no relist: the watch carried everything
    finally:
        task.cancel()


async def test_gone_relists_with_synthetic_deletes(
    api: KubeApi, controlplane: ControlPlane, namespace: str
) -> None:
    """A watch resumed from a resourceVersion the server no longer has (410 Gone)
    relists, and what vanished meanwhile is reported deleted: nothing is lost."""
    events: list[Event] = []
    selector = f"metadata.namespace={namespace}"
    reflector = Reflector(api, kinds.CONFIG_MAP, events.extend, field_selector=selector)
    await api.create(kinds.CONFIG_MAP, _cm("stays", namespace), namespace)
    await api.create(kinds.CONFIG_MAP, _cm("goes", namespace), namespace)
    task = asyncio.create_task(reflector.run())
    await eventually(lambda: len(reflector.objects) == 2, what="initial list")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # While not watching: one deleted, one added.
    await api.delete(kinds.CONFIG_MAP, "goes", namespace)
    await api.create(kinds.CONFIG_MAP, _cm("new", namespace), namespace)
    events.clear()
    # The version the reflector would resume from is compacted away: 410 Gone.
    await api.create(kinds.CONFIG_MAP, _cm("bump", namespace), namespace)
    await api.delete(kinds.CONFIG_MAP, "bump", namespace)
    controlplane.compact_etcd()
    task = asyncio.create_task(reflector.run())
    try:
        await eventually(
            lambda: (
                set(reflector.objects) == {(namespace, "stays"), (namespace, "new")}
                and reflector.stats.lists == 2
            ),
            what="relist",
        )
        assert reflector.stats.relists_gone == 1
        deleted = [e.id for e in events if e.obj is None]
        assert deleted == [(namespace, "goes")]
        assert reflector.stats.synthetic_deletes == 1
    finally:
        task.cancel()


async def test_crd_installed_later_is_picked_up(
    api: KubeApi, controlplane: ControlPlane, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    crd = "ciliumgatewayclassconfigs.cilium.io"
    controlplane.kubectl("delete", "crd", crd, "--wait=true")
    source = KubeSource(api, [kinds.GATEWAY_CLASS_CONFIG, kinds.CONFIG_MAP])
    caplog.set_level(logging.INFO, logger="propylon.kube")
    source.start()
    try:
        changes = source.changes()
        first = await asyncio.wait_for(anext(changes), 20)
        assert not any(k.kind == "CiliumGatewayClassConfig" for k in first.objects)
        reflector = source.reflectors["CiliumGatewayClassConfig"]
        assert reflector.installed is False
        skipped = [r for r in caplog.records if "not served" in r.getMessage()]
        assert len(skipped) == 1, "one log line, not an error loop"

        controlplane.kubectl("apply", "-f", str(HERE / "crds" / "cilium.yaml"))
        controlplane.kubectl("wait", "--for=condition=Established", f"crd/{crd}")
        controlplane.kubectl(
            "apply",
            "-n",
            namespace,
            "-f",
            "-",
            input=(
                "apiVersion: cilium.io/v2alpha1\nkind: CiliumGatewayClassConfig\n"
                "metadata: {name: later}\nspec: {service: {type: NodePort}}\n"
            ),
        )
        key = ObjectKey("CiliumGatewayClassConfig", namespace, "later")
        while True:
            changeset = await asyncio.wait_for(anext(changes), 30)
            if key in changeset.objects:
                break
        assert reflector.installed is True
        assert len([r for r in caplog.records if "not served" in r.getMessage()]) == 1
    finally:
        await source.stop()
        controlplane.kubectl("apply", "-f", str(HERE / "crds" / "cilium.yaml"))


async def test_changesets_carry_the_api_servers_metadata(api: KubeApi, namespace: str) -> None:
    source = KubeSource(api, [kinds.CONFIG_MAP])
    created = await api.create(kinds.CONFIG_MAP, _cm("meta", namespace), namespace)
    source.start()
    try:
        changes = source.changes()
        key = ObjectKey("ConfigMap", namespace, "meta")
        changeset = await asyncio.wait_for(anext(changes), 20)
        assert changeset.server_metadata
        meta = changeset.objects[key].resource.metadata
        assert meta.uid == created["metadata"]["uid"]
        assert meta.creation_timestamp == created["metadata"]["creationTimestamp"]
        assert meta.resource_version == created["metadata"]["resourceVersion"]
    finally:
        await source.stop()


async def test_status_only_updates_do_not_make_a_changeset(api: KubeApi, namespace: str) -> None:
    """Another controller's (or our own) status write changes nothing the core reads:
    no parse, no change set. A later real change arrives alone."""

    def route(name: str) -> dict[str, object]:
        return {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"parentRefs": [{"name": "gw"}]},
        }

    await api.create(kinds.HTTP_ROUTE, route("a"), namespace)
    # Only this test's namespace: an earlier test's namespace, deleted without waiting,
    # loses its routes while this one runs, and those deletions are change sets too.
    source = KubeSource(api, [kinds.HTTP_ROUTE], namespaces={"HTTPRoute": namespace})
    source.start()
    try:
        changes = source.changes()
        await asyncio.wait_for(anext(changes), 20)
        status = {
            "parents": [
                {
                    "parentRef": {"name": "gw"},
                    "controllerName": "example.com/x",
                    "conditions": [
                        {
                            "type": "Accepted",
                            "status": "True",
                            "reason": "Accepted",
                            "message": "",
                            "lastTransitionTime": "2026-01-01T00:00:00Z",
                            "observedGeneration": 1,
                        }
                    ],
                }
            ]
        }
        await api.patch(
            kinds.HTTP_ROUTE, "a", {"status": status}, namespace=namespace, sub="status"
        )
        await api.create(kinds.HTTP_ROUTE, route("b"), namespace)
        changeset = await asyncio.wait_for(anext(changes), 20)
        assert changeset.touched == {ObjectKey("HTTPRoute", namespace, "b")}
        # The raw cache still follows the API server (the status sink reads it).
        raw = source.raw(ObjectKey("HTTPRoute", namespace, "a"))
        assert raw is not None and raw["status"]["parents"][0]["controllerName"] == "example.com/x"
    finally:
        await source.stop()
