"""`propylon agent`: one per node. Watches the API server itself, builds and translates
with the same core as `run` and the operator, programs the node's Envoy over xDS, puts
the Gateway addresses on the node, and reports what Envoy accepted (its node Lease,
see `propylon.kube.nodereport`), from which the operator sets `Programmed`.

Why agents watch the API server rather than take xDS from the operator: see
docs/architecture.md ("Kubernetes mode").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from propylon import gatewayapi
from propylon.clock import format_micro_time, new_uid, timestamp_now, utc_now
from propylon.dataplane import EnvoySupervisor
from propylon.envoy import Translator
from propylon.kube import kinds
from propylon.kube.addresses import NodeAddresses
from propylon.kube.api import ApiError, KubeApi
from propylon.kube.health import HealthServer
from propylon.kube.healthcheck import HealthCheckPorts, gateway_node_ports, health_checks
from propylon.kube.nodereport import REPORT_LABEL, STATE_ANNOTATION, encode_state, report_name
from propylon.kube.secretview import SecretView
from propylon.kube.source import KubeSource
from propylon.metrics import Metrics, default_metrics
from propylon.policy import PolicyEngine
from propylon.resources.meta import ObjectKey
from propylon.runtime.collector import QuietCollector
from propylon.runtime.pipeline import ConditionDiagnostics, Evaluation, evaluate
from propylon.runtime.seams import LbIpamPools
from propylon.runtime.trim import return_freed_memory
from propylon.store import ChangeSet, Store
from propylon.values import Values

log = logging.getLogger("propylon.agent")

REPORT_LEASE_S = 40  # like a kubelet's node Lease
REPORT_RENEW_S = 10.0
ACK_TIMEOUT_S = 60.0
_HEALTH_CHECK_KINDS = ("Service", "EndpointSlice")


@dataclass(frozen=True)
class AgentOptions:
    node_name: str
    namespace: str
    kubeconfig: Path | None = None
    values: Values = field(default_factory=Values)
    state_dir: Path = Path("/var/run/propylon")
    admin_port: int = 9901
    envoy_mode: str = "embedded"
    xds_socket: Path | None = None
    envoy_binary: Path | None = None
    address_device: str = "lo"
    health_address: str | None = None
    metrics_address: str | None = None


class Agent:
    def __init__(
        self,
        options: AgentOptions,
        api: KubeApi | None = None,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self.options = options
        self.metrics = metrics if metrics is not None else default_metrics()
        self._owns_api = api is None
        self.api = api or KubeApi.connect(options.kubeconfig, field_manager="propylon-agent")
        # gatewayAPI.secretsNamespace: Secrets are read from that namespace only (the
        # operator's copies); Gateways' references are resolved through them.
        self.secrets_namespace = options.values.gateway_api.secrets_namespace.name
        host_network = options.values.gateway_api.host_network.enabled
        self._secret_view = SecretView(self.secrets_namespace) if self.secrets_namespace else None
        self.source = KubeSource(
            self.api,
            # hostNetwork: the Nodes (the build gives Gateways the selected nodes' addresses).
            [*kinds.WATCHED, *kinds.POLICY, *([kinds.NODE] if host_network else [])],
            namespaces={"Secret": self.secrets_namespace} if self.secrets_namespace else None,
            metrics=self.metrics,
        )
        self.store = Store(now=timestamp_now, new_uid=new_uid)  # files only: API metadata is real
        self.builder = gatewayapi.Builder()
        self.policy = PolicyEngine()  # network policy's world between builds
        self.translator = Translator()
        self.conditions = ConditionDiagnostics()
        self.allocator = LbIpamPools()
        self.collector = QuietCollector()
        self.addresses = NodeAddresses(options.address_device, options.state_dir / "addresses.json")
        self.evaluation: Evaluation | None = None
        self._previous: dict[ObjectKey, str] = {}
        self._addresses: frozenset[str] | None = None
        self.xds_version = 0
        self._xds: Any = None
        self._envoy: EnvoySupervisor | None = None
        self._acked: dict[ObjectKey, int] = {}
        self._nack: tuple[str, dict[ObjectKey, int]] | None = None
        self._acked_version = 0
        self._report_dirty = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.ready = asyncio.Event()
        # healthCheckNodePorts of Local LoadBalancer Services, answered on this node.
        self.health_checks = HealthCheckPorts(self.envoy_serves)
        self._health_checks_known = False
        self._node_ports: tuple[tuple[str, int], ...] = ()

    async def serve(self, *, handle_signals: bool = True) -> None:
        from propylon.xds import AdsServer  # grpc is heavy; only when serving

        opts = self.options
        loop = asyncio.get_running_loop()
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, self._stop.set)
        opts.state_dir.mkdir(parents=True, exist_ok=True)
        health = None
        if opts.health_address:
            health = HealthServer(opts.health_address, ready=self.ready.is_set)
            log.info("health on http://%s/healthz", await health.start())
        self._xds = AdsServer(metrics=self.metrics, after_large_push=return_freed_memory)
        socket = opts.xds_socket or opts.state_dir / "xds.sock"
        with contextlib.suppress(FileNotFoundError):
            socket.unlink()
        xds_address = await self._xds.start(f"unix:{socket}")
        try:
            if opts.envoy_mode == "embedded":
                self._envoy = EnvoySupervisor(
                    binary=opts.envoy_binary,
                    xds_address=xds_address,
                    admin_address=f"127.0.0.1:{opts.admin_port}",
                    node_id=opts.node_name,
                    workdir=opts.state_dir / "envoy",
                    # Access logs on the agent's stdout: `kubectl logs` of the agent pod,
                    # as of the Envoy DaemonSet's pod when Envoy runs on its own.
                    stdout_inherited=True,
                )
                await self._envoy.start()
                log.info(
                    "envoy pid %s, admin http://%s/", self._envoy.pid, self._envoy.admin_address
                )
            else:
                log.info("waiting for Envoy on %s", xds_address)
            self.source.start()
            self.collector.start()
            reporter = asyncio.create_task(self._report_loop(), name="node report")
            reconcile = asyncio.create_task(self._reconcile_loop(), name="reconcile")
            stop = asyncio.create_task(self._stop.wait())
            await asyncio.wait([stop, reporter, reconcile], return_when=asyncio.FIRST_COMPLETED)
            for task in (reporter, reconcile, stop, *self._tasks):
                task.cancel()
            for task in (reporter, reconcile):
                if task.done() and not task.cancelled() and task.exception() is not None:
                    log.error("%s failed: %r", task.get_name(), task.exception())
        finally:
            self.collector.stop()
            await self.source.stop()
            if self._envoy is not None:
                await self._envoy.stop()
            await self._xds.stop()
            if health is not None:
                await health.stop()
            await self.health_checks.stop()
            if self._owns_api:
                await self.api.close()

    def stop(self) -> None:
        self._stop.set()

    # --- reconcile -------------------------------------------------------------------

    async def _reconcile_loop(self) -> None:
        async for changeset in self.source.changes():
            await self.reconcile(self._through_secret_copies(changeset))

    def _through_secret_copies(self, changeset: ChangeSet) -> ChangeSet:
        """The Gateways' Secrets where they said, read from their copies."""
        return self._secret_view(changeset) if self._secret_view is not None else changeset

    async def reconcile(self, changeset: ChangeSet) -> None:
        started = time.perf_counter()
        snapshot = self.store.apply(changeset)
        if not self._health_checks_known or any(
            key.kind in _HEALTH_CHECK_KINDS for key in snapshot.changed
        ):
            objects = [o.resource for k, o in snapshot.items() if k.kind in _HEALTH_CHECK_KINDS]
            await self.health_checks.update(health_checks(objects, self.options.node_name))
            self._health_checks_known = True
            if not self.options.values.gateway_api.host_network.enabled:
                self._node_ports = gateway_node_ports(objects)
        gateway_statuses = self.source.statuses("Gateway")
        previous = self.allocator.previous(gateway_statuses)
        if self.evaluation is not None and not snapshot.changed and previous == self._previous:
            return  # only statuses changed (the operator's writes): nothing to serve anew
        self._previous = previous
        evaluation = evaluate(
            snapshot,
            changeset,
            self.options.values,
            previous=previous,
            default_pool=self.allocator.default_pool,
            translator=self.translator,
            builder=self.builder,
            policy_engine=self.policy,
            conditions=self.conditions,
            node_ports=self._node_ports,
            # The operator assigns LoadBalancer addresses; this node serves the ones it
            # wrote (Gateway status), never one of its own choosing.
            assign_addresses=False,
            kubernetes=True,
        )
        # The previous evaluation is released only after the push below (see there).
        retired, self.evaluation = self.evaluation, evaluation
        # Addresses first: Envoy binds its listeners to them.
        addresses = frozenset(evaluation.result.addresses.values())
        if self.options.values.gateway_api.host_network.enabled:
            addresses = frozenset()  # the nodes' own: nothing to add to a device
        if addresses != self._addresses:
            await self.addresses.ensure(addresses)
            self._addresses = addresses
        version: int = self._xds.update(evaluation.resources)
        self.xds_version = version
        # Freeing the previous evaluation (thousands of entries: a profiled line of its
        # own) waits until the xDS writer, woken by the update, has sent this one.
        asyncio.get_running_loop().call_soon(_release, retired)
        served = {
            key: snapshot[key].resource.metadata.generation
            for key in evaluation.result.addresses
            if key in snapshot
        }
        self.metrics.reconciled(
            time.perf_counter() - started, (key.kind for key in snapshot.changed)
        )
        log.debug(
            "reconcile: %d changed, xDS version %d pushed after %.1f ms",
            len(snapshot.changed),
            version,
            (time.perf_counter() - started) * 1000,
        )
        task = asyncio.create_task(self._await_ack(version, served))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.ready.set()
        self.collector.after_reconcile()

    def envoy_serves(self, gateway: ObjectKey) -> bool:
        """True while this node's Envoy is connected and has accepted a configuration that
        holds `gateway` (what its healthCheckNodePort answers). A restarted Envoy counts
        once it has acknowledged the current configuration."""
        if self._xds is None or self._acked_version == 0 or gateway not in self._acked:
            return False
        return any(v >= self._acked_version for v in self._xds.nodes().values())

    async def _await_ack(self, version: int, served: Mapping[ObjectKey, int]) -> None:
        from propylon.xds import XdsNackError

        try:
            await self._xds.wait_acked(version, timeout=ACK_TIMEOUT_S)
        except XdsNackError as exc:
            if version >= self._acked_version:
                log.error("Envoy rejected configuration %d: %s", version, exc)
                self._nack = (str(exc), dict(served))
                self._report_dirty.set()
            return
        except TimeoutError:
            return
        if version > self._acked_version:
            self._acked_version = version
            changed = self._acked != served or self._nack is not None
            self._acked, self._nack = dict(served), None
            if changed:
                self._report_dirty.set()

    # --- the node report ---------------------------------------------------------------

    async def _report_loop(self) -> None:
        while True:
            try:
                await self._write_report()
            except (ApiError, httpx2.HTTPError, OSError) as exc:
                log.warning("node report: %s", exc)
            self._report_dirty.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REPORT_RENEW_S):
                    await self._report_dirty.wait()

    async def _write_report(self) -> None:
        opts = self.options
        name = report_name(opts.node_name)
        now = format_micro_time(utc_now())
        state = encode_state(self._acked, self._nack)
        lease = await self.api.get(kinds.LEASE, name, opts.namespace)
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": name,
                    "namespace": opts.namespace,
                    "labels": {REPORT_LABEL: "true"},
                    "annotations": {STATE_ANNOTATION: state},
                },
                "spec": {
                    "holderIdentity": opts.node_name,
                    "leaseDurationSeconds": REPORT_LEASE_S,
                    "renewTime": now,
                },
            }
            await self.api.create(kinds.LEASE, body, opts.namespace)
            return
        await self.api.patch(
            kinds.LEASE,
            name,
            {
                "metadata": {"annotations": {STATE_ANNOTATION: state}},
                "spec": {
                    "holderIdentity": opts.node_name,
                    "renewTime": now,
                    "leaseDurationSeconds": REPORT_LEASE_S,
                },
            },
            namespace=opts.namespace,
        )


def _release(_evaluation: Evaluation | None) -> None:
    """A callback whose only work is to drop its argument when it has run."""


async def serve(options: AgentOptions, *, metrics: Metrics | None = None) -> int:
    await Agent(options, metrics=metrics).serve()
    return 0
