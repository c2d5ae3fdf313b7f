"""The node's view of the API server, through lightkube (raw JSON dicts in and out, where
the typed models would only add None checks). Authenticated as system:node:<name>, so
the Node authorizer and NodeRestriction admission decide what it may do."""

from __future__ import annotations

import datetime
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx2
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.config.client_adapter import AsyncClient as adapter_client
from lightkube.config.client_adapter import ConnectionParams
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import ConfigMap, Node, Pod, Secret, ServiceAccountToken
from lightkube.types import PatchType

Obj = dict[str, Any]
FIELD_MANAGER = "devcluster-node"
WATCH_SECONDS = 300


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# What a call to an API server that is restarting or unreachable raises (ApiError is an
# httpx2.HTTPStatusError).
API_ERRORS = (httpx2.HTTPError, OSError)


class WatchExpired(Exception):
    """410 Gone: the resourceVersion is older than the API server keeps; list again."""


@dataclass(frozen=True)
class Token:
    token: str
    expires: datetime.datetime


class NodeApi:
    def __init__(self, kubeconfig: Path) -> None:
        config = KubeConfig.from_file(kubeconfig)
        self.client = AsyncClient(config, field_manager=FIELD_MANAGER)
        single = config.get()
        assert single is not None, f"{kubeconfig}: no current context"
        # Watches stream for minutes: the server ends them after WATCH_SECONDS; a read
        # timeout a little longer catches a connection that died without a word.
        self._stream = adapter_client(
            single, ConnectionParams(timeout=httpx2.Timeout(10.0, read=WATCH_SECONDS + 30))
        )

    async def close(self) -> None:
        await self.client.close()
        await self._stream.aclose()

    # Node and Lease ---------------------------------------------------------------
    async def ensure_node(self, node: Obj) -> None:
        try:
            await self.client.create(cast(Node, Node.from_dict(node)))
        except ApiError as error:
            if error.status.code != 409:
                raise
            patch = {"metadata": {"labels": node["metadata"]["labels"]}}
            await self.client.patch(Node, node["metadata"]["name"], patch)

    async def patch_node_status(self, name: str, status: Obj) -> None:
        await self.client.patch(Node.Status, name, {"status": status})

    async def renew_lease(self, node_name: str, node_uid: str | None, duration: int) -> None:
        spec = {
            "holderIdentity": node_name,
            "leaseDurationSeconds": duration,
            "renewTime": now_micro(),
        }
        try:
            await self.client.patch(
                Lease,
                node_name,
                {"spec": spec},
                namespace="kube-node-lease",
                patch_type=PatchType.MERGE,
            )
        except ApiError as error:
            if error.status.code != 404:
                raise
            meta: Obj = {"name": node_name, "namespace": "kube-node-lease"}
            if node_uid:
                meta["ownerReferences"] = [
                    {"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid}
                ]
            lease = cast(Lease, Lease.from_dict({"metadata": meta, "spec": spec}))
            await self.client.create(lease)

    async def node_uid(self, name: str) -> str | None:
        node = await self.client.get(Node, name)
        return node.metadata.uid if node.metadata else None

    # Pods ----------------------------------------------------------------------------
    async def list_pods(self, node_name: str) -> tuple[list[Obj], str]:
        response = await self._stream.get(
            "/api/v1/pods", params={"fieldSelector": f"spec.nodeName={node_name}"}
        )
        response.raise_for_status()
        body = response.json()
        return list(body.get("items") or []), str(body["metadata"]["resourceVersion"])

    async def watch_pods(
        self, node_name: str, resource_version: str
    ) -> AsyncIterator[tuple[str, Obj]]:
        """Watch events after resource_version, bookmarks included; WatchExpired on 410."""
        params = {
            "watch": "true",
            "fieldSelector": f"spec.nodeName={node_name}",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        async with self._stream.stream("GET", "/api/v1/pods", params=params) as response:
            if response.status_code == 410:
                raise WatchExpired(resource_version)
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    if obj.get("code") == 410:
                        raise WatchExpired(resource_version)
                    raise RuntimeError(f"watch error: {obj.get('message')}")
                yield str(event["type"]), obj

    async def patch_pod_status(self, namespace: str, name: str, status: Obj) -> None:
        await self.client.patch(Pod.Status, name, {"status": status}, namespace=namespace)

    async def delete_pod_now(self, namespace: str, name: str) -> None:
        try:
            await self.client.delete(Pod, name, namespace=namespace, grace_period=0)
        except ApiError as error:
            if error.status.code != 404:
                raise

    # What pods read ------------------------------------------------------------------
    async def get_secret(self, namespace: str, name: str) -> Obj | None:
        try:
            secret = await self.client.get(Secret, name, namespace=namespace)
        except ApiError as error:
            if error.status.code == 404:
                return None
            raise
        return {"kind": "Secret", **secret.to_dict()}

    async def get_config_map(self, namespace: str, name: str) -> Obj | None:
        try:
            config_map = await self.client.get(ConfigMap, name, namespace=namespace)
        except ApiError as error:
            if error.status.code == 404:
                return None
            raise
        return {"kind": "ConfigMap", **config_map.to_dict()}

    async def request_token(
        self,
        namespace: str,
        service_account: str,
        pod_name: str,
        pod_uid: str,
        expiration_seconds: int,
        audiences: list[str],
    ) -> Token:
        """A ServiceAccount token bound to the pod; no audiences means the API server's."""
        request = ServiceAccountToken.from_dict(
            {
                "metadata": {"name": service_account, "namespace": namespace},
                "spec": {
                    "audiences": audiences,
                    "expirationSeconds": expiration_seconds,
                    "boundObjectRef": {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "name": pod_name,
                        "uid": pod_uid,
                    },
                },
            }
        )
        result = await self.client.create(
            cast(ServiceAccountToken, request), service_account, namespace=namespace
        )
        status = result.status
        if status is None or not status.token or status.expirationTimestamp is None:
            raise RuntimeError(f"TokenRequest for {namespace}/{service_account}: no token")
        return Token(status.token, status.expirationTimestamp)
