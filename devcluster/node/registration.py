"""The Node object and its heartbeat: the Lease in kube-node-lease and the Ready
condition, so the scheduler binds pods here and node-lifecycle keeps the node Ready."""

from __future__ import annotations

import asyncio
import logging
import os
import platform
from pathlib import Path
from typing import Any

from lightkube import ApiError

from devcluster.node.api import API_ERRORS, NodeApi, now_rfc3339
from devcluster.node.config import KUBELET_VERSION, NodeConfig
from devcluster.node.logserver import KUBELET_PORT

Obj = dict[str, Any]
log = logging.getLogger("devcluster.node")
MAX_PODS = 110


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _memory_kib() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def node_object(config: NodeConfig) -> Obj:
    labels = {
        "kubernetes.io/hostname": config.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64" if platform.machine() == "x86_64" else platform.machine(),
        **config.labels,
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": config.name, "labels": labels},
        "spec": {"podCIDR": config.pod_cidr, "podCIDRs": [config.pod_cidr]},
    }


def node_status(config: NodeConfig, labels_arch: str, since: str) -> Obj:
    now = now_rfc3339()
    resources = {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{_memory_kib()}Ki",
        "pods": str(MAX_PODS),
        "ephemeral-storage": "10Gi",
    }

    def condition(kind: str, ok: bool, reason: str, message: str) -> Obj:
        return {
            "type": kind,
            "status": "True" if ok else "False",
            "lastHeartbeatTime": now,
            "lastTransitionTime": since,
            "reason": reason,
            "message": message,
        }

    return {
        "capacity": resources,
        "allocatable": resources,
        "addresses": [
            {"type": "InternalIP", "address": config.node_ip},
            {"type": "Hostname", "address": config.name},
        ],
        "conditions": [
            condition("Ready", True, "KubeletReady", "the devcluster node agent is running"),
            condition("MemoryPressure", False, "KubeletHasSufficientMemory", "no memory pressure"),
            condition("DiskPressure", False, "KubeletHasNoDiskPressure", "no disk pressure"),
            condition("PIDPressure", False, "KubeletHasSufficientPID", "no PID pressure"),
        ],
        "daemonEndpoints": {
            "kubeletEndpoint": {"Port": KUBELET_PORT if config.serving_cert else 0}
        },
        "nodeInfo": {
            "machineID": _read("/etc/machine-id"),
            "systemUUID": _read("/etc/machine-id"),
            "bootID": _read("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": platform.release(),
            "osImage": "devcluster node agent (pods as processes)",
            "containerRuntimeVersion": "devcluster://0.1.0",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": labels_arch,
        },
    }


class Registration:
    def __init__(self, config: NodeConfig, api: NodeApi) -> None:
        self.config = config
        self.api = api
        self._node_uid: str | None = None
        self._since = now_rfc3339()

    async def register(self) -> None:
        node = node_object(self.config)
        await self.api.ensure_node(node)
        await self._heartbeat()
        log.info("node %s registered", self.config.name)

    async def _heartbeat(self) -> None:
        arch = node_object(self.config)["metadata"]["labels"]["kubernetes.io/arch"]
        status = node_status(self.config, arch, self._since)
        await self.api.patch_node_status(self.config.name, status)
        if self._node_uid is None:
            self._node_uid = await self.api.node_uid(self.config.name)
        await self.api.renew_lease(
            self.config.name, self._node_uid, self.config.lease_duration_seconds
        )

    async def run(self) -> None:
        """Register (retrying while the API server is away), then heartbeat forever."""
        while True:
            try:
                await self.register()
                break
            except API_ERRORS as error:
                log.warning("node registration: %s; retrying", error)
                await asyncio.sleep(2.0)
        while True:
            await asyncio.sleep(self.config.heartbeat_seconds)
            try:
                await self._heartbeat()
            except API_ERRORS as error:
                log.warning("node heartbeat: %s", error)
                if isinstance(error, ApiError) and error.status.code == 404:
                    await self.register()  # the Node was deleted: register it again
