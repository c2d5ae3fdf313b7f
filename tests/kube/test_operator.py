"""`propylon operator` against a real API server, with the seed walkthrough's manifests."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kube_controlplane import ControlPlane
from kube_eventually import eventually
from operators import POOL, pool_and_objects, running_operator, to_yaml, walkthrough_documents

from propylon.kube import kinds
from propylon.kube.api import KubeApi
from propylon.kube.nodereport import REPORT_LABEL, STATE_ANNOTATION, report_name


def _condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or ():
        if cond.get("type") == type_:
            return dict(cond)
    return None


def _parent_condition(route: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for parent in ((route or {}).get("status") or {}).get("parents") or ():
        for cond in parent.get("conditions") or ():
            if cond.get("type") == type_:
                return dict(cond)
    return None


@pytest.fixture
def walkthrough(controlplane: ControlPlane) -> Any:
    controlplane.kubectl(
        "apply", "-f", "-", input=POOL.format(name="walkthrough", cidr="198.19.200.0/24")
    )
    docs = walkthrough_documents()
    controlplane.kubectl("apply", "-f", "-", input=to_yaml(docs))
    yield docs
    controlplane.kubectl("delete", "-f", "-", "--wait=false", input=to_yaml(docs), check=False)
    controlplane.kubectl("delete", "ciliumloadbalancerippool", "walkthrough", check=False)


async def test_walkthrough_gets_address_programmed_and_service(
    api: KubeApi, controlplane: ControlPlane, namespace: str, walkthrough: Any
) -> None:
    async with running_operator(controlplane.kubeconfig, namespace) as operator:

        def gateway_row() -> list[str] | None:
            out = controlplane.kubectl("get", "gateway", "example-gateway", "--no-headers")
            row = out.split()
            return row if len(row) >= 4 and row[3] == "True" else None

        row = await eventually(gateway_row, what="PROGRAMMED True")
        assert row[:4] == ["example-gateway", "example-gateway-class", "198.19.200.1", "True"]

        def service_row() -> list[str] | None:
            out = controlplane.kubectl(
                "get", "svc", "cilium-gateway-example-gateway", "--no-headers", check=False
            )
            row = out.split()
            return row if len(row) >= 4 and row[3] == "198.19.200.1" else None

        row = await eventually(service_row, what="Service EXTERNAL-IP")
        assert row[1] == "LoadBalancer"
        assert row[4].startswith("8080:") and ",50051:" in row[4]

        svc = await api.get(kinds.SERVICE, "cilium-gateway-example-gateway", "default")
        gw = await api.get(kinds.GATEWAY, "example-gateway", "default")
        assert svc is not None and gw is not None
        (owner,) = svc["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == (
            "Gateway",
            "example-gateway",
            gw["metadata"]["uid"],
        )
        slice_ = await eventually(
            lambda: api.get(kinds.ENDPOINT_SLICE, "cilium-gateway-example-gateway", "default"),
            what="EndpointSlice",
        )
        assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == svc["metadata"]["name"]

        async def route_accepted() -> dict[str, Any] | None:
            r = await api.get(kinds.HTTP_ROUTE, "http-test-app", "default")
            c = _parent_condition(r, "Accepted")
            return r if c and c["status"] == "True" else None

        route = await eventually(route_accepted, what="HTTPRoute Accepted")
        accepted = _parent_condition(route, "Accepted")
        assert accepted is not None
        assert accepted["observedGeneration"] == route["metadata"]["generation"]

        cls = await eventually(lambda: api.get(kinds.GATEWAY_CLASS, "cilium"), what="class cilium")
        assert cls["spec"]["controllerName"] == "io.cilium/gateway-controller"

        def address_event() -> bool:
            return ("AddressAssigned", "example-gateway") in _events(controlplane, "default")

        await eventually(address_event, what="AddressAssigned event")

        # --- only on change: a label is not a status change --------------------------
        await eventually(lambda: operator.statuses.idle.is_set(), what="status writer idle")
        writes = operator.statuses.writes
        reconciles = operator.reconciles
        controlplane.kubectl("label", "httproute", "http-test-app", "touched=yes")
        await eventually(lambda: operator.reconciles > reconciles, what="reconcile")
        await eventually(lambda: operator.statuses.idle.is_set(), what="status writer idle")
        assert operator.statuses.writes == writes

        # --- a spec change: observedGeneration follows ---------------------------------
        controlplane.kubectl(
            "patch",
            "httproute",
            "http-test-app",
            "--type=merge",
            "-p",
            '{"spec":{"hostnames":["other.mynetwork.local"]}}',
        )

        async def observed_generation_2() -> bool:
            r = await api.get(kinds.HTTP_ROUTE, "http-test-app", "default")
            c = _parent_condition(r, "Accepted")
            return bool(
                r and c and r["metadata"]["generation"] == 2 and c["observedGeneration"] == 2
            )

        await eventually(observed_generation_2, what="observedGeneration 2")

        # --- the seed's original sectionName: NoMatchingParent naming the listeners ----
        controlplane.kubectl(
            "patch",
            "httproute",
            "http-test-app",
            "--type=json",
            "-p",
            '[{"op":"replace","path":"/spec/parentRefs/0/sectionName","value":"http-gw"}]',
        )

        def no_matching_parent() -> str | None:
            out = controlplane.kubectl("describe", "httproute", "http-test-app")
            return out if "NoMatchingParent" in out else None

        described = await eventually(no_matching_parent, what="NoMatchingParent")
        assert "web-gw" in described and "grpc-gw" in described
        route = await api.get(kinds.HTTP_ROUTE, "http-test-app", "default")
        accepted = _parent_condition(route, "Accepted")
        assert accepted is not None and accepted["status"] == "False"

    # --- the garbage collector removes the generated objects with their Gateway --------
    controlplane.kubectl("delete", "gateway", "example-gateway")

    async def service_gone() -> bool:
        return await api.get(kinds.SERVICE, "cilium-gateway-example-gateway", "default") is None

    await eventually(service_gone, timeout=60, what="GC of the generated Service")


GATEWAY = """apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: {cls}}}
spec: {{controllerName: io.cilium/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: {ns}}}
spec:
  gatewayClassName: {cls}
  listeners:
    - {{name: web, protocol: HTTP, port: 80}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: {ns}}}
