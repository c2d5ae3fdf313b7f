"""`cluster down` leaves nothing behind: no pod process (also of a node agent that was
SIGKILLed and restarted, or SIGKILLed and never restarted), no network namespace, none
of the folders the nodes made on this machine (hostPath, subPath, mount points).

The test takes the session's cluster down and brings it up again (same nodes, labels
and test-session bookkeeping) for the tests after it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from devcluster_fixture import _locked
from test_node_e2e import apply, get, wait_for

from devcluster import leftovers, network

HOST_DIR = Path(f"/run/pdc-teardown-test-{network.INSTANCE}")
MOUNT_POINT = Path(f"/tmp/pdc-teardown-test-{network.INSTANCE}/mnt")


def _pod(name: str, node: str) -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: default, labels: {{test: teardown}}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  containers:
  - name: echo
    image: registry.k8s.io/gateway-api/echo-basic:v1.6.3
    env:
    - {{name: NODE_NAME, valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}}}
    volumeMounts: [{{name: host, mountPath: {MOUNT_POINT}, subPathExpr: $(NODE_NAME)}}]
    readinessProbe: {{httpGet: {{path: /, port: 3000}}, periodSeconds: 1}}
  volumes: [{{name: host, hostPath: {{path: {HOST_DIR}, type: DirectoryOrCreate}}}}]
"""


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] == "Z" else fields[19]


def _container_pid(cluster: Any, node: str, pod: str) -> int:
    for record in (Path(cluster.folder) / "nodes" / node / "pods").glob("*/record.json"):
        data = json.loads(record.read_text())
        if (data["namespace"], data["name"]) == ("default", pod) and data["containers"]:
            return int(data["containers"]["echo"]["pid"])
    raise AssertionError(f"no record of pod {pod} on {node}")


@contextlib.contextmanager
def _brought_back_up(cluster: Any) -> Iterator[None]:
    """Whatever the test does to the cluster, it is up again afterwards, with the test
    sessions' bookkeeping (devcluster_fixture) that `down` removed with its folder."""
    folder = Path(cluster.folder)
    started_by_tests = (folder / "started-by-tests").exists()
    users = [p.name for p in (folder / "test-users").glob("*")]
    try:
        yield
    finally:
        with _locked(folder):
            cluster.down(quiet=True)
            cluster.up()
            if started_by_tests:
                (folder / "started-by-tests").touch()
            (folder / "test-users").mkdir(exist_ok=True)
            for user in users:
                (folder / "test-users" / user).touch()


def test_down_stops_every_pod_process_and_removes_what_the_nodes_made(devcluster: Any) -> None:
    cluster = devcluster
    if cluster.node_count < 2:
        pytest.skip("needs two nodes (PROPYLON_DEVCLUSTER_NODES)")
    first, second = (n.name for n in network.nodes(2))
    apply(cluster, _pod("adopted", first) + "---" + _pod("orphaned", second))

    def ready() -> bool:
        pods = get(cluster, "pods", "-n", "default", "-l", "test=teardown")["items"]
        conditions = [
            {c["type"]: c["status"] for c in p.get("status", {}).get("conditions", [])}
            for p in pods
        ]
        return len(pods) == 2 and all(c.get("Ready") == "True" for c in conditions)

    with _brought_back_up(cluster):
        wait_for("both pods Ready", ready, 120)
        pids = {
            pod: _container_pid(cluster, node, pod)
            for pod, node in (("adopted", first), ("orphaned", second))
        }
        started = {pod: _start_time(pid) for pod, pid in pids.items()}
        assert all(started.values()), started
        assert (HOST_DIR / first).is_dir() and (HOST_DIR / second).is_dir()
        assert MOUNT_POINT.is_dir()

        # node-1's agent is killed and restarted: the new one adopts the running pod.
        # node-2's agent is killed for good: nothing of its own stops its pod any more.
        adopted_line = f"container echo adopted (pid {pids['adopted']})"
        log = Path(cluster.folder) / "logs" / "node-1.log"
        for agent in ("node-1", "node-2"):
            pid = cluster.pid(agent)
            assert pid is not None, f"{agent}'s agent is not running"
            os.kill(pid, signal.SIGKILL)
        cluster.restart("node-1")
        wait_for("node-1's new agent to adopt its pod", lambda: adopted_line in log.read_text())

        cluster.down()

        survivors = [pod for pod, pid in pids.items() if _start_time(pid) == started[pod]]
        assert not survivors, f"pod processes still running after `cluster down`: {survivors}"
        assert not leftovers.marked_processes(Path(cluster.folder))
        assert not network.namespaces()
        assert not HOST_DIR.exists(), "the hostPath folder the nodes made is still there"
        assert not MOUNT_POINT.exists(), "a mount point the nodes made is still there"
