"""The node agent against the real dev cluster (kube-apiserver, controllers, scheduler).

Every pod here is pinned to node-1 (nodeSelector): these tests are about one agent, and
they read its state dir and signal its process.

Needs the session-scoped ``devcluster`` fixture (tests/devcluster/conftest.py): the
cluster object with ``kubeconfig``, ``kubectl(*args)``, ``folder``, ``pid(name)`` and
``restart(name)``. Every wait polls a condition with a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_for

from devcluster import network

NODE = network.nodes(1)[0].name
# The cluster's name for node 1's agent process (pid file, restart), in every instance.
NODE_AGENT = "node-1"
POD_CIDR_PREFIX = network.nodes(1)[0].pod_cidr.removesuffix("0/24")


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Any:
    try:
        return request.getfixturevalue("devcluster")
    except pytest.FixtureLookupError:
        pytest.skip("needs the session `devcluster` fixture of tests/devcluster/conftest.py")


def get(cluster: Any, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json"))


def apply(cluster: Any, manifest: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=manifest)


@pytest.fixture
def namespace(cluster: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    name = "node-e2e-" + request.node.name.removeprefix("test_").replace("_", "-")[:30].strip("-")
    cluster.kubectl("create", "namespace", name)
    # Pods are refused until the serviceaccount controller made the namespace's default.
    wait_for(
        f"the default ServiceAccount of {name}",
        lambda: cluster.kubectl("get", "serviceaccount", "-n", name, "default", check=False),
    )
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
def mount_point(cluster: Any, namespace: str) -> Iterator[str]:
    """A mountPath for the test's pods. The agent creates a missing mount point on the
    host's filesystem (empty; the mount itself stays in the pod's mount namespace), so it
    is removed once the namespace's pods are gone."""
    path = Path("/tmp") / f"pdc-{namespace}"
    yield str(path)
    cluster.kubectl("delete", "pods", "--all", "-n", namespace, "--timeout=60s")
    if path.is_dir():
        for directory in sorted(path.rglob("*"), reverse=True):  # deepest first
            directory.rmdir()  # fails (as it should) if anything was written through
        path.rmdir()


def state_dir(cluster: Any) -> Path:
    return Path(cluster.folder) / "nodes" / NODE


def pod_records(cluster: Any) -> dict[str, dict[str, Any]]:
    pods = state_dir(cluster) / "pods"
    records = {}
    for record in pods.glob("*/record.json"):
        data = json.loads(record.read_text())
        records[f"{data['namespace']}/{data['name']}"] = data
    return records


def container_pids(cluster: Any, namespace: str) -> dict[str, int]:
    return {
        key: container["pid"]
        for key, record in pod_records(cluster).items()
        if key.startswith(namespace + "/")
        for container in record["containers"].values()
    }


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def pod_netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.startswith(f"pdc-pod-{NODE}-")}


def ready_pods(cluster: Any, namespace: str, selector: str, count: int) -> list[Any] | None:
    pods = get(cluster, "pods", "-n", namespace, "-l", selector)["items"]
    ready = [
        p
        for p in pods
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p.get("status", {}).get("conditions", [])
        )
        and not p["metadata"].get("deletionTimestamp")
    ]
    return ready if len(ready) == count and len(pods) == count else None


def echo_deployment(namespace: str, replicas: int) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: echo, namespace: {namespace}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: echo}}}}
  template:
    metadata: {{labels: {{app: echo}}}}
    spec:
      nodeSelector: {{kubernetes.io/hostname: {NODE}}}
      containers:
      - name: echo
        image: gcr.io/k8s-staging-gateway-api/echo-basic:v20240412-v1.0.0-394-g40c666fd
        env:
        - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
        - {{name: NAMESPACE, valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}}}
        ports: [{{containerPort: 3000}}]
        readinessProbe: {{httpGet: {{path: /, port: 3000}}, periodSeconds: 5}}
