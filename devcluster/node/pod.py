"""One pod on this node: its network, volumes and container processes, from creation (or
adoption after an agent restart) to deletion, with its status reported as it changes."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightkube import ApiError

from devcluster import images
from devcluster.node import netns, probes
from devcluster.node.api import API_ERRORS, NodeApi, now_rfc3339
from devcluster.node.backoff import CrashBackoff, should_restart
from devcluster.node.config import NodeConfig
from devcluster.node.envvars import (
    ConfigError,
    PodFacts,
    container_env,
    expand_all,
    referenced_objects,
)
from devcluster.node.hostdirs import LEDGER_NAME, HostDirs
from devcluster.node.ipam import PodIPAllocator, PoolExhausted
from devcluster.node.process import ContainerProcess, launch_argv
from devcluster.node.state import ContainerRecord, PodRecord
from devcluster.node.status import Conditions, ContainerStatus, phase, pod_conditions
from devcluster.node.volumes import PodVolumes, VolumeWriter, remove_tree

Obj = dict[str, Any]
log = logging.getLogger("devcluster.node")
SETUP_RETRY_SECONDS = 2.0
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class NodeContext:
    config: NodeConfig
    api: NodeApi
    ipam: PodIPAllocator


class PodWorker:
    def __init__(self, ctx: NodeContext, pod: Obj, record: PodRecord | None) -> None:
        self.ctx = ctx
        self.pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.dir: Path = ctx.config.pods_dir / self.uid
        spec = pod["spec"]
        self.host_network = bool(spec.get("hostNetwork"))
        self.record = record or PodRecord(
            uid=self.uid,
            namespace=self.namespace,
            name=self.name,
            netns=None if self.host_network else netns.pod_netns_name(ctx.config.name, self.uid),
            veth=None if self.host_network else netns.host_veth_name(self.uid),
        )
        self.containers = [
            ContainerStatus(name=c["name"], image=c["image"]) for c in spec["containers"]
        ]
        self.init_containers = [
            ContainerStatus(name=c["name"], image=c["image"])
            for c in spec.get("initContainers", [])
        ]
        self.initialized = not self.init_containers
        for status in self.containers if self.init_containers else []:
            status.state = {"waiting": {"reason": "PodInitializing"}}
        if record is not None:
            self._restore_finished(pod)
        self.conditions = Conditions()
        self.pod_ip = ""
        self.network_ready = False
        self.volumes: PodVolumes | None = None
        self.start_time = now_rfc3339()
        self._processes: dict[str, ContainerProcess] = {}
        self._stopping = asyncio.Event()
        self._dirty = asyncio.Event()
        self._delete_from_api = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._secrets: dict[str, Obj | None] = {}
        self._config_maps: dict[str, Obj | None] = {}
        self._volume_writer: VolumeWriter | None = None
        self._network_released = False
        self.done = asyncio.Event()

    # Called by the agent -------------------------------------------------------------
    def update(self, pod: Obj) -> None:
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            self.stop(delete_from_api=True)

    def stop(self, delete_from_api: bool) -> None:
        self._delete_from_api = self._delete_from_api or delete_from_api
        self._stopping.set()

    async def run(self) -> None:
        reporter = asyncio.create_task(self._report())
        try:
            self._dirty.set()
            if await self._set_up():
                self._tasks.append(asyncio.create_task(self._refresh_tokens()))
                # Init containers first, in a task: a stop must not wait for them to end.
                init = asyncio.create_task(self._initialize())
                self._tasks.append(init)
                stopping = asyncio.create_task(self._stopping.wait())
                await asyncio.wait([init, stopping], return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                if not self._stopping.is_set() and init.result():
                    policy = self.pod["spec"].get("restartPolicy", "Always")
                    self._tasks += [
                        asyncio.create_task(self._supervise(spec, status, policy))
                        for spec, status in zip(
                            self.pod["spec"]["containers"], self.containers, strict=True
                        )
                    ]
            await self._stopping.wait()
            await self._tear_down()
            reporter.cancel()
            if self._delete_from_api:
                await self.ctx.api.delete_pod_now(self.namespace, self.name)
                log.info("pod %s/%s deleted", self.namespace, self.name)
        except Exception:
            log.exception("pod %s/%s: worker failed", self.namespace, self.name)
            await self._tear_down()
        finally:
            reporter.cancel()
            self.done.set()

    async def _initialize(self) -> bool:
        """Run the init containers one after the other, each to success; False when one
        failed for good (restartPolicy Never) or the pod is going away."""
        # An init container is retried on failure unless the pod never restarts anything.
        never = self.pod["spec"].get("restartPolicy", "Always") == "Never"
        policy = "Never" if never else "OnFailure"
        specs = self.pod["spec"].get("initContainers", [])
        for spec, status in zip(specs, self.init_containers, strict=True):
            await self._supervise(spec, status, policy)
            if not (status.final and status.state["terminated"].get("exitCode") == 0):
                return False
        self.initialized = True
        for status in self.containers:
            if status.state.get("waiting", {}).get("reason") == "PodInitializing":
                status.state = {"waiting": {"reason": "ContainerCreating"}}
        self._dirty.set()
        return True

    # Setup --------------------------------------------------------------------------
    async def _set_up(self) -> bool:
        """Network and volumes; retried until they work or the pod is going away."""
        config = self.ctx.config
        if self._pod_done():  # finished before an agent restart: nothing to set up again
            self.pod_ip = self.pod.get("status", {}).get("podIP", "")
            self._network_released = True
            return True
        while not self._stopping.is_set():
            try:
                if self.host_network:
                    self.pod_ip = config.node_ip
                else:
                    address = self.ctx.ipam.allocate(self.uid)
                    self.pod_ip = str(address)
                    assert self.record.netns and self.record.veth
                    self.record.save(self.dir)  # before the netns: cleanup can find it
                    await netns.create_pod_network(
                        self.record.netns,
                        self.record.veth,
                        config.bridge,
                        address,
                        config.pod_network,
                        self.ctx.ipam.gateway,
                    )
                self.network_ready = True
                self.record.save(self.dir)
                await self._fetch_referenced()
                writer = VolumeWriter(
                    self.dir / "volumes",
                    self.pod,
                    self._facts(),
                    self._secrets,
                    self._config_maps,
                    self._token,
                    HostDirs(config.state_dir / LEDGER_NAME),
                )
                self.volumes = await writer.write_all()
                self._volume_writer = writer
                return True
            except (ConfigError, PoolExhausted, netns.CommandFailed, *API_ERRORS) as error:
                message = str(error)
                log.warning("pod %s/%s: setup: %s", self.namespace, self.name, message)
                for status in self.containers:
                    status.state = {"waiting": {"reason": "ContainerCreating", "message": message}}
                self._dirty.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), SETUP_RETRY_SECONDS)
        return False

    def _facts(self) -> PodFacts:
        return PodFacts(pod_ip=self.pod_ip, host_ip=self.ctx.config.node_ip)

    async def _fetch_referenced(self) -> None:
        wanted = referenced_objects(self.pod)
        api = self.ctx.api
        self._secrets = {n: await api.get_secret(self.namespace, n) for n in wanted.secrets}
        self._config_maps = {
            n: await api.get_config_map(self.namespace, n) for n in wanted.config_maps
        }

    async def _token(self, audience: str | None, seconds: int) -> tuple[str, datetime.datetime]:
        account = self.pod["spec"].get("serviceAccountName") or "default"
        token = await self.ctx.api.request_token(
            self.namespace,
            account,
            self.name,
            self.uid,
            seconds,
            [audience] if audience else [],
        )
        return token.token, token.expires

    async def _refresh_tokens(self) -> None:
        while self.volumes is not None:
            refresh_at = self.volumes.refresh_at
            if refresh_at is None:
                return
            wait = (refresh_at - datetime.datetime.now(datetime.UTC)).total_seconds()
            await asyncio.sleep(max(wait, 1.0))
            try:
                assert self._volume_writer is not None
                await self._volume_writer.refresh_tokens(self.volumes)
            except (ConfigError, *API_ERRORS) as error:
                log.warning("pod %s/%s: token refresh: %s", self.namespace, self.name, error)
                self.volumes.refresh_at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(
                    seconds=10
                )

    # Containers -----------------------------------------------------------------------
    def _base_env(self, image: images.Image) -> dict[str, str]:
        config = self.ctx.config
        path = BASE_PATH
        if any(str(p).startswith(sys.prefix) for p in image.executables.values()):
            path = f"{sys.prefix}/bin:{path}"
        # What every pod sees for the `kubernetes` Service (named after its port 443), but
        # pointing at the API server itself: nothing routes ClusterIPs (no kube-proxy).
        host, port = config.api_host, str(config.api_port)
        return {
            "PATH": path,
            "HOME": "/root",
            "HOSTNAME": self.name,
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
            "KUBERNETES_PORT": f"tcp://{host}:{port}",
            "KUBERNETES_PORT_443_TCP": f"tcp://{host}:{port}",
            "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
            "KUBERNETES_PORT_443_TCP_ADDR": host,
            "KUBERNETES_PORT_443_TCP_PORT": port,
        }

    def _prepare(self, spec: Obj) -> tuple[list[str], dict[str, str]]:
        """argv and env of the container; ImageError, ExecutableNotFound or ConfigError say
        why not."""
        image = images.resolve(spec["image"])
        env = container_env(
            self.pod,
            spec,
            self._facts(),
            self._secrets,
            self._config_maps,
            self._base_env(image),
        )
        argv = image.argv(expand_all(spec.get("command"), env), expand_all(spec.get("args"), env))
        assert self.volumes is not None
        mounts = self.volumes.mounts(spec, env)
        self.volumes.host_dirs.mount_points([m.target for m in mounts])
        return launch_argv(argv, self.record.netns, mounts, spec.get("workingDir")), env

    def _start(self, spec: Obj, status: ContainerStatus) -> ContainerProcess | None:
        try:
            argv, env = self._prepare(spec)
        except images.ImageError as error:
            self._waiting(status, "ErrImagePull", str(error))
            return None
        except images.ExecutableNotFound as error:
            self._waiting(status, "RunContainerError", str(error))
            return None
        except ConfigError as error:
            self._waiting(status, "CreateContainerConfigError", str(error))
            return None
        log_file = self.dir / "logs" / f"{spec['name']}.log"
        process = ContainerProcess.spawn(argv, env, log_file)
        started_at = now_rfc3339()
        self.record.containers[spec["name"]] = ContainerRecord(
            process.pid, process.started, started_at, status.restart_count
        )
        self.record.save(self.dir)
        log.info(
            "pod %s/%s: container %s started (pid %d)",
            self.namespace,
            self.name,
            spec["name"],
            process.pid,
        )
        return process

    def _restore_finished(self, pod: Obj) -> None:
        """Containers the API reports terminated for good stay so across an agent restart
        (a completed restartPolicy: Never pod is not run again)."""
        policy = pod["spec"].get("restartPolicy", "Always")
        pod_status = pod.get("status", {})
        for statuses, field, restart_policy in (
            (self.containers, "containerStatuses", policy),
            (self.init_containers, "initContainerStatuses", "OnFailure"),  # done once done
        ):
            reported = {s["name"]: s for s in pod_status.get(field) or []}
            for status in statuses:
                terminated = reported.get(status.name, {}).get("state", {}).get("terminated")
                code = int((terminated or {}).get("exitCode", 0))
                if terminated and not should_restart(restart_policy, code):
                    status.state = {"terminated": terminated}
                    status.restart_count = reported[status.name].get("restartCount", 0)
                    status.final = True

    def _adopt(self, name: str, status: ContainerStatus, policy: str) -> ContainerProcess | None:
        record = self.record.containers.get(name)
        if record is None or status.final:
            return None
        status.restart_count = record.restart_count
        process = ContainerProcess.adopt(record.pid, record.started)
        if process is None:
            # It ended while the agent was away, with an exit code nobody saw.
            unknown = {
                "exitCode": 137,
                "reason": "ContainerStatusUnknown",
                "message": "the process ended while the node agent was not running",
                "startedAt": record.started_at,
                "finishedAt": now_rfc3339(),
            }
            if should_restart(policy, 137):
                status.last_state = {"terminated": unknown}
                status.restart_count += 1
            else:
                status.state = {"terminated": unknown}
                status.final = True
            return None
        status.state = {"running": {"startedAt": record.started_at}}
        log.info(
            "pod %s/%s: container %s adopted (pid %d)", self.namespace, self.name, name, record.pid
        )
        return process

    def _waiting(self, status: ContainerStatus, reason: str, message: str) -> None:
        log.warning(
            "pod %s/%s: container %s: %s: %s",
            self.namespace,
            self.name,
            status.name,
            reason,
            message,
        )
        status.state = {"waiting": {"reason": reason, "message": message}}
        self._dirty.set()

    async def _sleep_unless_stopping(self, seconds: float) -> bool:
        """True when the pod is stopping (the sleep was cut short)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()

    async def _supervise(self, spec: Obj, status: ContainerStatus, policy: str) -> None:
        backoff = CrashBackoff()
        process = self._adopt(spec["name"], status, policy)
        if status.final:
            self._container_finished()
            return
        while not self._stopping.is_set():
            if process is None:
                process = self._start(spec, status)
                if process is None:  # waiting with a reason; try again later
                    if await self._sleep_unless_stopping(backoff.delay_after_exit(0)):
                        return
                    await self._fetch_referenced_quietly()
                    continue
                status.state = {"running": {"startedAt": now_rfc3339()}}
            self._processes[spec["name"]] = process
            status.container_id = f"devcluster://{self.uid[:8]}-{spec['name']}-{process.pid}"
            status.started = True
            status.ready = "readinessProbe" not in spec
            self._dirty.set()
            began = time.monotonic()
            probing = asyncio.create_task(self._probe(spec, status, process))
            code = await process.wait()
            probing.cancel()
            if self._stopping.is_set():
                return
            finished = now_rfc3339()
            terminated: Obj = {
                "exitCode": 137 if code is None else code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": status.state.get("running", {}).get("startedAt"),
                "finishedAt": finished,
            }
            if code is None:
                terminated["reason"] = "ContainerStatusUnknown"
                terminated["message"] = "adopted process ended; its exit code is not known"
            status.ready = False
            status.started = False
            process = None
            if not should_restart(policy, terminated["exitCode"]):
                status.state = {"terminated": terminated}
                status.final = True
                self._container_finished()
                return
            status.last_state = {"terminated": terminated}
            delay = backoff.delay_after_exit(time.monotonic() - began)
            self._waiting(
                status,
                "CrashLoopBackOff",
                f"back-off {delay:.0f}s restarting failed container={spec['name']} "
                f"pod={self.name}_{self.namespace}({self.uid})",
            )
            if await self._sleep_unless_stopping(delay):
                return
            status.restart_count += 1  # counted when it restarts, as the kubelet does

    def _pod_done(self) -> bool:
        return phase(self.init_containers, self.containers) in ("Succeeded", "Failed")

    def _container_finished(self) -> None:
        """Once the pod has Succeeded or Failed, its network goes, as the kubelet removes a
        finished pod's sandbox; its podIP stays in the status, its dirs until deletion."""
        self._dirty.set()
        if self._pod_done() and not self._network_released:
            self._network_released = True
            self._tasks.append(asyncio.create_task(self._release_network()))

    async def _release_network(self) -> None:
        if self.record.netns and self.record.veth:
            await netns.delete_pod_network(self.record.netns, self.record.veth)
        self.ctx.ipam.release(self.uid)
        self.network_ready = False
        self._dirty.set()
        log.info("pod %s/%s finished: network released", self.namespace, self.name)

    async def _fetch_referenced_quietly(self) -> None:
        with contextlib.suppress(*API_ERRORS):
            await self._fetch_referenced()

    async def _probe(self, spec: Obj, status: ContainerStatus, process: ContainerProcess) -> None:
        readiness = spec.get("readinessProbe")
        liveness = spec.get("livenessProbe")
        tasks = []
        if readiness:
            tasks.append(self._probe_loop(readiness, spec, status, process, readiness=True))
        if liveness:
            tasks.append(self._probe_loop(liveness, spec, status, process, readiness=False))
        await asyncio.gather(*tasks)

    async def _probe_loop(
        self,
        probe: Obj,
        spec: Obj,
        status: ContainerStatus,
        process: ContainerProcess,
        readiness: bool,
    ) -> None:
        state = probes.ProbeState(probe, initial=not readiness)
        await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)))
        period = float(probe.get("periodSeconds", 10))
        while True:
            ok = await probes.run_probe(probe, spec, self.pod_ip, process.pid)
            result = state.record(ok)
            if readiness and result != status.ready:
                status.ready = result
                self._dirty.set()
            if not readiness and not result:
                log.info(
                    "pod %s/%s: container %s failed liveness, restarting",
                    self.namespace,
                    self.name,
                    spec["name"],
                )
                await process.stop(self._grace_seconds())
                return
            # Until ready, probe every second: a pod becomes Ready promptly, as often
            # matters to tests, without a busier period once it is.
            await asyncio.sleep(min(period, 1.0) if readiness and not result else period)

    # Status -------------------------------------------------------------------------------
    def status(self) -> Obj:
        now = now_rfc3339()
        conditions = pod_conditions(
            self.conditions, self.network_ready, self.initialized, self.containers, now
        )
        status: Obj = {
            "phase": phase(self.init_containers, self.containers),
            "hostIP": self.ctx.config.node_ip,
            "hostIPs": [{"ip": self.ctx.config.node_ip}],
            "startTime": self.start_time,
            "conditions": conditions,
            "containerStatuses": [c.to_api() for c in self.containers],
        }
        if self.init_containers:
            status["initContainerStatuses"] = [c.to_api() for c in self.init_containers]
        if self.pod_ip:
            status["podIP"] = self.pod_ip
            status["podIPs"] = [{"ip": self.pod_ip}]
        return status

    async def _report(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.ctx.api.patch_pod_status(self.namespace, self.name, self.status())
            except ApiError as error:
                if error.status.code == 404:
                    return
                log.warning("pod %s/%s: status: %s", self.namespace, self.name, error)
                await asyncio.sleep(1.0)
                self._dirty.set()
            except API_ERRORS as error:  # API server away: keep the news for later
                log.warning("pod %s/%s: status: %s", self.namespace, self.name, error)
                await asyncio.sleep(1.0)
                self._dirty.set()

    # Teardown ---------------------------------------------------------------------------
    def _grace_seconds(self) -> float:
        meta, spec = self.pod["metadata"], self.pod["spec"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        if not self._delete_from_api:
            grace = min(grace, self.ctx.config.shutdown_grace_seconds)
        return float(grace)

    async def _tear_down(self) -> None:
        """SIGTERM, then SIGKILL after the grace period; then the netns, the IP, the dirs."""
        self._stopping.set()
        grace = self._grace_seconds()
        processes = list(self._processes.values())
        for record in self.record.containers.values():  # adopted or started, all of them
            adopted = ContainerProcess.adopt(record.pid, record.started)
            if adopted and all(p.pid != adopted.pid for p in processes):
                processes.append(adopted)
        await asyncio.gather(*(p.stop(grace) for p in processes))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await release_pod(self.ctx, self.record, self.dir)


async def release_pod(ctx: NodeContext, record: PodRecord, pod_dir: Path) -> None:
    """Remove what the pod had on the node: processes left over, netns, IP, dirs."""
    for container in record.containers.values():
        process = ContainerProcess.adopt(container.pid, container.started)
        if process is not None:
            process.signal(signal.SIGKILL)
            await process.wait()
    if record.netns and record.veth:
        await netns.delete_pod_network(record.netns, record.veth)
    ctx.ipam.release(record.uid)
    remove_tree(pod_dir)
