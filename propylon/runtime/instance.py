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
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from propylon.dataplane import EnvoySupervisor
from propylon.envoy import Translator, XdsResources
from propylon.resources.meta import ObjectKey
from propylon.runtime.options import RunOptions
from propylon.runtime.pipeline import Evaluation, evaluate, previous_addresses
from propylon.sources.files import FileSource
from propylon.sources.watch import watch
from propylon.state import ApiServer, StateDir, merge_statuses, to_document
from propylon.store import ChangeSet, Diagnostic, Store

log = logging.getLogger("propylon")


def _now() -> datetime:
    return datetime.now(UTC)


class Instance:
    """Owns the store, the xDS server, Envoy and the local API of one state directory."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.state = StateDir(options.state_dir)
        self.store = Store(now=_now)
        self.statuses: dict[ObjectKey, dict[str, Any]] = {}
        self.evaluation: Evaluation | None = None
        self.diagnostics: tuple[Diagnostic, ...] = ()
        self.xds_version = 0
        self.ready = asyncio.Event()
        self._reported: set[str] = set()
        self._xds: Any = None
        self._envoy: EnvoySupervisor | None = None
        self._api: ApiServer | None = None
        self._source = FileSource(options.paths)
        self._translator = Translator()  # keeps serialized fragments between reconciles
        self._stop = asyncio.Event()

    # --- lifecycle ------------------------------------------------------------------

    async def serve(self) -> None:
        """Run until `stop()` or SIGINT/SIGTERM."""
        from propylon.xds import AdsServer  # grpc is heavy; import it only when serving

        self.state.ensure()
        self.store.import_records(self.state.load_metadata())
        self.statuses = dict(self.state.load_statuses())
        self._api = ApiServer(
            self.state.socket_path,
            objects=self.objects,
            diagnostics=lambda: self.diagnostics,
            health=self.health,
        )
        await self._api.start()  # refuses to start beside a live instance
        self.state.write_pid(os.getpid())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._stop.set)
        xds = AdsServer()
        self._xds = xds
        try:
            xds_address = await xds.start(f"unix:{self.state.path / 'xds.sock'}")
            admin_port = self.options.admin_port or 0
            self._envoy = EnvoySupervisor(
                binary=self.options.envoy_binary,
                xds_address=xds_address,
                admin_address=f"127.0.0.1:{admin_port}",
                node_id=self.options.node_id,
                workdir=self.state.path / "envoy",
            )
            await self._envoy.start()
            log.info("envoy pid %s, admin http://%s/", self._envoy.pid, self._envoy.admin_address)
            async for changeset in watch(
                self.options.paths, source=self._source, stop_event=self._stop
            ):
                await self.reconcile(changeset)
                if self._stop.is_set():
                    break
        finally:
            await self._shutdown()

    def stop(self) -> None:
        self._stop.set()

    async def _shutdown(self) -> None:
        if self._envoy is not None:
            await self._envoy.stop()
        if self._xds is not None:
            await self._xds.stop()
        if self._api is not None:
            await self._api.stop()
        self.state.remove_pid()

    # --- reconcile ------------------------------------------------------------------

    async def reconcile(self, changeset: ChangeSet) -> None:
        snapshot = self.store.apply(changeset)
        evaluation = evaluate(
            snapshot,
            changeset,
            self.options.values,
            previous=previous_addresses(self.statuses),
            default_pool=self.options.default_pool,
            translator=self._translator,
        )
        self.evaluation = evaluation
        self.xds_version = self._push(evaluation.resources)
        self.statuses = merge_statuses(self.statuses, evaluation.result.statuses, _now())
        self.diagnostics = evaluation.diagnostics
        self.state.save_statuses(self.statuses)
        self.state.save_metadata(self.store.export_records())
        self._report(evaluation.diagnostics)
        self.ready.set()

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

    def objects(self) -> list[dict[str, Any]]:
        if self.evaluation is None:
            return []
        docs = [
            to_document(stored.resource, self.statuses.get(key))
            for key, stored in self.evaluation.snapshot.items()
        ]
        docs.extend(to_document(service) for service in self.evaluation.result.services)
        return docs

    def health(self) -> Mapping[str, Any]:
        envoy = self._envoy
        return {
            "status": "ok" if self.ready.is_set() else "starting",
            "pid": os.getpid(),
            "envoy": {
                "pid": envoy.pid if envoy else None,
                "restarts": envoy.restarts if envoy else 0,
                "admin": envoy.admin_address if envoy else None,
            },
            "xds": {"version": self.xds_version, "acked": self._xds.nodes() if self._xds else {}},
        }


async def serve(options: RunOptions) -> int:
    await Instance(options).serve()
    return 0
