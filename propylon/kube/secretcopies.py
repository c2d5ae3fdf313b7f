"""The operator's writer for gatewayAPI.secretsNamespace.sync: keeps the copies of the
referenced TLS Secrets (`propylon.kube.secretsync.wanted_copies`) in the secrets
namespace. Apart from `secretsync`, which the agents import: they may not write Secrets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from propylon.kube import kinds
from propylon.kube.api import ApiError, KubeApi, Obj
from propylon.kube.secretsync import COPY_LABEL
from propylon.resources import ObjectKey

log = logging.getLogger("propylon.kube")


class SecretCopies:
    """The operator's writer: the copies in the secrets namespace made equal to the
    wanted ones (created, patched, and deleted when no Gateway needs them any more;
    only copies carrying `COPY_LABEL` are ever deleted). One pass per `update`,
    serialised; a failed pass is retried at the next update."""

    def __init__(
        self,
        api: KubeApi,
        raw: Callable[[ObjectKey], Obj | None],
        existing: Callable[[], Mapping[ObjectKey, Any]],
        namespace: str,
        *,
        can_write: Callable[[], bool],
    ) -> None:
        self.api = api
        self._raw = raw
        self._existing = existing  # every Secret key the operator's source holds
        self.namespace = namespace
        self._can_write = can_write
        self._lock = asyncio.Lock()
        self.writes = 0

    async def update(self, wanted: Mapping[str, Obj]) -> None:
        if not self._can_write():
            return
        async with self._lock:
            try:
                await self._apply(wanted)
            except ApiError as exc:
                log.warning("secretsNamespace %s: %s", self.namespace, exc)

    async def _apply(self, wanted: Mapping[str, Obj]) -> None:
        for name, obj in sorted(wanted.items()):
            current = self._raw(ObjectKey("Secret", self.namespace, name))
            if current is None:
                try:
                    await self.api.create(kinds.SECRET, obj, self.namespace)
                except ApiError as exc:
                    if exc.code != 409:  # created meanwhile: patched at the next pass
                        raise
                self.writes += 1
            elif _differs(current, obj):
                await self.api.patch(
                    kinds.SECRET,
                    name,
                    {k: obj[k] for k in ("metadata", "type", "data")},
                    namespace=self.namespace,
                )
                self.writes += 1
        for key in sorted(self._existing()):
            if key.namespace != self.namespace or key.name in wanted:
                continue
            current = self._raw(key)
            labels = ((current or {}).get("metadata") or {}).get("labels") or {}
            if labels.get(COPY_LABEL) == "true":
                log.info("deleting %s: no Gateway references its source any more", key)
                await self.api.delete(kinds.SECRET, key.name, self.namespace)
                self.writes += 1


def _differs(current: Obj, wanted: Obj) -> bool:
    meta, want_meta = current.get("metadata") or {}, wanted["metadata"]
    return (
        (current.get("data") or {}) != wanted["data"]
        or current.get("type") != wanted["type"]
        or any(
            ((meta.get(field) or {}).get(k) != v)
            for field in ("labels", "annotations")
            for k, v in want_meta[field].items()
        )
    )
