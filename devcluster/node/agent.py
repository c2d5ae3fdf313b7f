"""The node agent: registration and heartbeat, the list+watch of this node's pods, and one
worker per pod; on SIGTERM it stops every pod and removes what it made."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import Any

from devcluster.leftovers import processes_in_netns
from devcluster.node import netns
from devcluster.node.api import NodeApi
from devcluster.node.config import NodeConfig
from devcluster.node.informer import run_informer
from devcluster.node.ipam import PodIPAllocator
from devcluster.node.logserver import KUBELET_PORT, LogServer, server_context
from devcluster.node.pod import NodeContext, PodWorker, release_pod
from devcluster.node.registration import Registration
from devcluster.node.state import PodRecord, load_all

Obj = dict[str, Any]
log = logging.getLogger("devcluster.node")
TERMINAL_PHASES = ("Succeeded", "Failed")


class Agent:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.api = NodeApi(config.kubeconfig)
        self.ctx = NodeContext(
            config, self.api, PodIPAllocator(config.pod_cidr, config.state_dir / "ipam.json")
        )
        self.workers: dict[str, PodWorker] = {}
        self._worker_tasks: set[asyncio.Task[None]] = set()
        self._finished: set[str] = set()  # uids already torn down: late events are ignored
        self._records: dict[str, PodRecord] = load_all(config.pods_dir)

    async def run(self, stop: asyncio.Event) -> None:
        self.config.pods_dir.mkdir(parents=True, exist_ok=True)
        background = [
            asyncio.create_task(Registration(self.config, self.api).run()),
            asyncio.create_task(run_informer(self.api, self.config.name, self)),
        ]
        config = self.config
        if config.serving_cert and config.serving_key:
            logs = LogServer(config.pods_dir, self.pod_folder)
            context = server_context(config.serving_cert, config.serving_key, config.ca)
            background.append(
                asyncio.create_task(logs.serve(config.node_ip, KUBELET_PORT, context))
            )
        await stop.wait()
        log.info("node %s stopping: stopping %d pods", self.config.name, len(self.workers))
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await self.shutdown()

    async def shutdown(self) -> None:
        for worker in self.workers.values():
            worker.stop(delete_from_api=False)
        await asyncio.gather(*self._worker_tasks, return_exceptions=True)
        for uid, record in list(self._records.items()):  # never adopted: release too
            await release_pod(self.ctx, record, self.config.pods_dir / uid)
        await self._remove_stray_netns(keep=set())
        await self.api.close()

    # Pods ------------------------------------------------------------------------------
    def pod_folder(self, namespace: str, name: str) -> Path | None:
        """A pod's folder in the state dir: running, or finished and not yet deleted."""
        for worker in self.workers.values():
            if (worker.namespace, worker.name) == (namespace, name):
                return worker.dir
        for uid, record in load_all(self.config.pods_dir).items():
            if (record.namespace, record.name) == (namespace, name):
                return self.config.pods_dir / uid
        return None

    async def sync(self, pods: list[Obj]) -> None:
        """Make the workers match a full list: start new ones, stop those gone; release
        pods remembered in the state dir that the API server no longer has."""
        listed = {pod["metadata"]["uid"] for pod in pods}
        for uid, worker in list(self.workers.items()):
            if uid not in listed:
                worker.stop(delete_from_api=False)
        for pod in pods:
            self.changed(pod)
        for uid in [uid for uid in self._records if uid not in listed]:
            log.info("pod %s no longer exists: releasing what is left of it", uid)
            await release_pod(self.ctx, self._records.pop(uid), self.config.pods_dir / uid)
        await self._remove_stray_netns(keep={w.record.netns for w in self.workers.values()})

    async def _remove_stray_netns(self, keep: set[str | None]) -> None:
        for name in netns.list_netns(self.config.netns_prefix()):
            if name not in keep:
                # A pod's namespace that no pod here owns: anything still running in it
                # is a container this agent has lost track of (it would go on, unnamed
                # and unreachable, after the namespace is deleted).
                for pid in processes_in_netns([name]):
                    log.warning("stopping pid %d, left in stray namespace %s", pid, name)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                log.info("removing stray network namespace %s", name)
                await netns.run("ip", "netns", "del", name, check=False)

    def changed(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        if uid in self._finished:
            return
        worker = self.workers.get(uid)
        if worker is not None:
            worker.update(pod)
            return
        deleting = bool(pod["metadata"].get("deletionTimestamp"))
        record = self._records.pop(uid, None)
        if record is None and pod.get("status", {}).get("phase") in TERMINAL_PHASES:
            if deleting:  # nothing of it on this node: just let it go
                self._spawn(PodWorker(self.ctx, pod, None), pod)
            return  # a finished pod is not run again
        self._spawn(PodWorker(self.ctx, pod, record), pod)

    def _spawn(self, worker: PodWorker, pod: Obj) -> None:
        self.workers[worker.uid] = worker
        worker.update(pod)
        task = asyncio.create_task(self._run_worker(worker))
        self._worker_tasks.add(task)
        task.add_done_callback(self._worker_tasks.discard)

    async def _run_worker(self, worker: PodWorker) -> None:
        try:
            await worker.run()
        finally:
            self.workers.pop(worker.uid, None)
            self._finished.add(worker.uid)

    def deleted(self, pod: Obj) -> None:
        worker = self.workers.get(pod["metadata"]["uid"])
        if worker is not None:
            worker.stop(delete_from_api=False)


async def run_agent(config: NodeConfig, stop: asyncio.Event) -> None:
    agent = Agent(config)
    with contextlib.suppress(asyncio.CancelledError):
        await agent.run(stop)
