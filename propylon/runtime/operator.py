"""`propylon operator`: the cluster's Gateway API controller.

Kubernetes list+watch -> store -> gatewayapi (the same pure core as `propylon run`) ->
statuses through the status subresource, generated Services/EndpointSlices with their
LB-IPAM addresses, the `cilium` GatewayClass, Events. Only the Lease holder builds and
writes. A standby keeps its watch caches and store current but does not build: on a
2-core node its build of every change (6-8 ms of CPU each at 3000 routes) competed with
the agent and Envoy for the cores while a route went live. On taking over it builds once
from its store (a second or two at thousands of routes, well inside the lease duration
the old leader's fence already waited) and writes only what differs from what the old
leader left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from propylon import gatewayapi
from propylon.clock import new_uid, timestamp_now
from propylon.gatewayapi import conditions as c
from propylon.gatewayapi.classconfig import refused_configs
from propylon.gatewayapi.gateway import OWNING_GATEWAY_LABEL
from propylon.kube import kinds
from propylon.kube.api import ApiError, KubeApi, pod_identity
from propylon.kube.events import EventRecorder
from propylon.kube.generated import GeneratedObjects
from propylon.kube.health import HealthServer
from propylon.kube.leader import LeaderElector, LeaseConfig
from propylon.kube.nodereport import NodeReports
from propylon.kube.secretcopies import SecretCopies
from propylon.kube.secretsync import wanted_copies
from propylon.kube.source import KubeSource
from propylon.kube.status import WRITE_TIMEOUT_S, StatusSink
from propylon.metrics import Metrics, default_metrics
from propylon.resources.meta import ObjectKey
from propylon.runtime.collector import QuietCollector
from propylon.runtime.seams import LbIpamPools
from propylon.state import merge_conditions
from propylon.store import ChangeSet, Snapshot, Store
from propylon.values import CILIUM_CONTROLLER_NAME, Values

log = logging.getLogger("propylon.operator")

GATEWAY_CLASS_NAME = "cilium"
_SECRET_SYNC_INPUTS = frozenset(
    {"Gateway", "ListenerSet", "XListenerSet", "Secret", "ReferenceGrant"}
)
REPORT_CHECK_S = 5.0
# After the first event of a burst (see `Operator._settle`): past the agents' build and
# Envoy's update of the same change (a few ms, bench/kube_propagation.py).
LEADER_SETTLE_S = 0.02
STANDBY_SETTLE_S = 0.1


@dataclass(frozen=True)
class OperatorOptions:
    namespace: str
    kubeconfig: Path | None = None
    values: Values = field(default_factory=Values)
    leader_elect: bool = True
    lease: LeaseConfig | None = None
    health_address: str | None = None
    metrics_address: str | None = None
    # Gateways are Programmed only once an agent's Envoy accepted them (off: as soon
    # as the core says so, e.g. with no agent running).
    require_agent_ack: bool = True


class Operator:
    def __init__(
        self,
        options: OperatorOptions,
        api: KubeApi | None = None,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self.options = options
        self.metrics = metrics if metrics is not None else default_metrics()
        self.identity = options.lease.identity if options.lease else pod_identity()
        self._owns_api = api is None
        self.api = api or KubeApi.connect(options.kubeconfig, field_manager="propylon-operator")
        self.source = KubeSource(
            self.api,
            # The Nodes, whose addresses hostNetwork and NodePort Gateways get.
            [*kinds.WATCHED, kinds.NODE_REPORT, kinds.NODE],
            metrics=self.metrics,
        )
        self.store = Store(now=timestamp_now, new_uid=new_uid)  # files only: API metadata is real
        self.builder = gatewayapi.Builder()
        self.allocator = LbIpamPools()
        self.collector = QuietCollector()
        self.elector: LeaderElector | None = None
        if options.leader_elect:
            lease = options.lease or LeaseConfig(options.namespace, identity=self.identity)
            self.elector = LeaderElector(self.api, lease, on_change=self._leader_changed)
        fence = self.can_write
        self.statuses = StatusSink(
            self.api,
            self.source.raw,
            controller=CILIUM_CONTROLLER_NAME,
            merge_conditions=merge_conditions,
            can_write=fence,
            write_budget=self.write_budget,
            metrics=self.metrics,
        )
        self.generated = GeneratedObjects(
            self.api,
            self.source.raw,
            self._owned_services,
            can_write=fence,
            write_budget=self.write_budget,
            on_address=self._address_assigned,
            on_refused=self._service_refused,
        )
        secrets = options.values.gateway_api.secrets_namespace
        # gatewayAPI.secretsNamespace.sync: the referenced TLS Secrets copied for the agents.
        self.secret_copies = (
            SecretCopies(
                self.api,
                self.source.raw,
                lambda: self.source.uids("Secret"),
                secrets.name,
                can_write=fence,
            )
            if secrets.sync and secrets.name
            else None
        )
        self._wanted_copies: dict[str, Any] | None = None
        self.events = EventRecorder(self.api, instance=self.identity)
        self.reports = NodeReports(options.namespace)
        self.source.on_raw = self._on_raw
        self.result: gatewayapi.BuildResult | None = None
        self._previous: dict[ObjectKey, str] = {}
        self.reconciles = 0
        self._last_statuses: Mapping[ObjectKey, Mapping[str, Any]] | None = None
        self._reported: set[str] = set()
        self._nacks: dict[ObjectKey, str] = {}
        # CiliumGatewayClassConfigs the source refused (their status says why), and the
        # set the last build saw.
        self._refused: dict[ObjectKey, tuple[int, str]] = {}
        # Gateways whose generated Service the API server refused, with its message.
        self._service_refusals: dict[ObjectKey, str] = {}
        self.result_refused: dict[ObjectKey, tuple[int, str]] = self._refused
        self._stop = asyncio.Event()
        self._secret_tasks: set[asyncio.Task[None]] = set()
        # A standby's store has changes no build has seen: the next build diffs it all.
        self._unbuilt = False

    # --- the fence -------------------------------------------------------------------

    def can_write(self) -> bool:
        return self.elector is None or self.elector.can_write()

    def write_budget(self) -> float:
        """How long a write may still take: until the fence closes (leader election)."""
        return self.elector.remaining() if self.elector is not None else WRITE_TIMEOUT_S

    # --- lifecycle -------------------------------------------------------------------

    async def serve(self, *, handle_signals: bool = True) -> None:
        loop = asyncio.get_running_loop()
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, self._stop.set)
        health = None
        if self.options.health_address:
            health = HealthServer(self.options.health_address, ready=self.source.synced.is_set)
            log.info("health on http://%s/healthz", await health.start())
        self.source.start()
        self.collector.start()
        tasks = [
            asyncio.create_task(self.statuses.run(), name="status writer"),
            asyncio.create_task(self.generated.run(), name="generated objects"),
            asyncio.create_task(self._reconcile_loop(), name="reconcile"),
            asyncio.create_task(self._expire_reports(), name="node report expiry"),
        ]
        if self.elector is not None:
            tasks.append(asyncio.create_task(self.elector.run(), name="leader election"))
        else:
            await self._leader_changed(True)
        try:
            stop = asyncio.create_task(self._stop.wait())
            await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            # Leader election last: the Lease is released once nothing else writes.
            for task in tasks[:4]:
                task.cancel()
            for task in tasks[:4]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self.source.stop()
            for task in tasks[4:]:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self.collector.stop()
            if health is not None:
                await health.stop()
            if self._owns_api:
                await self.api.close()

    def stop(self) -> None:
        self._stop.set()

    async def _reconcile_loop(self) -> None:
        async for changeset in self.source.changes(settle=self._settle):
            self.reconcile(changeset)

    def _settle(self) -> float:
        """How long a burst of changes gathers before this replica takes it in. Nothing
        the operator does is on the path from a change to Envoy (the agents build for
        themselves), while its build lands on the same cores as theirs when it follows
        the watch event at once: so the leader builds a little later (its statuses are
        written SETTLE_S after that), and a standby, which only keeps its store
        current, later still."""
        return LEADER_SETTLE_S if self.building() else STANDBY_SETTLE_S

    async def _expire_reports(self) -> None:
        """An agent that dies stops renewing its report; nothing is written then, so
        look again now and then (Programmed falls back to what the live agents say)."""
        while True:
            await asyncio.sleep(REPORT_CHECK_S)
            if self.result is not None and self.reports.expire():
                statuses, gated = self._gate_programmed(self.result.statuses)
                self.statuses.update(statuses, gated)

    # --- reconcile -------------------------------------------------------------------

    def building(self) -> bool:
        """Whether this replica builds: the leader, or the only one."""
        return self.elector is None or self.elector.leading

    def reconcile(self, changeset: ChangeSet) -> None:
        snapshot = self.store.apply(changeset)
        refused = refused_configs(
            changeset.diagnostics, lambda key: snapshot.get(key) is not None, self._generation
        )
        refused_changed = refused != self._refused
        if refused_changed:
            self._refused = refused
        if not self.building():
            self._unbuilt = (
                self._unbuilt or refused_changed or bool(snapshot.changed) or self.result is None
            )
            return
        self._build(snapshot, changeset.diagnostics)

    def _build(self, snapshot: Snapshot, diagnostics: Iterable[object] = ()) -> None:
        started = time.perf_counter()
        objects = snapshot.resources()
        gateway_statuses = self.source.statuses("Gateway")
        previous = self.allocator.previous(gateway_statuses)
        unbuilt, self._unbuilt = self._unbuilt, False
        if unbuilt:
            self._wanted_copies = None  # recompute the Secret copies from everything
        if (
            self.result is not None
            and not unbuilt
            and not snapshot.changed
            and previous == self._previous
            and self._refused is self.result_refused
        ):
            return  # only statuses changed (ours, mostly): the build would be the same
        self._previous = previous
        inputs = gatewayapi.Inputs(
            objects=objects,
            values=self.options.values,
            previous_addresses=previous,
            default_pool=self.allocator.default_pool,
            refused_class_configs=self._refused,
            kubernetes=True,
        )
        self.result_refused = self._refused
        # After standing by: whatever changed since the last build, found by diffing.
        result = self.builder.build(inputs, None if unbuilt else snapshot.changed)
        self.result = result
        changed = result.changed if result.since is self._last_statuses else None
        self._last_statuses = result.statuses
        statuses, gated = self._gate_programmed(result.statuses)
        self.statuses.update(statuses, None if changed is None else {*changed, *gated})
        uids = self.source.uids("Gateway")
        self.generated.update(result.services, uids)
        self._sync_secrets(objects, snapshot.changed)
        self._report(result.diagnostics, diagnostics)
        self.reconciles += 1
        self.metrics.reconciled(
            time.perf_counter() - started, (key.kind for key in snapshot.changed)
        )
        self.collector.after_reconcile()
        if self.can_write():
            self._ensure_gateway_class()

    def _service_refused(self, gateway: ObjectKey, message: str | None) -> None:
        if message is None:
            self._service_refusals.pop(gateway, None)
        else:
            log.warning("%s: the API server refused its Service: %s", gateway, message)
            self._service_refusals[gateway] = message
        if self.result is not None:
            statuses, gated = self._gate_programmed(self.result.statuses)
            self.statuses.update(statuses, {*gated, gateway})

    def _generation(self, key: ObjectKey) -> int:
        return int(((self.source.raw(key) or {}).get("metadata") or {}).get("generation") or 1)

    def _sync_secrets(self, objects: Mapping[ObjectKey, Any], changed: Iterable[ObjectKey]) -> None:
        """Copies follow the Gateways' references, the Secrets and the ReferenceGrants
        (and the copies themselves, so one removed by hand comes back)."""
        if self.secret_copies is None:
            return
        if self._wanted_copies is not None and not any(
            k.kind in _SECRET_SYNC_INPUTS for k in changed
        ):
            return
        self._wanted_copies = wanted_copies(objects, self.secret_copies.namespace)
        self._spawn(self.secret_copies.update(self._wanted_copies))

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._secret_tasks.add(task)
        task.add_done_callback(self._secret_tasks.discard)

    def _gate_programmed(
        self, statuses: Mapping[ObjectKey, Mapping[str, Any]]
    ) -> tuple[Mapping[ObjectKey, Mapping[str, Any]], set[ObjectKey]]:
        """Programmed=True on a Gateway only once an agent's Envoy accepted its listeners
        (the agents' reports); a NACK makes it False with Envoy's message, and so does the
        API server's refusal of its generated Service."""
        if not self.options.require_agent_ack and not self._service_refusals:
            return statuses, set()
        out = dict(statuses)
        gated: set[ObjectKey] = set()
        held: dict[ObjectKey, tuple[str, str]] = {}
        for key in self.source.uids("Gateway") if self.options.require_agent_ack else ():
            status = statuses.get(key)  # O(Gateways), not O(statuses)
            if status is None:
                continue
            gated.add(key)
            verdict = self.reports.verdict(key, _generation(status))
            if verdict is None:
                continue  # accepted by every reporting agent
            held[key] = verdict
            reason, message = verdict
            out[key] = _with_programmed(status, reason, message)
        for key, refusal in self._service_refusals.items():
            status = statuses.get(key)
            if status is None:
                continue
            gated.add(key)
            held[key] = (c.R_INVALID, f"the API server refused the generated Service: {refusal}")
            out[key] = _with_programmed(status, *held[key])
        # A ListenerSet's listeners are its Gateway's: programmed when the Gateway is.
        for kind in (kinds.LISTENER_SET.kind, kinds.X_LISTENER_SET.kind):
            for key in self.source.uids(kind):
                status = statuses.get(key)
                parent = _parent_gateway(key, self.source.raw(key))
                if status is None or parent is None:
                    continue
                gated.add(key)
                if parent in held:
                    out[key] = _with_programmed(status, *held[parent])
        return out, gated

    def _report(self, built: Iterable[gatewayapi.Diagnostic], parsed: Iterable[object]) -> None:
        current = {str(d) for d in built} | {str(d) for d in parsed}
        for text in sorted(current - self._reported):
            log.warning("%s", text)
        self._reported = current

    # --- events from the API server ---------------------------------------------------

    def _on_raw(self, key: ObjectKey) -> None:
        if key.kind in kinds.WITH_STATUS:
            self.statuses.object_changed(key)
        elif key.kind in ("Service", "EndpointSlice"):
            self.generated.object_changed(ObjectKey("Service", key.namespace, key.name))
        elif key.kind == kinds.NODE_REPORT.kind and self.reports.accept(key, self.source.raw(key)):
            self._announce_nacks()
            if self.result is not None:
                statuses, gated = self._gate_programmed(self.result.statuses)
                self.statuses.update(statuses, gated)

    def _owned_services(self) -> list[ObjectKey]:
        reflector = self.source.reflectors.get("Service")
        if reflector is None:
            return []
        return [
            ObjectKey("Service", ns, name)
            for (ns, name), obj in reflector.objects.items()
            if OWNING_GATEWAY_LABEL in ((obj.get("metadata") or {}).get("labels") or {})
        ]

    # --- leadership ------------------------------------------------------------------

    async def _leader_changed(self, leader: bool) -> None:
        self.metrics.set_leader(leader)
        if leader:
            if self._unbuilt or self.result is None:
                self._build(self.store.snapshot())
            self.statuses.resync()
            self.generated.resync()
            if self.secret_copies is not None and self._wanted_copies is not None:
                self._spawn(self.secret_copies.update(self._wanted_copies))
            self._ensure_gateway_class()
            lease_ref = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "name": self.elector.config.name if self.elector else "propylon-operator",
                "namespace": self.options.namespace,
            }
            self.events.emit(
                lease_ref, "LeaderElection", f"{self.identity} became leader", action="Lead"
            )
            for key in self._gateways():
                raw = self.source.raw(key)
                if raw is not None:
                    self.events.emit(
                        raw,
                        "LeaderElection",
                        f"{self.identity} now writes this Gateway's status",
                        action="Lead",
                    )

    def _gateways(self) -> list[ObjectKey]:
        if self.result is None:
            return []
        return [k for k in self.result.addresses if k.kind == "Gateway"]

    def _address_assigned(self, gateway: ObjectKey, addresses: tuple[str, ...]) -> None:
        raw = self.source.raw(gateway)
        if raw is not None:
            self.events.emit(
                raw,
                "AddressAssigned",
                f"LB-IPAM assigned {', '.join(addresses)}",
                action="AssignAddress",
            )

    def _announce_nacks(self) -> None:
        fresh = self.reports.nacks()
        for key, message in fresh.items():
            if self._nacks.get(key) != message and self.can_write():
                raw = self.source.raw(key)
                if raw is not None:
                    self.events.emit(raw, "Rejected", message, type_="Warning", action="Program")
        self._nacks = fresh

    def _ensure_gateway_class(self) -> None:
        create = self.options.values.gateway_api.gateway_class.create
        wanted = create in (True, "true") or (
            create == "auto" and self.source.installed("GatewayClass")
        )
        if not wanted or not self.source.synced.is_set():
            return
        if self.source.raw(ObjectKey("GatewayClass", "", GATEWAY_CLASS_NAME)) is not None:
            return
        asyncio.get_running_loop().create_task(self._create_gateway_class())

    async def _create_gateway_class(self) -> None:
        body = {
            "apiVersion": f"{kinds.GW}/v1",
            "kind": "GatewayClass",
            "metadata": {"name": GATEWAY_CLASS_NAME},
            "spec": {"controllerName": CILIUM_CONTROLLER_NAME},
        }
        try:
            await self.api.create(kinds.GATEWAY_CLASS, body)
            log.info("created GatewayClass %s", GATEWAY_CLASS_NAME)
        except ApiError as exc:
            if exc.code != 409:
                log.warning("GatewayClass %s: %s", GATEWAY_CLASS_NAME, exc)


