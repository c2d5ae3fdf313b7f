"""Objects as the local API serves them: Kubernetes-style JSON with status."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from propylon.store import Resource


def to_document(resource: Resource, status: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`{"apiVersion", "kind", "metadata", "spec", ..., "status"}` for one object; empty
    labels/annotations and the empty namespace of cluster-scoped objects are left out,
    as the API server does."""
    body = resource.model_dump(mode="json", by_alias=True, exclude_none=True)
    doc: dict[str, Any] = {"apiVersion": resource.api_version, "kind": resource.kind}
    meta = dict(body.pop("metadata", {}))
    for empty in ("labels", "annotations", "namespace"):
        if not meta.get(empty):
            meta.pop(empty, None)
    doc["metadata"] = meta
    for key, value in body.items():
        if key not in ("apiVersion", "kind", "status"):
            doc[key] = value
    if status is not None:
        doc["status"] = dict(status)
    elif "status" in body:
        doc["status"] = body["status"]
    return doc


def object_list(items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": [dict(i) for i in items]}