spec:
  parentRefs: [{{name: gw}}]
  rules: [{{backendRefs: [{{name: svc, port: 80}}]}}]
"""


@pytest.fixture
def small(controlplane: ControlPlane, namespace: str) -> Any:
    cls = f"{namespace}-class"
    manifests = GATEWAY.format(cls=cls, ns=namespace)
    with pool_and_objects(
        controlplane, manifests, pool=f"{namespace}-pool", cidr="198.19.201.0/24", gateway_class=cls
    ):
        yield cls


async def test_other_controllers_parents_are_kept_and_no_hot_loop(
    api: KubeApi, controlplane: ControlPlane, namespace: str, small: str
) -> None:
    async with running_operator(controlplane.kubeconfig, namespace) as operator:

        async def accepted() -> dict[str, Any] | None:
            r = await api.get(kinds.HTTP_ROUTE, "r", namespace)
            c = _parent_condition(r, "Accepted")
            return r if c and c["status"] == "True" else None

        route = await eventually(accepted, what="route Accepted")
        # Another controller adds its own parent entry (through the status subresource).
        foreign = {
            "parentRef": {"name": "elsewhere"},
            "controllerName": "example.com/other",
            "conditions": [
                {
                    "type": "Accepted",
                    "status": "True",
                    "reason": "Accepted",
                    "message": "",
                    "observedGeneration": 1,
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
        }
        parents = [*route["status"]["parents"], foreign]
        await api.patch(
            kinds.HTTP_ROUTE,
            "r",
            {"status": {"parents": parents}},
            namespace=namespace,
            sub="status",
        )
        writes = operator.statuses.writes
        # Ours rewritten by someone else (a stale writer): put back, once.
        ours = dict(route["status"]["parents"][0])
        ours["conditions"] = [{**ours["conditions"][0], "status": "False", "reason": "Stale"}]
        await api.patch(
            kinds.HTTP_ROUTE,
            "r",
            {"status": {"parents": [ours, foreign]}},
            namespace=namespace,
            sub="status",
        )

        async def repaired() -> dict[str, Any] | None:
            r = await api.get(kinds.HTTP_ROUTE, "r", namespace)
            c = _parent_condition(r, "Accepted")
            return r if c and c["status"] == "True" else None

        route = await eventually(repaired, what="our parent entry repaired")
        controllers = [p["controllerName"] for p in route["status"]["parents"]]
        assert sorted(controllers) == ["example.com/other", "io.cilium/gateway-controller"]
        await eventually(lambda: operator.statuses.idle.is_set(), what="idle")
        assert operator.statuses.writes - writes <= 2  # the repair, not a loop


async def test_programmed_waits_for_an_agents_envoy(
    api: KubeApi, controlplane: ControlPlane, namespace: str, small: str
) -> None:
    async with running_operator(
        controlplane.kubeconfig, namespace, require_agent_ack=True
    ) as operator:

        async def programmed() -> dict[str, Any] | None:
            return _condition(await api.get(kinds.GATEWAY, "gw", namespace), "Programmed")

        async def written() -> dict[str, Any] | None:
            c = await programmed()  # the CRD's default status says Unknown
            return c if c and c["status"] != "Unknown" else None

        cond = await eventually(written, what="Programmed condition")
        assert (cond["status"], cond["reason"]) == ("False", "Pending")
        assert "node agent" in cond["message"]
        address = (await api.get(kinds.GATEWAY, "gw", namespace) or {})["status"]["addresses"]
        assert address == [{"type": "IPAddress", "value": "198.19.201.1"}]

        async def report(state: dict[str, Any]) -> None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": report_name("node-x"),
                    "namespace": namespace,
                    "labels": {REPORT_LABEL: "true"},
                    "annotations": {STATE_ANNOTATION: json.dumps(state)},
                },
                "spec": {
                    "holderIdentity": "node-x",
                    "leaseDurationSeconds": 40,
                    "renewTime": _now(),
                },
            }
            existing = await api.get(kinds.LEASE, body["metadata"]["name"], namespace)
            if existing is None:
                await api.create(kinds.LEASE, body, namespace)
            else:
                await api.patch(
                    kinds.LEASE,
                    body["metadata"]["name"],
                    {"metadata": body["metadata"], "spec": body["spec"]},
                    namespace=namespace,
                )

        await report({"acked": {f"{namespace}/gw": 1}})

        async def is_true() -> bool:
            c = await programmed()
            return bool(c and c["status"] == "True")

        await eventually(is_true, what="Programmed True after the ACK")

        await report(
            {
                "acked": {f"{namespace}/gw": 1},
                "nack": {"message": "listener bind failed", "gateways": {f"{namespace}/gw": 1}},
            }
        )

        async def rejected() -> dict[str, Any] | None:
            c = await programmed()
            return c if c and c["status"] == "False" else None

        cond = await eventually(rejected, what="Programmed False after the NACK")
        assert cond["reason"] == "Invalid" and "listener bind failed" in cond["message"]

        def warning_event() -> bool:
            return ("Rejected", "gw") in _events(controlplane, namespace, type_="Warning")

        await eventually(warning_event, what="Rejected event")
        assert operator.can_write()


def _events(cp: ControlPlane, namespace: str, type_: str = "") -> set[tuple[str, str]]:
    out = json.loads(cp.kubectl("get", "events.events.k8s.io", "-n", namespace, "-o", "json"))
    return {
        (e.get("reason", ""), (e.get("regarding") or {}).get("name", ""))
        for e in out["items"]
        if not type_ or e.get("type") == type_
    }


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
