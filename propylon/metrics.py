"""Prometheus metrics of `propylon run`, `operator` and `agent` (shell only, never the core).

One `Metrics` per process, registered in prometheus-client's default registry by default
(so the process and platform collectors, `process_cpu_seconds_total`,
`process_resident_memory_bytes`, come along), served by `serve_metrics` on
`--metrics-address`. Names follow the Prometheus conventions: a `propylon_` prefix, base
units in the name (`_seconds`), counters ending in `_total`.

The runtime and the xDS server record reconciles, changes and xDS pushes/ACKs/NACKs; the
Kubernetes shell records status writes, conflicts, watch restarts/relists and leadership
through the methods below.
"""

from __future__ import annotations

import ipaddress
import threading
from collections import Counter as Tally
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from wsgiref.simple_server import WSGIServer

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

# Reconciles take ~1 ms for one change and up to seconds for a first build of thousands.
RECONCILE_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


def xds_kind(type_url: str) -> str:
    """`type.googleapis.com/envoy.config.cluster.v3.Cluster` -> `Cluster`."""
    return type_url.rsplit(".", 1)[-1].rsplit("/", 1)[-1]


class Metrics:
    """The metrics of one process. Pass a fresh `CollectorRegistry` to keep them apart
    (tests); the default is the process-wide registry that `serve_metrics` exposes."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = prometheus_client.REGISTRY if registry is None else registry
        self.registry = reg
        self.build_info = Info("propylon_build", "Propylon version.", registry=reg)
        self.build_info.info({"version": _version()})
        self.reconcile_duration = Histogram(
            "propylon_reconcile_duration_seconds",
            "Time from a change set to the xDS update and statuses it produces.",
            buckets=RECONCILE_BUCKETS,
            registry=reg,
        )
        self.object_changes = Counter(
            "propylon_object_changes_total",
            "Objects added, changed or deleted, by kind, as seen by reconciles.",
            ["kind"],
            registry=reg,
        )
        self.status_writes = Counter(
            "propylon_status_writes_total",
            "Status subresource writes that the API server accepted, by kind.",
            ["kind"],
            registry=reg,
        )
        self.status_conflicts = Counter(
            "propylon_status_write_conflicts_total",
            "Status writes refused with 409 Conflict (retried on a fresh read), by kind.",
            ["kind"],
            registry=reg,
        )
        self.watch_restarts = Counter(
            "propylon_watch_restarts_total",
            "Watches re-opened (stream ended or failed), by kind.",
            ["kind"],
            registry=reg,
        )
        self.watch_relists = Counter(
            "propylon_watch_relists_total",
            "Full lists after a watch could not resume (410 Gone or first start), by kind.",
            ["kind"],
            registry=reg,
        )
        self.xds_pushes = Counter(
            "propylon_xds_pushes_total",
            "xDS responses sent to Envoy, by resource kind.",
            ["kind"],
            registry=reg,
        )
        self.xds_acks = Counter(
            "propylon_xds_acks_total",
            "xDS responses Envoy acknowledged, by resource kind.",
            ["kind"],
            registry=reg,
        )
        self.xds_nacks = Counter(
            "propylon_xds_nacks_total",
            "xDS responses Envoy rejected, by resource kind.",
            ["kind"],
            registry=reg,
        )
        self.xds_streams = Gauge(
            "propylon_xds_streams", "Open xDS streams (connected Envoys).", registry=reg
        )
        self.leader = Gauge(
            "propylon_leader",
            "1 while this process holds the leader Lease (always 1 without leader election).",
            registry=reg,
        )
        self.leader_transitions = Counter(
            "propylon_leader_transitions_total",
            "Times this process gained or lost leadership.",
            registry=reg,
        )
        self._leading: bool | None = None

    # --- reconcile (runtime) ------------------------------------------------------------

    def reconciled(self, seconds: float, changed_kinds: Iterable[str] = ()) -> None:
        self.reconcile_duration.observe(seconds)
        for kind, count in Tally(changed_kinds).items():
            self.object_changes.labels(kind=kind).inc(count)

    # --- xDS (server adapter) -----------------------------------------------------------

    def xds_pushed(self, type_url: str) -> None:
        self.xds_pushes.labels(kind=xds_kind(type_url)).inc()

    def xds_answered(self, type_url: str, *, accepted: bool) -> None:
        counter = self.xds_acks if accepted else self.xds_nacks
        counter.labels(kind=xds_kind(type_url)).inc()

    # --- Kubernetes shell ---------------------------------------------------------------

    def status_written(self, kind: str) -> None:
        self.status_writes.labels(kind=kind).inc()

    def status_conflicted(self, kind: str) -> None:
        self.status_conflicts.labels(kind=kind).inc()

    def watch_restarted(self, kind: str) -> None:
        self.watch_restarts.labels(kind=kind).inc()

    def watch_relisted(self, kind: str) -> None:
        self.watch_relists.labels(kind=kind).inc()

    def set_leader(self, leading: bool) -> None:
        """Record leadership; a change from the last recorded state is a transition."""
        if self._leading is not None and self._leading != leading:
            self.leader_transitions.inc()
        self._leading = leading
        self.leader.set(1 if leading else 0)


def _version() -> str:
    try:
        return metadata.version("propylon")
    except metadata.PackageNotFoundError:
        return "unknown"


_default: Metrics | None = None
_default_lock = threading.Lock()


def default_metrics() -> Metrics:
    """The process's `Metrics`, in the default registry (created on first use: the
    metrics of one process are registered once)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Metrics()
        return _default


class AddressError(ValueError):
    pass


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` (all interfaces) or `[IPv6]:PORT` -> (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise AddressError(f"{text!r}: expected HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise AddressError(f"{text!r}: {host!r} is not an IPv6 address") from None
    return host or "0.0.0.0", int(port_text)


@dataclass
class MetricsServer:
    """The `/metrics` HTTP endpoint, served from a thread (scrapes never wait on the
    event loop, and a busy reconcile never delays a scrape)."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(address: str, registry: CollectorRegistry | None = None) -> MetricsServer:
    """Serve `registry` (default: the process-wide one) in the text exposition format on
    `address` (port 0 picks a free port); raises `AddressError` if it cannot listen."""
    host, port = parse_address(address)
    reg = prometheus_client.REGISTRY if registry is None else registry
    try:
        server, thread = prometheus_client.start_http_server(port, addr=host, registry=reg)
    except OSError as exc:  # in use, not an address of this host, a name that resolves not
        reason = exc.strerror or str(exc)
        raise AddressError(f"--metrics-address {address}: cannot listen: {reason}") from None
    return MetricsServer(host, server.server_port, server, thread)
