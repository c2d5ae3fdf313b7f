"""The running standalone instance: files -> store -> Gateway API -> xDS -> Envoy.

One reconcile per change set from the file watcher. Each reconcile is the pure pipeline
(`propylon.runtime.pipeline.evaluate`) followed by the shell's side effects: push xDS,
stamp condition transition times, persist state, report new problems.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

from immutables import Map

from propylon import gatewayapi
from propylon.clock import new_uid, timestamp_now, utc_now
from propylon.dataplane import EnvoyError, EnvoySupervisor
from propylon.envoy import Translator, XdsResources
from propylon.metrics import Metrics, MetricsServer, default_metrics, serve_metrics
from propylon.persistent import PersistentMap
from propylon.policy import PolicyEngine
from propylon.resources.meta import ObjectKey
from propylon.runtime import isolation
from propylon.runtime.collector import QuietCollector
from propylon.runtime.options import RunError, RunOptions
from propylon.runtime.pipeline import (
    ConditionDiagnostics,
    Evaluation,
    evaluate,
    proxy_options,
)
from propylon.runtime.seams import StandalonePool, WatchedFiles
from propylon.runtime.trim import return_freed_memory
from propylon.runtime.worker import Stopping, Worker
from propylon.sources.files import FileSource
from propylon.state import ApiServer, StateDir, merge_statuses, to_document
from propylon.state.api import InstanceRunningError, ObjectQuery
from propylon.store import ChangeSet, Diagnostic, Store

log = logging.getLogger("propylon")

# State files (statuses, generations) are written this long after the last reconcile,
# off the path to Envoy; a burst of changes writes them once. Shutdown flushes them.
STATE_SAVE_DELAY_S = 0.5
STATE_SAVE_MIN_INTERVAL_S = 5.0
# ... and, when a save costs more than a twentieth of that, this many times what the
# last one cost (at 50 000 routes a save is ~1 s of CPU: one per 20 s under churn).
STATE_SAVE_COST_FACTOR = 20
# A save first hashes the objects stored since start-up without hashes, this many per
# turn on the worker (~2 ms), so a reconcile waits at most one turn.
STATE_HASH_STEP = 250
# While a background save runs, a thread waiting for the interpreter gets it after this
# long (CPython's default is 5 ms): the loop's reads and pushes wait less for the save.
SAVE_SWITCH_INTERVAL_S = 0.001
ENVOY_STOP_GRACE_S = 1.0
ANY_OBJECT = ObjectQuery()


class Instance:
    """Owns the store, the xDS server, Envoy and the local API of one state directory."""

    def __init__(self, options: RunOptions, metrics: Metrics | None = None) -> None:
        self.options = options
        self.metrics = metrics if metrics is not None else default_metrics()
        self._metrics_server: MetricsServer | None = None
        self.state = StateDir(options.state_dir)
        self.store = Store(now=timestamp_now, new_uid=new_uid)
        # Merged statuses: a persistent map once merged (patched per change, not copied).
        self.statuses: Mapping[ObjectKey, dict[str, Any]] = {}
        self.evaluation: Evaluation | None = None
        self.diagnostics: tuple[Diagnostic, ...] = ()
        self.xds_version = 0
        self.ready = asyncio.Event()
        self._reported: set[str] = set()
        self._xds: Any = None
        self._envoy: EnvoySupervisor | None = None
        self._api: ApiServer | None = None
        # The seams (propylon/runtime/seams.py): the standalone pool; files in.
        self._allocator = StandalonePool(options.default_pool)
        self._source = FileSource(options.paths, crds=options.crds)
        # NACK isolation (runtime.isolation): objects withheld from Envoy -> (the
        # resource that was rejected, Envoy's message); released when they change.
        self._withheld: dict[ObjectKey, tuple[object, str]] = {}
        self._withheld_changed: set[ObjectKey] = set()
        self._pushed: dict[int, Evaluation] = {}  # the last few versions sent
        self._last_changeset: ChangeSet | None = None
        self._isolator: asyncio.Task[None] | None = None
        self._lag_probe: asyncio.Task[None] | None = None
        self._unexplained: str | None = None  # a rejection no object could be blamed for
        self._translator = Translator()  # keeps serialized fragments between reconciles
        self._builder = gatewayapi.Builder()  # keeps per-route results between reconciles
        self._policy = PolicyEngine()  # network policy's world between reconciles
        self._conditions = ConditionDiagnostics()
        self._stop = asyncio.Event()
        self._worker = Worker()
        # The files are read on the worker too (in turn with reconciles): a load of
        # thousands of files takes seconds the loop must spend serving.
        self._files = WatchedFiles(
            options.paths,
            stop_event=self._stop,
            source=self._source,
            offload=self._read,
        )
        self._built: Mapping[ObjectKey, Mapping[str, Any]] = {}  # last build's statuses
        # The build `statuses` was last merged from, and its Gateways' keys.
        self._merged_from: Mapping[ObjectKey, Mapping[str, Any]] | None = None
        self._gateways: set[ObjectKey] = set()
        self._save_handle: asyncio.TimerHandle | None = None
        self._saved_at = -STATE_SAVE_MIN_INTERVAL_S  # loop time of the last write
        self._unsaved = False  # a reconcile since the state was last written
        # Background saves write the files on a thread of their own; the lock keeps a
        # final flush from writing beside one.
        self._save_lock = threading.Lock()
        self._saving: asyncio.Future[None] | None = None
        self._save_cost = 0.0  # seconds the last background save took
        self._collector = QuietCollector(busy=lambda: self._worker.busy)

    # --- lifecycle ------------------------------------------------------------------

    async def serve(self) -> None:
        """Run until `stop()` or SIGINT/SIGTERM."""
        from propylon.xds import AdsServer  # grpc is heavy; import it only when serving

        log.debug("starting (imports done)")

        # First: a metrics address that cannot be used stops the start before anything
        # else was set up (nothing to undo).
        if self.options.metrics_address is not None:
            self._metrics_server = serve_metrics(self.options.metrics_address)
            log.info("metrics on http://%s/metrics", self._metrics_server.address)
        self.metrics.set_leader(True)  # one process, no election: it always leads
        try:
            self.state.ensure()
        except OSError as exc:
            what = "is not a directory" if self.state.path.exists() else exc.strerror
            raise RunError(f"--state-dir {self.state.path}: {what}") from None
        self.store.import_records(self.state.load_metadata())
        self.statuses = dict(self.state.load_statuses())
        self._api = ApiServer(
            self.state.socket_path,
            objects=self.objects,
            diagnostics=lambda: self.diagnostics,
            health=self.health,
        )
        try:
            await self._api.start()  # refuses to start beside a live instance
        except InstanceRunningError as exc:
            raise RunError(str(exc)) from None
        if self.options.admin_port:
            _check_port_free(self.options.admin_port)
        self.state.write_pid(os.getpid())
        loop = asyncio.get_running_loop()
        self._collector.start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._stop.set)
        xds = AdsServer(metrics=self.metrics, after_large_push=return_freed_memory)
        self._xds = xds
        try:
            xds_address = await xds.start(f"unix:{self.state.path / 'xds.sock'}")
            admin_port = self.options.admin_port or 0
            try:
                self._envoy = EnvoySupervisor(
                    binary=self.options.envoy_binary,
                    xds_address=xds_address,
                    admin_address=f"127.0.0.1:{admin_port}",
                    node_id=self.options.node_id,
                    workdir=self.state.path / "envoy",
                )
                await self._envoy.start()
            except EnvoyError as exc:
                raise RunError(_one_line(str(exc))) from None
            log.info("envoy pid %s, admin http://%s/", self._envoy.pid, self._envoy.admin_address)
            self._isolator = asyncio.create_task(self._isolate_rejections())
            if log.isEnabledFor(logging.DEBUG):
                self._lag_probe = asyncio.create_task(_report_loop_lag())
            async for changeset in self._files.changes():
                await self.reconcile(changeset)
                if self._stop.is_set():
                    break
        except Stopping:
            log.info("stopping in the middle of reading or building; that work is dropped")
        finally:
            await self._shutdown()

    def stop(self) -> None:
        self._stop.set()

    async def _read(self, read: Callable[[], ChangeSet]) -> ChangeSet:
        """The file source's reading, on the worker (raises `Stopping` on a stop)."""
        began = time.perf_counter()
        changeset = await self._worker.run(read, self._stop)
        log.debug(
            "read files: %d objects in %.3f s", len(changeset.objects), time.perf_counter() - began
        )
        return changeset

    async def _shutdown(self) -> None:
        if self._lag_probe is not None:
            self._lag_probe.cancel()
        if self._isolator is not None:
            self._isolator.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._isolator
        terminated = time.monotonic()
        if self._envoy is not None:
            self._envoy.terminate()  # Envoy exits while the state is written
        if not self._worker.busy:  # else the store is half-updated: keep the last save
            self.flush_state()
        self._worker.close()
        self._collector.stop()
        if self._envoy is not None:
            # Envoy holds no state of its own (it is programmed over xDS): after SIGTERM
            # it gets a second to exit before SIGKILL, not the many seconds it can take
            # to free the configuration of tens of thousands of routes. The second counts
            # from the SIGTERM above: the state save (~1 s at 50 000 routes) was part of it.
            left = ENVOY_STOP_GRACE_S - (time.monotonic() - terminated)
            await self._envoy.stop(timeout=max(0.0, left))
        if self._xds is not None:
            await self._xds.stop(grace=0.1)  # Envoy, its only client, is gone
        if self._api is not None:
            await self._api.stop()
        if self._metrics_server is not None:
            self._metrics_server.close()
        self.state.remove_pid()

    # --- reconcile ------------------------------------------------------------------

    async def reconcile(self, changeset: ChangeSet) -> None:
        """Apply, build and translate on the worker thread (seconds for thousands of
        routes: the loop stays free for the xDS stream, the API and signals), then push
        and merge statuses here. Raises `Stopping` if a stop comes first."""
        started = time.perf_counter()
        # NACK isolation's state is the loop's: the worker gets a copy and says which
        # withheld objects changed (they get another chance).
        if self._unexplained is not None and self._xds is not None and not self._xds.rejections():
            self._unexplained = None  # a later version was acknowledged
        withheld = dict(self._withheld)
        entered = frozenset(self._withheld_changed)
        self._withheld_changed.clear()
        evaluation, changed, released = await self._worker.run(
            partial(self._evaluate, changeset, withheld, entered, self._unexplained), self._stop
        )
        for key in released:
            if self._withheld.get(key) is withheld[key]:
                del self._withheld[key]
                log.info("%s changed: no longer withheld from Envoy", key)
        self._last_changeset = changeset
        self.evaluation = evaluation
        self.xds_version = self._push(evaluation.resources)
        log.debug("xDS version %d pushed", self.xds_version)
        self._pushed[self.xds_version] = evaluation
        for old in [v for v in self._pushed if v <= self.xds_version - 4]:
            del self._pushed[old]
        # On the worker too, in turn with other merges (each starts from the statuses the
        # one before left): at start-up every status is new, 0.2 s at 10 000 routes.
        await self._worker.run(
            partial(self._merge_into_statuses, evaluation.result.statuses, changed), self._stop
        )
        self.diagnostics = evaluation.diagnostics
        self._schedule_save()
        self._report(evaluation.diagnostics)
        self.ready.set()
        self.metrics.reconciled(
            time.perf_counter() - started, (key.kind for key in evaluation.snapshot.changed)
        )
        self._collector.after_reconcile()

    def _evaluate(
        self,
        changeset: ChangeSet,
        withheld_now: Mapping[ObjectKey, tuple[object, str]],
        entered: frozenset[ObjectKey],
        unexplained: str | None,
    ) -> tuple[Evaluation, frozenset[ObjectKey] | None, frozenset[ObjectKey]]:
        """The CPU-bound part of a reconcile (on the worker thread): the evaluation, the
        keys whose status may differ from the build merged last (None: unknown), and the
        withheld objects that changed since Envoy rejected them (released)."""
        began = time.perf_counter()
        snapshot = self.store.apply(changeset)
        applied = time.perf_counter()
        released = frozenset(
            key
            for key, (resource, _) in withheld_now.items()
            if (stored := snapshot.get(key)) is None or stored.resource is not resource
        )
        withheld = {k: m for k, (_, m) in withheld_now.items() if k not in released}
        withheld_changed = entered | released

        def evaluate_snapshot() -> Evaluation:
            return evaluate(
                snapshot,
                changeset,
                self.options.values,
                previous=self._allocator.previous(self._gateway_statuses()),
                default_pool=self._allocator.default_pool,
                unbindable=self._allocator.unbindable,
                translator=self._translator,
                builder=self._builder,
                policy_engine=self._policy,
                conditions=self._conditions,
                withheld=withheld,
                withheld_changed=withheld_changed,
                rejected=unexplained,
            )

        evaluation = evaluate_snapshot()
        first = evaluation.result
        # The keys whose status may differ from the build merged last, if known.
        changed = first.changed if first.since is self._built else None
        if self._bind_probe_needed(evaluation):
            # An address this host cannot bind: rebuild so its Gateway is AddressNotUsable
            # instead of Envoy rejecting the listener update for every Gateway.
            evaluation = evaluate_snapshot()
            again = evaluation.result
            if changed is not None and again.changed is not None and again.since is first.statuses:
                changed = changed | again.changed
            else:
                changed = None
        log.debug(
            "evaluated: store %.3f s, build and translate %.3f s",
            applied - began,
            time.perf_counter() - applied,
        )
        return evaluation, changed, released

    def _merge_into_statuses(
        self,
        built: Mapping[ObjectKey, Mapping[str, Any]],
        changed: frozenset[ObjectKey] | None,
    ) -> None:
        self.statuses = self._merge_statuses(built, changed)

    def _merge_statuses(
        self,
        built: Mapping[ObjectKey, Mapping[str, Any]],
        changed: frozenset[ObjectKey] | None = None,
    ) -> Mapping[ObjectKey, Any]:
        """Stamp transition times, only on statuses that differ from the last build's
        (the others keep their merged version as is). `changed`: the keys whose status
        may differ from the last build's (from the Builder; None: look at all)."""
        before, merged = self._built, self.statuses
        self._built = built
        if changed is None or self._merged_from is None:
            fresh_keys = [k for k, v in built.items() if k not in merged or before.get(k) != v]
            fresh = merge_statuses(merged, {k: built[k] for k in fresh_keys}, utc_now())
            whole = {k: fresh[k] if k in fresh else merged[k] for k in built}
            self._gateways = {k for k in whole if k.kind == "Gateway"}
            self._merged_from = built
            return PersistentMap(whole)
        fresh_keys = [
            k for k in changed if k in built and (k not in merged or before.get(k) != built[k])
        ]
        raw = merged.map if isinstance(merged, PersistentMap) else Map(merged)
        with raw.mutate() as out:
            out.update(merge_statuses(merged, {k: built[k] for k in fresh_keys}, utc_now()))
            for key in changed:
                if key not in built:
                    out.pop(key, None)
                    self._gateways.discard(key)
                elif key.kind == "Gateway":
                    self._gateways.add(key)
            done = out.finish()
        self._merged_from = built
        return PersistentMap.of(done)

    def _gateway_statuses(self) -> dict[ObjectKey, Mapping[str, Any]]:
        """The Gateways' statuses (for `previous_addresses`), without a walk of all."""
        if self._merged_from is None:
            return {k: v for k, v in self.statuses.items() if k.kind == "Gateway"}
        return {k: self.statuses[k] for k in self._gateways if k in self.statuses}

    def _schedule_save(self) -> None:
        """Persist statuses and generations soon, not now: the state files are for the
        CLI and restarts, and writing them must not delay the next push to Envoy."""
        self._unsaved = True
        if self._save_handle is not None:
            self._save_handle.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush_state()
            return
        # Under steady churn, at most one write per STATE_SAVE_MIN_INTERVAL_S (a write
        # walks every status and record: tens of milliseconds at thousands of routes).
        interval = max(STATE_SAVE_MIN_INTERVAL_S, STATE_SAVE_COST_FACTOR * self._save_cost)
        wait = interval - (loop.time() - self._saved_at)
        self._save_handle = loop.call_later(max(STATE_SAVE_DELAY_S, wait), self._save_later)

    def _save_later(self) -> None:
        """Save in the background: at 50 000 routes a save took ~1 s of CPU (the first,
        hashing every object) or ~0.7 s (later ones), and a new route that came
        meanwhile waited for it on the worker. Now the worker only hashes in steps and
        copies what the save needs (in turn with reconciles, so the store is whole);
        the encoding and writing run on a thread of their own."""
        self._save_handle = None
        loop = asyncio.get_running_loop()
        self._saved_at = loop.time()
        if self._saving is not None and not self._saving.done():
            self._schedule_save()  # one save at a time: the next one after this
            return
        task = asyncio.ensure_future(self._save_in_background())
        task.add_done_callback(_ignore_stopping)
        self._saving = task

    async def _save_in_background(self) -> None:
        store, stop, loop = self.store, self._stop, asyncio.get_running_loop()
        began, switch = loop.time(), sys.getswitchinterval()
        sys.setswitchinterval(min(switch, SAVE_SWITCH_INTERVAL_S))
        try:
            while await self._worker.run(partial(store.hash_pending, STATE_HASH_STEP), stop):
                pass
            write = await self._worker.run(self._prepare_state, stop)
            if write is not None:
                await loop.run_in_executor(None, write)
        finally:
            sys.setswitchinterval(switch)
            self._save_cost = loop.time() - began

    def _prepare_state(self) -> Callable[[], None] | None:
        """The state save as a function another thread may run (None: nothing to
        write): the statuses (a persistent map, never changed) and the records'
        export taken now."""
        if self.evaluation is None or not self._unsaved:
            return None
        self._unsaved = False
        statuses, export = self.statuses, self.store.export_later()

        def write() -> None:
            with self._save_lock:
                self.state.save_statuses(statuses)
                self.state.save_metadata(export())
            return_freed_memory()  # the save's texts, freed on this thread's arena

        return write

    def flush_state(self) -> None:
        """Write statuses and generations to the state directory now."""
        if self._save_handle is not None:
            self._save_handle.cancel()
            self._save_handle = None
        write = self._prepare_state()
        if write is not None:
            write()
        with contextlib.suppress(RuntimeError):
            self._saved_at = asyncio.get_running_loop().time()

    def _bind_probe_needed(self, evaluation: Evaluation) -> bool:
        """Probe the Gateways' addresses (not with hostNetwork: listeners bind the host's
        addresses then); True if the build must be redone with what was found."""
        if self.options.values.gateway_api.host_network.enabled:
            return False
        probe = self._allocator.probe
        recovered = probe.refresh()
        return probe.check(evaluation.result.addresses.values()) or recovered

    async def _isolate_rejections(self) -> None:
        """Whenever Envoy rejects a version: find the objects it came from, withhold
        them (their status says why) and push the rest again (see runtime.isolation)."""
        handled = 0
        while True:
            version, message = await self._xds.wait_rejected(handled)
            handled = version
            evaluation = self._pushed.get(version)
            if evaluation is None or self._envoy is None:
                continue
            log.error("Envoy rejected version %s: %s", version, message)
            found = await isolation.find_rejected(
                evaluation.result.model,
                proxy_options(self.options.values),
                isolation.envoy_validator(self._envoy.binary),
            )
            if not found:
                # Nothing to withhold: the Gateways are not Programmed until Envoy takes
                # a later version.
                log.error("could not tell which objects Envoy rejected in version %s", version)
                self._unexplained = message
                await self._reconcile_again()
                continue
            snapshot = evaluation.snapshot
            for key, why in found.items():
                stored = snapshot.get(key)
                if stored is not None:
                    self._withheld[key] = (stored.resource, why)
                    self._withheld_changed.add(key)
                    log.error("withheld from Envoy: %s: %s", key, why)
            await self._reconcile_again()

    async def _reconcile_again(self) -> None:
        """The last change set once more (what is withheld from Envoy changed)."""
        if self._last_changeset is not None:
            with contextlib.suppress(Stopping):
                await self.reconcile(self._last_changeset)

    def _push(self, resources: XdsResources) -> int:
        version: int = self._xds.update(resources)
        return version

    def _report(self, diagnostics: Iterable[Diagnostic]) -> None:
        """Log each problem once, when it first appears (not on every reconcile)."""
        current = {str(d): d for d in diagnostics}
        for text, diagnostic in current.items():
            if text not in self._reported:
                (log.error if diagnostic.is_error else log.warning)("%s", text)
        for text in self._reported - current.keys():
            log.info("resolved: %s", text)
        self._reported = set(current)

    async def wait_programmed(self, timeout: float = 10.0) -> None:
        """Wait until Envoy acknowledged the latest configuration."""
        await self._xds.wait_acked(self.xds_version, timeout=timeout)

    # --- what the local API serves ---------------------------------------------------

    def objects(self, query: ObjectQuery = ANY_OBJECT) -> list[dict[str, Any]]:
        """The documents of the objects (with their merged status) and the generated
        Services; only those whose key can match `query` are built."""
        if self.evaluation is None:
            return []
        kind, namespace, name = query

        def wanted(key: ObjectKey) -> bool:
            return query.matches(key.kind, key.namespace, key.name)

        snapshot = self.evaluation.snapshot
        if kind and namespace is not None and name is not None:
            found = snapshot.get(ObjectKey(kind, namespace, name))
            items = [] if found is None else [(ObjectKey(kind, namespace, name), found)]
        else:
            items = [(key, stored) for key, stored in snapshot.items() if wanted(key)]
        docs = [to_document(stored.resource, self.statuses.get(key)) for key, stored in items]
        if not kind or kind == "Service":
            docs.extend(
                to_document(service)
                for service in self.evaluation.result.services
                if wanted(ObjectKey("Service", service.metadata.namespace, service.metadata.name))
            )
        return docs

    def health(self) -> Mapping[str, Any]:
        envoy = self._envoy
        rejections = self._xds.rejections() if self._xds else []
        withheld = {str(k): message for k, (_, message) in sorted(self._withheld.items())}
        status = "starting"
        if self.ready.is_set():
            status = "degraded" if rejections or withheld else "ok"
        return {
            "status": status,
            "rejected": rejections,
            "withheld": withheld,
            "pid": os.getpid(),
            "envoy": {
                "pid": envoy.pid if envoy else None,
                "restarts": envoy.restarts if envoy else 0,
                "admin": envoy.admin_address if envoy else None,
            },
            "xds": {"version": self.xds_version, "acked": self._xds.nodes() if self._xds else {}},
        }


async def _report_loop_lag(tick: float = 0.01) -> None:
    """(--log-level debug) Each time the event loop was late to wake a 10 ms sleep by
    more than ever before, say by how much: the longest it was kept from serving."""
    loop = asyncio.get_running_loop()
    worst = 0.0
    while True:
        began = loop.time()
        await asyncio.sleep(tick)
        lag = loop.time() - began - tick
        if lag > worst:
            worst = lag
            log.debug("event loop lag: %.3f s, the most so far", lag)


def _ignore_stopping(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and not isinstance(task.exception(), Stopping | type(None)):
        log.error("saving the state failed: %s", task.exception())


def _check_port_free(port: int) -> None:
    """Envoy would exit on a taken admin port with a page of output: say it first."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise RunError(f"--admin-port {port}: 127.0.0.1:{port}: {exc.strerror}") from None


def _one_line(message: str) -> str:
    """The first line and the last (Envoy's own reason) of a multi-line message."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else message
    return f"{lines[0].rstrip(':')}: {lines[-1]}"


async def serve(options: RunOptions) -> int:
    await Instance(options).serve()
    return 0
