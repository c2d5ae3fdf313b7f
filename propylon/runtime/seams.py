"""The three edges a deployment plugs into the shared pipeline.

- `ChangeSource`: files watched (`FileSource` + `watch`) | list+watch
  (`propylon.kube.source.KubeSource`).
- `StatusSink`: the state dir + local API (`Instance`) | the status subresource
  (`propylon.kube.status.StatusSink`).
- `AddressAllocator`: the standalone pool + a bind probe (`StandalonePool`) |
  CiliumLoadBalancerIPPools only, the last addresses being the API server's
  (`LbIpamPools`).

Everything between (store, gatewayapi, model, envoy, xds) is the same code.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from propylon.resources.meta import ObjectKey
from propylon.runtime.bindable import BindProbe
from propylon.runtime.pipeline import previous_addresses
from propylon.sources.files import FileSource
from propylon.sources.watch import Offload, watch
from propylon.store import ChangeSet

# The watcher hands over a batch once no new event came for this long, or, while events
# keep coming, this long after the first. A burst read meanwhile is coalesced (see
# `propylon.sources.watch`): one reconcile for the whole burst when reading is slower.
WATCH_STEP_MS = 2
WATCH_DEBOUNCE_MS = 20
# Events re-read only the files they name; a full rescan (a stat of every file), the
# safety net for missed events, runs after this long without events.
RESCAN_INTERVAL_S = 10.0


class ChangeSource(Protocol):
    def changes(self) -> AsyncIterator[ChangeSet]: ...


class WatchedFiles:
    """`propylon run`'s change source: the files, read once, then re-read as they change."""

    def __init__(
        self,
        paths: tuple[Path, ...],
        *,
        stop_event: asyncio.Event,
        source: FileSource | None = None,
        offload: Offload | None = None,
    ) -> None:
        """`offload`: where the reading of files runs (`propylon run`: its worker
        thread, so that reading thousands of files leaves the loop free for the xDS
        stream, the local API and signals); default: on the loop."""
        self.paths = paths
        self.source = source if source is not None else FileSource(paths)
        self._stop = stop_event
        self._offload = offload

    def changes(self) -> AsyncIterator[ChangeSet]:
        return watch(
            self.paths,
            source=self.source,
            stop_event=self._stop,
            step_ms=WATCH_STEP_MS,
            debounce_ms=WATCH_DEBOUNCE_MS,
            rescan_interval=RESCAN_INTERVAL_S,
            offload=self._offload,
        )


class StatusSink(Protocol):
    def update(
        self, statuses: Mapping[ObjectKey, Mapping[str, Any]], changed: Iterable[ObjectKey] | None
    ) -> None: ...


class AddressAllocator(Protocol):
    """What `gatewayapi.Inputs` needs about addresses beyond the objects themselves."""

    @property
    def default_pool(self) -> tuple[str, ...]: ...

    def previous(self, statuses: Mapping[ObjectKey, Mapping[str, Any]]) -> dict[ObjectKey, str]: ...

    @property
    def unbindable(self) -> frozenset[str]: ...


class StandalonePool:
    """`propylon run`: the loopback pool when no CiliumLoadBalancerIPPool exists, and
    addresses this host cannot bind left out (probed)."""

    def __init__(self, default_pool: tuple[str, ...]) -> None:
        self.default_pool = default_pool
        self.probe = BindProbe()

    def previous(self, statuses: Mapping[ObjectKey, Mapping[str, Any]]) -> dict[ObjectKey, str]:
        return previous_addresses(statuses)

    @property
    def unbindable(self) -> frozenset[str]:
        return self.probe.unbindable


class LbIpamPools:
    """Kubernetes: addresses come only from CiliumLoadBalancerIPPools (no pool: no
    address, as with Cilium's LB-IPAM); the previous ones are what the API server holds
    (Gateway status, generated Service status), so a new leader keeps them."""

    default_pool: tuple[str, ...] = ()
    unbindable: frozenset[str] = frozenset()

    def previous(self, statuses: Mapping[ObjectKey, Mapping[str, Any]]) -> dict[ObjectKey, str]:
        return previous_addresses(statuses)
