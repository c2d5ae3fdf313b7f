"""Kubernetes Events (events.k8s.io/v1) for the state changes users look for in
`kubectl describe`: address assigned, Envoy rejected a configuration, leader changed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx2

from propylon.clock import format_micro_time, utc_now
from propylon.kube import kinds
from propylon.kube.api import ApiError, KubeApi

log = logging.getLogger("propylon.events")

COMPONENT = "propylon-operator"


def object_reference(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    ref = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
    }
    return {k: v for k, v in ref.items() if v}


class EventRecorder:
    """Fire-and-forget: an Event that cannot be written is logged, never retried."""

    def __init__(self, api: KubeApi, *, instance: str, controller: str = COMPONENT) -> None:
        self.api = api
        self.instance = instance
        self.controller = controller
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0

    def emit(
        self,
        regarding: Mapping[str, Any],
        reason: str,
        note: str,
        *,
        type_: str = "Normal",
        action: str = "Reconcile",
        namespace: str | None = None,
    ) -> None:
        ref = object_reference(regarding)
        ns = namespace or str(ref.get("namespace") or "default")
        now = utc_now()
        event = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {
                "name": f"{ref.get('name', 'propylon')}.{time.time_ns():x}",
                "namespace": ns,
            },
            "eventTime": format_micro_time(now),
            "reportingController": self.controller,
            "reportingInstance": self.instance[:128],
            "action": action,
            "reason": reason,
            "note": note[:1024],
            "type": type_,
            "regarding": ref,
        }
        task = asyncio.get_running_loop().create_task(self._send(event, ns))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, event: dict[str, Any], namespace: str) -> None:
        try:
            await self.api.create(kinds.EVENT, event, namespace)
            self.sent += 1
        except (ApiError, httpx2.HTTPError, OSError) as exc:
            log.info("event %s not recorded: %s", event["reason"], exc)
