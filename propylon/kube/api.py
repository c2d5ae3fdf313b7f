"""A small REST layer over the Kubernetes API, on raw dicts.

lightkube does the parts that are easy to get wrong: kubeconfig parsing, in-cluster
ServiceAccount config (with token-file rotation), client certificates, exec plugins and
the CA bundle, and builds the httpx client from them. The requests themselves are made
here because Propylon needs two things lightkube's typed `watch()` does not give:
`allowWatchBookmarks`, and seeing a 410 Gone (lightkube restarts the watch from "now",
which silently loses the deletions made meanwhile; we relist and synthesise them).
Objects stay dicts: `propylon.resources.parse_object` is the parser.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from lightkube.config import client_adapter
from lightkube.config.kubeconfig import KubeConfig, SingleConfig

Obj = dict[str, Any]

# Watches are re-opened by the server after this long (randomised per watch, as
# client-go does, so that many watches do not reconnect together).
WATCH_TIMEOUT_S = (240, 420)
LIST_PAGE = 500
# API groups whose kinds come from CustomResourceDefinitions (may be absent).
CRD_GROUPS = frozenset({"gateway.networking.k8s.io", "gateway.networking.x-k8s.io", "cilium.io"})


@dataclass(frozen=True, slots=True)
class Kind:
    """One API resource: where it lives and what it is called."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def crd_name(self) -> str | None:
        """`plural.group` for kinds served by a CustomResourceDefinition, else None."""
        return f"{self.plural}.{self.group}" if self.group in CRD_GROUPS else None

    def path(self, namespace: str = "", name: str = "", sub: str = "") -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base


class ApiError(Exception):
    """A non-2xx answer, with the API server's Status reason and message."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message

    @classmethod
    def from_response(cls, status: int, body: bytes) -> ApiError:
        try:
            data = json.loads(body)
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        return cls(status, str(data.get("reason", "")), str(data.get("message", body[:200])))

    @classmethod
    def from_status(cls, status: Mapping[str, Any]) -> ApiError:
        return cls(
            int(status.get("code", 0)),
            str(status.get("reason", "")),
            str(status.get("message", "")),
        )


def load_config(kubeconfig: Path | None) -> SingleConfig:
    """--kubeconfig, else in-cluster (ServiceAccount), else $KUBECONFIG / ~/.kube/config."""
    if kubeconfig is not None:
        config = KubeConfig.from_file(kubeconfig).get()
    else:
        config = KubeConfig.from_env().get()
    if config is None:
        raise ValueError("no usable context in the Kubernetes configuration")
    return config


class KubeApi:
    """Verbs on raw objects. `requests` counts the calls made, by verb and plural
    (BENCHMARKS report API-server requests per change)."""

    def __init__(self, config: SingleConfig, *, field_manager: str = "propylon") -> None:
        params = client_adapter.ConnectionParams(timeout=httpx2.Timeout(10.0), trust_env=False)
        self._http: httpx2.AsyncClient = client_adapter.AsyncClient(config, params)
        self.field_manager = field_manager
        self.requests: Counter[str] = Counter()

    @classmethod
    def connect(cls, kubeconfig: Path | None, *, field_manager: str = "propylon") -> KubeApi:
        return cls(load_config(kubeconfig), field_manager=field_manager)

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Obj:
        self.requests[verb] += 1
        headers = {"Content-Type": content_type} if body is not None else None
        resp = await self._http.request(
            method,
            path,
            params=dict(params or {}),
            content=json.dumps(body).encode() if body is not None else None,
            headers=headers,
        )
        if resp.status_code >= 300:
            raise ApiError.from_response(resp.status_code, resp.content)
        data = resp.json()
        return data if isinstance(data, dict) else {}

    async def get(self, kind: Kind, name: str, namespace: str = "") -> Obj | None:
        try:
            return await self._call("GET", kind.path(namespace, name), verb="get")
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    async def list(
        self,
        kind: Kind,
        *,
        label_selector: str = "",
        field_selector: str = "",
        namespace: str = "",
    ) -> tuple[list[Obj], str]:
        """Every object (of all namespaces, or of `namespace` only), paginated; and the
        list's resourceVersion."""
        items: list[Obj] = []
        params: dict[str, str] = {"limit": str(LIST_PAGE)}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        while True:
            page = await self._call("GET", kind.path(namespace), verb="list", params=params)
            for item in page.get("items") or ():
                # List items carry no apiVersion/kind; the parser needs them.
                item.setdefault("apiVersion", kind.api_version)
                item.setdefault("kind", kind.kind)
                items.append(item)
            meta = page.get("metadata") or {}
            cont = meta.get("continue")
            if not cont:
                return items, str(meta.get("resourceVersion", ""))
            params["continue"] = cont

    async def watch(
        self,
        kind: Kind,
        resource_version: str,
        *,
        timeout_s: int,
        label_selector: str = "",
        field_selector: str = "",
        namespace: str = "",
    ) -> AsyncIterator[tuple[str, Obj]]:
        """(type, object) events from `resource_version`, BOOKMARKs included. An ERROR
        event (e.g. 410 Gone) raises ApiError."""
        params = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(timeout_s),
        }
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        self.requests["watch"] += 1
        timeout = httpx2.Timeout(10.0, read=timeout_s + 30.0)
        path = kind.path(namespace)
        async with self._http.stream("GET", path, params=params, timeout=timeout) as resp:
            if resp.status_code >= 300:
                raise ApiError.from_response(resp.status_code, await resp.aread())
            async for line in resp.aiter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                type_, obj = str(event.get("type", "")), event.get("object") or {}
                if type_ == "ERROR":
                    raise ApiError.from_status(obj)
                yield type_, obj

    async def create(self, kind: Kind, obj: Mapping[str, Any], namespace: str = "") -> Obj:
        return await self._call(
            "POST",
            kind.path(namespace),
            verb="create",
            params={"fieldManager": self.field_manager},
            body=obj,
        )

    async def replace(self, kind: Kind, obj: Mapping[str, Any], *, sub: str = "") -> Obj:
        meta = obj.get("metadata") or {}
        path = kind.path(str(meta.get("namespace", "")), str(meta["name"]), sub)
        return await self._call(
            "PUT", path, verb="update", params={"fieldManager": self.field_manager}, body=obj
        )

    async def patch(
        self, kind: Kind, name: str, patch: Mapping[str, Any], *, namespace: str = "", sub: str = ""
    ) -> Obj:
        """JSON merge patch. A `metadata.resourceVersion` in it makes it conditional
        (409 Conflict when the object changed meanwhile)."""
        return await self._call(
            "PATCH",
            kind.path(namespace, name, sub),
            verb="patch",
            params={"fieldManager": self.field_manager},
            body=patch,
            content_type="application/merge-patch+json",
        )

    async def delete(self, kind: Kind, name: str, namespace: str = "") -> None:
        try:
            await self._call("DELETE", kind.path(namespace, name), verb="delete")
        except ApiError as exc:
            if exc.code != 404:
                raise


def pod_identity() -> str:
    """This process as a Lease holder: the pod's name (else the host's) and a random
    part new at every start, as client-go does. A restarted container is a new
    candidate: it cannot take its predecessor's unexpired Lease as its own, so the
    standby takes over when the leader dies, whether or not the kubelet restarts it."""
    name = os.environ.get("POD_NAME") or os.uname().nodename
    return f"{name}_{uuid.uuid4()}"