---
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: {namespace}}}
spec: {{selector: {{app: echo}}, ports: [{{port: 80, targetPort: 3000}}]}}
"""


def echo_json(ip: str) -> dict[str, Any]:
    route = subprocess.run(["ip", "route", "get", ip], capture_output=True, text=True).stdout
    assert network.HOST_BRIDGE in route, f"no route to {ip} through the cluster's bridge: {route}"
    with urllib.request.urlopen(f"http://{ip}:3000/probe", timeout=5) as response:
        return dict(json.loads(response.read()))


def test_node_is_registered_ready_with_a_fresh_lease(cluster: Any) -> None:
    node = get(cluster, "node", NODE)
    conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert conditions["Ready"] == "True"
    assert node["spec"]["podCIDR"] == POD_CIDR_PREFIX + "0/24"
    assert {"type": "InternalIP", "address": network.nodes(1)[0].ip} in node["status"]["addresses"]
    assert int(node["status"]["allocatable"]["pods"]) > 0
    lease = get(cluster, "lease", "-n", "kube-node-lease", NODE)
    assert lease["spec"]["holderIdentity"] == NODE
    first = lease["spec"]["renewTime"]
    wait_for(
        "the Lease to be renewed",
        lambda: get(cluster, "lease", "-n", "kube-node-lease", NODE)["spec"]["renewTime"] != first,
        timeout=30,
    )


def test_echo_deployment_runs_serves_scales_to_zero_and_leaves_nothing(
    cluster: Any, namespace: str
) -> None:
    apply(cluster, echo_deployment(namespace, 2))
    pods = wait_for("2 echo pods Ready", lambda: ready_pods(cluster, namespace, "app=echo", 2))
    ips = sorted(p["status"]["podIP"] for p in pods)
    assert all(ip.startswith(POD_CIDR_PREFIX) for ip in ips)
    assert len(set(ips)) == 2
    for pod in pods:
        status = pod["status"]
        assert status["hostIP"] == network.nodes(1)[0].ip
        assert status["containerStatuses"][0]["state"].get("running")
        body = echo_json(status["podIP"])
        assert body["pod"] == pod["metadata"]["name"]
        assert body["namespace"] == namespace

    def slice_addresses() -> list[str] | None:
        slices = get(
            cluster, "endpointslices", "-n", namespace, "-l", "kubernetes.io/service-name=echo"
        )["items"]
        found = sorted(a for s in slices for e in s.get("endpoints") or [] for a in e["addresses"])
        return found if found == ips else None

    wait_for("the EndpointSlice to list both pods", slice_addresses)
    pids = container_pids(cluster, namespace)
    assert len(pids) == 2 and all(alive(pid) for pid in pids.values())
    netns_before = pod_netns()

    cluster.kubectl("scale", "-n", namespace, "deployment/echo", "--replicas=0")
    wait_for("the echo pods to be gone", lambda: not get(cluster, "pods", "-n", namespace)["items"])
    wait_for("the processes to exit", lambda: not any(alive(p) for p in pids.values()))
    assert not container_pids(cluster, namespace)
    uids = {p["metadata"]["uid"][:8] for p in pods}
    assert not {n for n in pod_netns() if n[-8:] in uids}
    assert {n for n in netns_before if n[-8:] in uids}, "the pods' netns had the agreed names"

    cluster.kubectl("delete", "-n", namespace, "deployment/echo")
    wait_for(
        "the ReplicaSet to be gone",
        lambda: not get(cluster, "replicasets", "-n", namespace)["items"],
    )
    assert not container_pids(cluster, namespace)


def test_pod_token_gets_what_its_role_allows_and_403_otherwise(
    cluster: Any, namespace: str
) -> None:
    apply(
        cluster,
        f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: reader, namespace: {namespace}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: read-configmaps, namespace: {namespace}}}
rules: [{{apiGroups: [""], resources: [configmaps], verbs: [get]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: reader, namespace: {namespace}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-configmaps}}
subjects: [{{kind: ServiceAccount, name: reader, namespace: {namespace}}}]
""",
    )
    apply(
        cluster,
        f"""
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: {namespace}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {NODE}}}
  serviceAccountName: reader
  restartPolicy: Never
  containers:
  - name: client
    image: busybox:1.36
    command:
    - sh
    - -c
    - |
      sa=/var/run/secrets/kubernetes.io/serviceaccount
      ns=$(cat $sa/namespace)
      api=https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/api/v1/namespaces/$ns
      get() {{ curl -s -o /dev/null -w '%{{http_code}}' --cacert $sa/ca.crt \\
               -H "Authorization: Bearer $(cat $sa/token)" "$api/$1"; }}
      allowed=$(get configmaps/kube-root-ca.crt); denied=$(get secrets)
      echo "allowed=$allowed denied=$denied"
      test "$allowed" = 200 && test "$denied" = 403
""",
    )

    def finished() -> str | None:
        phase = get(cluster, "pod", "-n", namespace, "client")["status"].get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_for("the client pod to finish", finished)
    uid = get(cluster, "pod", "-n", namespace, "client")["metadata"]["uid"]
    log = (state_dir(cluster) / "pods" / uid / "logs" / "client.log").read_text()
    assert "allowed=200 denied=403" in log, log
    assert phase == "Succeeded"
    # The token was mounted in the pod's own mount namespace only.
    assert not Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists()