def _generation(status: Mapping[str, Any]) -> int:
    for cond in status.get("conditions") or ():
        if isinstance(cond, Mapping) and cond.get("type") == c.PROGRAMMED:
            return int(cond.get("observedGeneration") or 0)
    return 0


def _parent_gateway(key: ObjectKey, raw: Mapping[str, Any] | None) -> ObjectKey | None:
    """The Gateway a ListenerSet object (as the API server has it) names."""
    ref = ((raw or {}).get("spec") or {}).get("parentRef") or {}
    name = ref.get("name")
    if not isinstance(name, str):
        return None
    return ObjectKey("Gateway", str(ref.get("namespace") or key.namespace), name)


def _with_programmed(status: Mapping[str, Any], reason: str, message: str) -> dict[str, Any]:
    out = dict(status)
    conds = []
    for cond in status.get("conditions") or ():
        if (
            isinstance(cond, Mapping)
            and cond.get("type") == c.PROGRAMMED
            and cond.get("status") == "True"
        ):
            cond = {**cond, "status": "False", "reason": reason, "message": message}
        conds.append(cond)
    out["conditions"] = conds
    return out


async def serve(options: OperatorOptions, *, metrics: Metrics | None = None) -> int:
    await Operator(options, metrics=metrics).serve()
    return 0
