"""How an agent tells the operator what its Envoy accepted: one Lease per node.

`propylon-agent-<node>` (coordination.k8s.io/v1, label `propylon.io/node-report`) is
renewed by its agent like a kubelet's node Lease, so a report of a dead agent expires
by itself, and its annotation `propylon.io/xds-state` holds, as JSON:

    {"acked": {"ns/gateway": generation, ...},      # in the config Envoy last ACKed
     "nack": {"message": "...", "gateways": {...}}}  # the config it rejected, if any

It is O(Gateways), not O(routes): no size cliff however many routes there are (the
configuration itself never travels through an object; the agent builds it). The
operator folds the live reports into each Gateway's Programmed condition.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from propylon.clock import utc_now
from propylon.resources.meta import ObjectKey

REPORT_LABEL = "propylon.io/node-report"
STATE_ANNOTATION = "propylon.io/xds-state"
R_PENDING = "Pending"
R_REJECTED = "Invalid"


def report_name(node: str) -> str:
    return f"propylon-agent-{node}"


def gateway_id(key: ObjectKey) -> str:
    return f"{key.namespace}/{key.name}"


def encode_state(
    acked: Mapping[ObjectKey, int], nack: tuple[str, Mapping[ObjectKey, int]] | None
) -> str:
    body: dict[str, Any] = {"acked": {gateway_id(k): g for k, g in sorted(acked.items())}}
    if nack is not None:
        message, gateways = nack
        body["nack"] = {
            "message": message[:2000],
            "gateways": {gateway_id(k): g for k, g in sorted(gateways.items())},
        }
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class NodeReports:
    """The operator's view of the agents' reports."""

    def __init__(self, namespace: str, *, now: Any = None) -> None:
        self.namespace = namespace
        self._now = now or utc_now
        self._reports: dict[str, tuple[dict[str, Any], datetime | None, float]] = {}
        self._last_live: frozenset[str] = frozenset()

    def accept(self, key: ObjectKey, obj: Mapping[str, Any] | None) -> bool:
        """Take a report Lease (None: deleted); True if anything changed."""
        if key.namespace != self.namespace:
            return False
        before = self._reports.get(key.name)
        if obj is None:
            self._reports.pop(key.name, None)
            return before is not None
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        try:
            state = json.loads((meta.get("annotations") or {}).get(STATE_ANNOTATION, "{}"))
        except ValueError:
            state = {}
        entry = (
            state if isinstance(state, dict) else {},
            _parse_time(spec.get("renewTime")),
            float(spec.get("leaseDurationSeconds") or 40),
        )
        self._reports[key.name] = entry
        return before is None or before[0] != entry[0]

    def expire(self) -> bool:
        """True if the set of live reports changed since the last call."""
        live = frozenset(name for name in self._reports if self._is_live(name))
        changed = live != self._last_live
        self._last_live = live
        return changed

    def _is_live(self, name: str) -> bool:
        _, renewed, duration = self._reports[name]
        return renewed is None or (self._now() - renewed).total_seconds() <= duration

    def _live(self) -> list[dict[str, Any]]:
        now = self._now()
        out = []
        for state, renewed, duration in self._reports.values():
            if renewed is not None and (now - renewed).total_seconds() > duration:
                continue
            out.append(state)
        return out

    def verdict(self, gateway: ObjectKey, generation: int) -> tuple[str, str] | None:
        """None when some live agent's Envoy accepted this generation of the Gateway
        (and none rejected it); else (reason, message) for Programmed=False."""
        gid = gateway_id(gateway)
        live = self._live()
        for state in live:
            nack = state.get("nack") or {}
            if int((nack.get("gateways") or {}).get(gid, -1)) >= generation:
                return R_REJECTED, f"Envoy rejected the configuration: {nack.get('message', '')}"
        if any(int((s.get("acked") or {}).get(gid, -1)) >= generation for s in live):
            return None
        if not live:
            return R_PENDING, "waiting for a node agent to report its Envoy's configuration"
        return R_PENDING, f"waiting for an Envoy to accept generation {generation}"

    def nacks(self) -> dict[ObjectKey, str]:
        out: dict[ObjectKey, str] = {}
        for state in self._live():
            nack = state.get("nack") or {}
            for gid in nack.get("gateways") or {}:
                ns, _, name = str(gid).partition("/")
                out[ObjectKey("Gateway", ns, name)] = str(nack.get("message", ""))
        return out