def test_env_volumes_and_var_expansion_reach_the_process(
    cluster: Any, namespace: str, mount_point: str
) -> None:
    apply(
        cluster,
        f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: {namespace}}}
data: {{greeting: hello, f: from-configmap}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds, namespace: {namespace}}}
stringData: {{pw: s3cret}}
---
apiVersion: v1
kind: Pod
metadata: {{name: env, namespace: {namespace}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {NODE}}}
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: [sh, -c, 'echo "$(GREETING) $0 $POD_IP $NODE"; cat $(DIR)/cfg/f $(DIR)/creds/pw']
    args: [$(PASSWORD)-arg]
    env:
    - {{name: GREETING, valueFrom: {{configMapKeyRef: {{name: settings, key: greeting}}}}}}
    - {{name: PASSWORD, valueFrom: {{secretKeyRef: {{name: creds, key: pw}}}}}}
    - {{name: DIR, value: {mount_point}}}
    - {{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
    - {{name: NODE, valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}}}
    volumeMounts:
    - {{name: cfg, mountPath: {mount_point}/cfg}}
    - {{name: creds, mountPath: {mount_point}/creds, readOnly: true}}
  volumes:
  - {{name: cfg, configMap: {{name: settings}}}}
  - {{name: creds, secret: {{secretName: creds}}}}
""",
    )
    wait_for(
        "the env pod to succeed",
        lambda: get(cluster, "pod", "-n", namespace, "env")["status"].get("phase") == "Succeeded",
    )
    pod = get(cluster, "pod", "-n", namespace, "env")
    log = (state_dir(cluster) / "pods" / pod["metadata"]["uid"] / "logs" / "main.log").read_text()
    ip = pod["status"]["podIP"]
    assert log.splitlines() == [f"hello s3cret-arg {ip} {NODE}", "from-configmaps3cret"], log
    # The mounts were the container's own: the host sees empty mount points at most.
    assert not any((Path(mount_point) / "cfg").iterdir())
    # A finished pod's network is released (its sandbox, as the kubelet says); podIP stays.
    uid8 = pod["metadata"]["uid"][:8]
    wait_for(
        "the finished pod's netns to go", lambda: not any(n.endswith(uid8) for n in pod_netns())
    )
    assert get(cluster, "pod", "-n", namespace, "env")["status"]["podIP"] == ip


def test_unknown_image_and_crashing_container_are_reported(cluster: Any, namespace: str) -> None:
    apply(
        cluster,
        f"""
apiVersion: v1
kind: Pod
metadata: {{name: unknown, namespace: {namespace}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {NODE}}}
  containers: [{{name: c, image: docker.io/library/nginx:1.27}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: crasher, namespace: {namespace}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {NODE}}}
  containers: [{{name: c, image: busybox, command: [sh, -c, "exit 3"]}}]
""",
    )

    def waiting(name: str, reason: str) -> dict[str, Any] | None:
        statuses = get(cluster, "pod", "-n", namespace, name)["status"].get("containerStatuses")
        state = statuses[0]["state"] if statuses else {}
        return statuses[0] if state.get("waiting", {}).get("reason") == reason else None

    unknown = wait_for("ErrImagePull", lambda: waiting("unknown", "ErrImagePull"))
    assert "docker.io/library/nginx:1.27" in unknown["state"]["waiting"]["message"]

    def restarted() -> dict[str, Any] | None:
        status = waiting("crasher", "CrashLoopBackOff")
        return status if status and status["restartCount"] >= 1 else None

    crasher = wait_for("the crashing container to be restarted once", restarted, timeout=40)
    assert crasher["lastState"]["terminated"]["exitCode"] == 3
    assert "back-off 20s" in crasher["state"]["waiting"]["message"]


def test_agent_killed_and_restarted_adopts_its_pods_without_duplicates(
    cluster: Any, namespace: str
) -> None:
    apply(cluster, echo_deployment(namespace, 2))
    apply(
        cluster,
        f"""
apiVersion: v1
kind: Pod
metadata: {{name: once, namespace: {namespace}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {NODE}}}
  restartPolicy: Never
  containers: [{{name: c, image: busybox, command: [echo, ran]}}]
""",
    )
    wait_for("2 echo pods Ready", lambda: ready_pods(cluster, namespace, "app=echo", 2))
    once = wait_for("the run-once pod to succeed", lambda: succeeded(cluster, namespace, "once"))
    pids = {k: v for k, v in container_pids(cluster, namespace).items() if "/echo-" in k}
    survivor, victim = sorted(pids)
    os.kill(cluster.pid(NODE_AGENT), signal.SIGKILL)
    os.kill(pids[victim], signal.SIGKILL)  # dies while the agent is away
    cluster.restart(NODE_AGENT)

    def replaced() -> dict[str, int] | None:
        now = container_pids(cluster, namespace)
        return now if now.get(victim, pids[victim]) != pids[victim] else None

    after = {
        k: v for k, v in wait_for("the dead one started again", replaced).items() if "/echo-" in k
    }
    assert after[survivor] == pids[survivor], "the running container was adopted, not restarted"
    assert alive(after[survivor]) and alive(after[victim])
    wait_for("both pods Ready again", lambda: ready_pods(cluster, namespace, "app=echo", 2))
    pods = {
        f"{namespace}/{p['metadata']['name']}": p
        for p in get(cluster, "pods", "-n", namespace)["items"]
    }
    assert pods[victim]["status"]["containerStatuses"][0]["restartCount"] == 1
    assert pods[survivor]["status"]["containerStatuses"][0]["restartCount"] == 0
    echo_binaries = [
        p
        for p in Path("/proc").iterdir()
        if p.name.isdigit()
        and (p / "cmdline").exists()
        and b"echo-basic" in (p / "cmdline").read_bytes()
        and int(p.name) in after.values()
    ]
    assert len(echo_binaries) == 2
    # The finished pod is not run again.
    log = state_dir(cluster) / "pods" / once["metadata"]["uid"] / "logs" / "c.log"
    assert log.read_text() == "ran\n"
    assert succeeded(cluster, namespace, "once")


def succeeded(cluster: Any, namespace: str, name: str) -> Any:
    pod = get(cluster, "pod", "-n", namespace, name)
    return pod if pod["status"].get("phase") == "Succeeded" else None


def _neighbour_mac(ip: str) -> str | None:
    """The MAC node-1's namespace has for `ip` on its pod bridge, if any."""
    out = subprocess.run(
        ["ip", "-n", network.nodes(1)[0].netns, "neigh", "show", ip, "dev", "cbr0"],
        capture_output=True,
        text=True,
    ).stdout.split()
    return out[out.index("lladdr") + 1] if "lladdr" in out else None


def _no_pod_leaving(cluster: Any) -> bool:
    """No namespace terminating, no pod deleted but not gone, and no pod network on the
    node left by a pod that no longer exists: the node's pod addresses hold still."""
    if any(n["status"].get("phase") == "Terminating" for n in get(cluster, "ns")["items"]):
        return False
    pods = get(cluster, "pods", "-A")["items"]
    if any(p["metadata"].get("deletionTimestamp") for p in pods):
        return False
    uids = {p["metadata"]["uid"][:8] for p in pods}
    return all(any(n.endswith(uid) for uid in uids) for n in pod_netns())


def test_a_reused_pod_ip_is_reachable_from_the_node_at_once(cluster: Any, namespace: str) -> None:
    """A pod IP is reused as soon as it is free; the node (where Envoy runs) must not keep
    sending to the deleted pod's MAC (a stale neighbour entry blackholed new pods ~40 s)."""
    # No readiness probe: Ready once running, so nothing from the node refreshes its
    # neighbour entry before the check below.
    probe = "        readinessProbe: {httpGet: {path: /, port: 3000}, periodSeconds: 5}\n"
    manifest = echo_deployment(namespace, 1)
    assert probe in manifest
    # Earlier tests' pods still being torn down free lower addresses while this test runs,
    # and the replacement would take one of those instead of reusing the first pod's.
    wait_for("earlier tests' pods to be gone", lambda: _no_pod_leaving(cluster), timeout=120)
    apply(cluster, manifest.replace(probe, ""))
    (first,) = wait_for("an echo pod Ready", lambda: ready_pods(cluster, namespace, "app=echo", 1))
    ip = first["status"]["podIP"]
    wait_for("the pod to answer", lambda: _answers(ip), timeout=10)  # the node learns its MAC
    old_mac = _neighbour_mac(ip)
    assert old_mac is not None

    cluster.kubectl("scale", "-n", namespace, "deployment/echo", "--replicas=0")
    uid = first["metadata"]["uid"][:8]
    wait_for(
        "the pod and its network to be gone",
        lambda: (
            not get(cluster, "pods", "-n", namespace)["items"]
            and not {n for n in pod_netns() if n.endswith(uid)}
        ),
    )
    cluster.kubectl("scale", "-n", namespace, "deployment/echo", "--replicas=1")
    (second,) = wait_for(
        "the replacement pod Ready",
        lambda: ready_pods(cluster, namespace, "app=echo", 1),
    )
    assert second["status"]["podIP"] == ip, "the allocator hands out the lowest free address"
    assert _neighbour_mac(ip) != old_mac
    # From the host, routed through node-1 (retried: the process may still be starting,
    # which is refused; before the fix it was blackholed to the old MAC for ~40 s).
    assert wait_for("the new pod to answer", lambda: _answers(ip), timeout=10)


def _answers(ip: str) -> bool:
    try:
        with socket.create_connection((ip, 3000), timeout=1):
            return True
    except OSError:
        return False


def test_host_network_pod_runs_in_the_node_namespace(cluster: Any, namespace: str) -> None:
    apply(
        cluster,
        f"""
apiVersion: v1
kind: Pod
metadata: {{name: host, namespace: {namespace}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {NODE}}}
  hostNetwork: true
  containers: [{{name: c, image: busybox, command: [sleep, "3600"]}}]
""",
    )
    wait_for("the hostNetwork pod to run", lambda: ready_pods(cluster, namespace, "!none", 1))
    pod = get(cluster, "pod", "-n", namespace, "host")
    assert pod["status"]["podIP"] == pod["status"]["hostIP"] == network.nodes(1)[0].ip
    (pid,) = container_pids(cluster, namespace).values()
    agent = cluster.pid(NODE_AGENT)
    assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink(f"/proc/{agent}/ns/net")
    assert not any(n.endswith(pod["metadata"]["uid"][:8]) for n in pod_netns())


def test_kube_apiserver_restart_is_survived(cluster: Any, namespace: str) -> None:
    apply(cluster, echo_deployment(namespace, 1))
    wait_for("1 echo pod Ready", lambda: ready_pods(cluster, namespace, "app=echo", 1))
    before = container_pids(cluster, namespace)
    cluster.restart("kube-apiserver")
    cluster.kubectl("scale", "-n", namespace, "deployment/echo", "--replicas=2")
    wait_for(
        "a pod created after the restart to be Ready",
        lambda: ready_pods(cluster, namespace, "app=echo", 2),
        timeout=90,
    )
    after = container_pids(cluster, namespace)
    assert all(after[key] == pid for key, pid in before.items()), "no pod was lost or restarted"


def test_agent_stopped_leaves_nothing_then_runs_its_pods_again(
    cluster: Any, namespace: str
) -> None:
    apply(cluster, echo_deployment(namespace, 2))
    wait_for("2 echo pods Ready", lambda: ready_pods(cluster, namespace, "app=echo", 2))
    pids = container_pids(cluster, namespace)
    agent = cluster.pid(NODE_AGENT)
    os.kill(agent, signal.SIGTERM)
    wait_for("the agent to exit", lambda: not alive(agent), timeout=40)
    assert not any(alive(pid) for pid in pids.values())
    assert not pod_netns()
    cluster.restart(NODE_AGENT)
    wait_for("the pods to run again", lambda: ready_pods(cluster, namespace, "app=echo", 2))


def test_init_containers_run_first_and_a_failed_one_fails_the_pod(
    cluster: Any, namespace: str, mount_point: str
) -> None:
    apply(
        cluster,
        f"""
apiVersion: v1
kind: Pod
metadata: {{name: init, namespace: {namespace}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {NODE}}}
  restartPolicy: Never
  initContainers:
  - name: prepare
    image: busybox
    command: [sh, -c, "echo prepared > {mount_point}/state"]
    volumeMounts: [{{name: work, mountPath: {mount_point}}}]
  containers:
  - name: main
    image: busybox
    command: [cat, {mount_point}/state]
    volumeMounts: [{{name: work, mountPath: {mount_point}}}]
  volumes: [{{name: work, emptyDir: {{}}}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: init-fails, namespace: {namespace}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {NODE}}}
  restartPolicy: Never
  initContainers: [{{name: prepare, image: busybox, command: [sh, -c, "exit 7"]}}]
  containers: [{{name: main, image: busybox, command: ["true"]}}]
""",
    )
    pod = wait_for("the init pod to succeed", lambda: succeeded(cluster, namespace, "init"))
    log = state_dir(cluster) / "pods" / pod["metadata"]["uid"] / "logs" / "main.log"
    assert log.read_text() == "prepared\n"
    init_state = pod["status"]["initContainerStatuses"][0]["state"]["terminated"]
    assert (init_state["exitCode"], init_state["reason"]) == (0, "Completed")
    conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conditions["Initialized"] == "True"

    def failed() -> Any:
        pod = get(cluster, "pod", "-n", namespace, "init-fails")
        return pod if pod["status"].get("phase") == "Failed" else None

    pod = wait_for("the pod with a failing init container to fail", failed)
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 7
    main = pod["status"]["containerStatuses"][0]
    assert main["state"]["waiting"]["reason"] == "PodInitializing" and not main["started"]


def test_probes_drive_ready_and_restarts(cluster: Any, namespace: str, mount_point: str) -> None:
    apply(
        cluster,
        f"""
apiVersion: v1
kind: Pod
metadata: {{name: slow-ready, namespace: {namespace}, labels: {{probe: ready}}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {NODE}}}
  containers:
  - name: c
    image: busybox
    command: [sh, -c, "sleep 2; echo ok > {mount_point}/ready; exec sleep 3600"]
    volumeMounts: [{{name: work, mountPath: {mount_point}}}]
    readinessProbe: {{exec: {{command: [cat, {mount_point}/ready]}}, periodSeconds: 1}}
  volumes: [{{name: work, emptyDir: {{}}}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: not-alive, namespace: {namespace}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {NODE}}}
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    livenessProbe: {{tcpSocket: {{port: 9}}, periodSeconds: 1, failureThreshold: 1}}
""",
    )

    def running() -> Any:
        pod = get(cluster, "pod", "-n", namespace, "slow-ready")
        statuses = pod["status"].get("containerStatuses") or [{}]
        return pod if "running" in statuses[0].get("state", {}) else None

    # Running for 2 s before the file exists: not Ready meanwhile.
    pod = wait_for("the slow-ready container to run", running)
    conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conditions["Ready"] == "False", "Ready before the readiness probe passed"
    wait_for(
        "the exec readiness probe to pass",
        lambda: ready_pods(cluster, namespace, "probe=ready", 1),
        timeout=30,
    )

    def restarted() -> Any:
        status = get(cluster, "pod", "-n", namespace, "not-alive")["status"]
        statuses = status.get("containerStatuses") or [{}]
        return statuses[0] if statuses[0].get("restartCount", 0) >= 1 else None

    status = wait_for("the failing liveness probe to restart the container", restarted, 40)
    assert status["lastState"]["terminated"]["exitCode"] == 128 + signal.SIGTERM


def test_deletion_sigterm_then_sigkill_after_the_grace_period(cluster: Any, namespace: str) -> None:
    apply(
        cluster,
        f"""
apiVersion: v1
kind: Pod
metadata: {{name: stubborn, namespace: {namespace}, labels: {{app: stubborn}}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {NODE}}}
  terminationGracePeriodSeconds: 3
  containers:
  - name: c
    image: busybox
    command: [sh, -c, "trap 'echo got TERM' TERM; while :; do sleep 1; done"]
""",
    )
    wait_for("the pod to run", lambda: ready_pods(cluster, namespace, "app=stubborn", 1))
    (pid,) = container_pids(cluster, namespace).values()
    uid = get(cluster, "pod", "-n", namespace, "stubborn")["metadata"]["uid"]
    log = state_dir(cluster) / "pods" / uid / "logs" / "c.log"
    started = time.monotonic()
    cluster.kubectl("delete", "pod", "-n", namespace, "stubborn", "--wait=false")
    wait_for("TERM to reach the container", lambda: log.exists() and "got TERM" in log.read_text())
    wait_for("the process to be killed", lambda: not alive(pid), timeout=20)
    assert time.monotonic() - started >= 2.5, "killed before its grace period ended"
    wait_for("the pod to be gone", lambda: not get(cluster, "pods", "-n", namespace)["items"])
    assert not log.exists(), "the pod's dir is removed"


def test_propylon_image_runs_the_checkouts_console_script(cluster: Any, namespace: str) -> None:
    apply(
        cluster,
        f"""
apiVersion: v1
kind: Pod
metadata: {{name: propylon, namespace: {namespace}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {NODE}}}
  restartPolicy: Never
  containers:
  - name: c
    image: ghcr.io/example/propylon:dev
    command: [/usr/local/bin/propylon]
    args: [--help]
""",
    )
    pod = wait_for("propylon --help to succeed", lambda: succeeded(cluster, namespace, "propylon"))
    log = state_dir(cluster) / "pods" / pod["metadata"]["uid"] / "logs" / "c.log"
    assert "usage: propylon" in log.read_text()


def test_container_logs_reach_kubectl_through_the_api_server(cluster: Any, namespace: str) -> None:
    apply(
        cluster,
        f"""
apiVersion: v1
kind: Pod
metadata: {{name: talker, namespace: {namespace}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {NODE}}}
  containers:
  - {{name: c, image: busybox, command: [sh, -c, "echo one; echo two; exec sleep 3600"]}}
""",
    )

    def logs(*options: str) -> str:
        return cluster.kubectl("logs", "-n", namespace, "talker", "-c", "c", *options, check=False)

    wait_for("both lines in kubectl logs", lambda: logs() == "one\ntwo\n")
    assert logs("--tail=1") == "two\n"
    assert logs("--since=1h") == "one\ntwo\n"
    assert logs("--limit-bytes=3") == "one"
    with pytest.raises(RuntimeError, match="nope"):
        cluster.kubectl("logs", "-n", namespace, "talker", "-c", "nope")
