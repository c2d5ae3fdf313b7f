"""Kubernetes mode on the dev cluster (devcluster/): the chart installed with helm, one
Gateway with its LoadBalancer address reached from the host, HTTPRoutes created through
the API server. Three figures, in one run:

1. bulk: `--bulk` HTTPRoutes created at once (as `kubectl apply -f` of a folder does, one
   request per object, `--concurrency` in flight) -> every route Accepted in its status;
   the operator's and agents' CPU and RSS (their pods' processes, from the node agent's
   records) meanwhile;
2. propagation, as gateway-api-bench measures it: with `--prefill` routes in place, one
   API create of an HTTPRoute -> first 200 through the Gateway's LoadBalancer address
   (probed every `--probe-step-ms`, 30 s bound), `--measure` times, one at a time; also
   from the create's answer to the first 200 (where gateway-api-bench's probe starts its
   clock); meanwhile a thread sends requests to routes already in place and counts any
   answer but 200; Propylon's own /metrics give each pod's reconciles per change and
   their mean duration (an agent's: watch event in -> xDS pushed);
3. API-server requests per change: `apiserver_request_total` (by verb, resource,
   subresource) and `apiserver_flowcontrol_dispatched_requests_total` (by flow schema:
   `exempt` is the admin, i.e. this script; `service-accounts` the operator, agents and
   controllers) from the API server's /metrics, diffed around the measured changes.

Every route has its own hostname and points at one shared backend (a Deployment of the
Propylon demo HTTP server with one replica and its Service): a new route adds a route
entry, not a new cluster (CDS/EDS are in the standalone table).

    export PROPYLON_DEVCLUSTER_INSTANCE=3; python3 dev.py cluster up --nodes 1
    .venv/bin/python bench/kube_propagation.py --envoy embedded \
        --out bench/results/kube-devcluster-embedded.json

The chart stays installed afterwards unless `--uninstall` is given; the routes, the
Gateway and the backend in namespace `kbench` are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import multiprocessing
import os
import signal
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from shared_paths import GATEWAY_API  # noqa: E402

from devcluster import build, network  # noqa: E402
from devcluster.cluster import API_SERVER, Cluster  # noqa: E402
from propylon.kube import kinds  # noqa: E402
from propylon.kube.api import KubeApi  # noqa: E402

NS = "kbench"
PORT = 8080
CHART = ROOT / "deploy" / "helm" / "propylon"
BACKEND = "echo"


def route(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": f"r{i}", "namespace": NS, "labels": {"kbench": "route"}},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "hostnames": [f"h{i}.kbench.example"],
            "rules": [{"backendRefs": [{"name": BACKEND, "port": PORT}]}],
        },
    }


def host(i: int) -> str:
    return f"h{i}.kbench.example"


FIXTURES = f"""apiVersion: v1
kind: Namespace
metadata: {{name: {NS}}}
---
apiVersion: cilium.io/v2
kind: CiliumLoadBalancerIPPool
metadata: {{name: kbench}}
spec: {{blocks: [{{cidr: {network.LB_POOL}}}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: kbench}}
spec: {{controllerName: io.cilium/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: {NS}}}
spec:
  gatewayClassName: kbench
  listeners: [{{name: web, protocol: HTTP, port: {PORT}}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {BACKEND}, namespace: {NS}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {BACKEND}}}}}
  template:
    metadata: {{labels: {{app: {BACKEND}}}}}
    spec:
      containers:
        - name: http
          image: propylon:0.1.0
          command: [propylon, demo, http-server, --host, 0.0.0.0, --port, "{PORT}"]
          ports: [{{containerPort: {PORT}, name: http}}]
          readinessProbe: {{tcpSocket: {{port: {PORT}}}, periodSeconds: 2}}
---
apiVersion: v1
kind: Service
metadata: {{name: {BACKEND}, namespace: {NS}}}
spec:
  selector: {{app: {BACKEND}}}
  ports: [{{name: http, port: {PORT}, targetPort: {PORT}}}]
"""


def say(message: str) -> None:
    print(f"[kbench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wait_for(what: str, check: Any, timeout: float, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"{what} (after {timeout:.0f} s)")


def helm(cluster: Cluster, *args: str) -> str:
    argv = [str(build.binaries().helm), *args, "--kubeconfig", str(cluster.kubeconfig)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args)}: {done.stderr}")
    return done.stdout


def install(cluster: Cluster, envoy: str) -> None:
    cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", str(GATEWAY_API / "crd/experimental")
    )
    cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    values = [
        f"k8sServiceHost={network.HOST_ADDRESS}",
        "k8sServicePort=6443",
        f"envoy.enabled={'true' if envoy == 'daemonset' else 'false'}",
    ]
    args = ["upgrade", "--install", "propylon", str(CHART), "-n", "kube-system"]
    for value in values:
        args += ["--set", value]
    helm(cluster, *args, "--wait", "--timeout", "5m")
    # A previous run's namespace may still be going away (its routes deleted one by one).
    wait_for(
        f"namespace {NS} from an earlier run to be gone",
        lambda: "Terminating" not in cluster.kubectl("get", "namespace", NS, check=False),
        600,
        every=2,
    )
    cluster.kubectl("apply", "-f", "-", input=FIXTURES)


def gateway_address(cluster: Cluster) -> str | None:
    gw = json.loads(cluster.kubectl("get", "gateway", "-n", NS, "gw", "-o=json"))
    status = gw.get("status") or {}
    programmed = any(
        c["type"] == "Programmed" and c["status"] == "True" for c in status.get("conditions", [])
    )
    addresses = status.get("addresses") or []
    return str(addresses[0]["value"]) if programmed and addresses else None


# ---- processes ---------------------------------------------------------------------


def pod_processes(cluster: Cluster) -> dict[str, psutil.Process]:
    """The chart's pods' processes (operator replicas, agents, Envoy DaemonSet pods), by
    pod name, from the node agents' records (pid of the first container); and the API
    server's and etcd's."""
    found: dict[str, psutil.Process] = {}
    for record in Path(cluster.folder).glob("nodes/*/pods/*/record.json"):
        data = json.loads(record.read_text())
        if data["namespace"] != "kube-system" or not data["name"].startswith("propylon"):
            continue
        for container in data["containers"].values():
            with contextlib.suppress(psutil.NoSuchProcess, KeyError, ValueError):
                found[data["name"]] = psutil.Process(int(container["pid"]))
            break
    # The control plane's share of the same cores.
    for name in ("kube-apiserver", "etcd"):
        pid = cluster.pid(name)
        if pid is not None:
            found[name] = psutil.Process(pid)
    return found


def tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def usage(procs: dict[str, psutil.Process]) -> dict[str, dict[str, Any]]:
    """CPU seconds and RSS of each pod's process tree, split into propylon and envoy."""
    out: dict[str, dict[str, Any]] = {}
    for pod, proc in procs.items():
        for p in tree(proc):
            try:
                name = "envoy" if "envoy" in p.name() else p.name()
                times, rss = p.cpu_times(), p.memory_info().rss
            except psutil.NoSuchProcess:
                continue
            entry = out.setdefault(f"{pod}/{name}", {"cpu_s": 0.0, "rss_mib": 0.0})
            entry["cpu_s"] += times.user + times.system
            entry["rss_mib"] += rss / 2**20
    return out


class Sampler(threading.Thread):
    """Max RSS of each process tree, sampled every 0.5 s."""

    def __init__(self, procs: dict[str, psutil.Process]) -> None:
        super().__init__(daemon=True)
        self.procs = procs
        self.peak: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            for key, entry in usage(self.procs).items():
                self.peak[key] = max(self.peak.get(key, 0.0), entry["rss_mib"])


def start_profilers(
    procs: dict[str, psutil.Process], folder: Path
) -> list[subprocess.Popen[bytes]]:
    """py-spy on each propylon process (not Envoy, not the control plane), stopped with
    SIGINT at the end of the measured changes. Samples of running threads only (no
    --idle): where the CPU goes; --nonblocking does not pause the process."""
    folder.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).parent / "py-spy"
    started = []
    for pod, proc in procs.items():
        if not pod.startswith("propylon"):
            continue
        argv = [str(spy), "record", "--pid", str(proc.pid), "--format", "raw", "--rate", "250"]
        argv += ["--nonblocking", "--output", str(folder / f"{pod}.txt")]
        started.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(1)  # attached before the first change
    return started


# ---- API server metrics ------------------------------------------------------------


def apiserver_counts(cluster: Cluster) -> dict[str, float]:
    context = ssl.create_default_context(cafile=str(cluster.ca))
    context.load_cert_chain(str(cluster.pki / "admin.crt"), str(cluster.pki / "admin.key"))
    with urllib.request.urlopen(f"{API_SERVER}/metrics", context=context, timeout=10) as resp:
        text = resp.read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        for metric in (
            "apiserver_request_total{",
            "apiserver_flowcontrol_dispatched_requests_total{",
        ):
            if not line.startswith(metric):
                continue
            labels_text, value = line.rsplit(" ", 1)
            labels = dict(
                part.split("=", 1) for part in labels_text[len(metric) : -1].split(",") if part
            )
            labels = {k: v.strip('"') for k, v in labels.items()}
            if metric.startswith("apiserver_request_total"):
                sub = labels.get("subresource", "")
                key = f"request {labels.get('verb')} {labels.get('resource')}"
                key += f"/{sub}" if sub else ""
            else:
                key = f"flow schema {labels.get('flow_schema')}"
            counts[key] = counts.get(key, 0.0) + float(value)
    return counts


# ---- Propylon's own metrics ---------------------------------------------------------

# The chart's prometheus.*Port values (deploy/helm/propylon/values.yaml).
METRICS_PORTS = {"propylon-agent": 9962, "propylon-operator": 9963}
_COUNTED = (
    "propylon_reconcile_duration_seconds_sum",
    "propylon_reconcile_duration_seconds_count",
    "propylon_xds_pushes_total",
    "propylon_status_writes_total",
)


async def pod_metrics(api: KubeApi) -> dict[str, float]:
    """`pod/series` -> value of the counters above, from each operator's and agent's
    /metrics (at its pod IP, routed from the host): reconciles (the build after a
    change, watch event in -> xDS pushed for an agent), xDS pushes by kind, status
    writes."""
    pods, _ = await api.list(kinds.POD, namespace="kube-system")
    out: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=5) as client:
        for pod in pods:
            name, ip = pod["metadata"]["name"], (pod.get("status") or {}).get("podIP")
            port = next((p for k, p in METRICS_PORTS.items() if name.startswith(k)), None)
            if port is None or not ip:
                continue
            try:
                text = (await client.get(f"http://{ip}:{port}/metrics")).text
            except httpx.HTTPError:
                continue
            for line in text.splitlines():
                if line.startswith(_COUNTED):
                    series, _, value = line.rpartition(" ")
                    out[f"{name}/{series}"] = float(value)
    return out


def per_change(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, Any]:
    """Counters per change, and each pod's mean reconcile (ms) over the changes."""
    out: dict[str, Any] = {}
    for key in sorted(after):
        delta = after[key] - before.get(key, 0.0)
        if delta and not key.endswith("_sum"):
            out[key] = round(delta / n, 2)
    for key in sorted(after):
        if key.endswith("propylon_reconcile_duration_seconds_sum"):
            count_key = key.replace("_sum", "_count")
            count = after.get(count_key, 0.0) - before.get(count_key, 0.0)
            total = after[key] - before.get(key, 0.0)
            if count:
                pod = key.split("/")[0]
                out[f"{pod}/reconcile mean ms"] = round(total * 1000 / count, 2)
    return out


# ---- traffic -----------------------------------------------------------------------


def _traffic(address: str, hosts: list[str], stop: Any, out: Any) -> None:
    """Back-to-back keep-alive GETs to routes already in place, round robin; puts the
    count of each status (0: no HTTP answer) on `out` once `stop` is set."""
    statuses: Counter[int] = Counter()
    conn: http.client.HTTPConnection | None = None
    i = 0
    while not stop.is_set():
        i += 1
        try:
            if conn is None:
                conn = http.client.HTTPConnection(address, PORT, timeout=2)
            conn.request("GET", "/", headers={"Host": hosts[i % len(hosts)]})
            resp = conn.getresponse()
            resp.read()
            statuses[resp.status] += 1
        except (OSError, http.client.HTTPException):
            statuses[0] += 1
            if conn is not None:
                conn.close()
            conn = None
        time.sleep(0.005)
    out.put(dict(statuses))


class Traffic:
    """`_traffic` in a process of its own: a thread of this one would share the GIL
    with the measured create and probe (and did, until run 8)."""

    def __init__(self, address: str, hosts: list[str]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._stop, self._out = ctx.Event(), ctx.Queue()
        self._proc = ctx.Process(
            target=_traffic, args=(address, hosts, self._stop, self._out), daemon=True
        )
        self.statuses: dict[int, int] = {}

    def start(self) -> None:
        self._proc.start()

    def finish(self) -> None:
        self._stop.set()
        self.statuses = self._out.get(timeout=60)
        self._proc.join(timeout=60)


async def probe(
    client: httpx.AsyncClient, url: str, hostname: str, deadline: float
) -> tuple[float, list[int]]:
    """Until `hostname` answers 200 (bulk and prefill: not the measured figure)."""
    others: list[int] = []
    while time.monotonic() < deadline:
        try:
            resp = await client.get(url, headers={"Host": hostname})
            if resp.status_code == 200:
                return time.monotonic(), others
            if resp.status_code != 404:
                others.append(resp.status_code)
        except httpx.HTTPError:
            others.append(0)
        await asyncio.sleep(0.002)
    raise TimeoutError(hostname)


class Prober:
    """The measured probe: GET / with the new route's Host on one keep-alive HTTP/1.1
    connection, written and read with asyncio streams (a request costs the probe ~0.1 ms
    of CPU, against ~1 ms through httpx), `step` seconds apart: the first 200 is seen at
    most `step` + one round trip after Envoy has the route."""

    def __init__(self, address: str, step: float) -> None:
        self.address, self.step = address, step
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def close(self) -> None:
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None

    async def status(self, hostname: str) -> int:
        if self._conn is None:
            self._conn = await asyncio.open_connection(self.address, PORT)
        reader, writer = self._conn
        writer.write(f"GET / HTTP/1.1\r\nHost: {hostname}\r\n\r\n".encode())
        status = int((await reader.readline()).split()[1])
        length, chunked, close = 0, False, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value
            elif name == "connection":
                close = value == "close"
        if chunked:
            while size := int((await reader.readline()).split(b";")[0], 16):
                await reader.readexactly(size + 2)
            await reader.readline()
        elif length:
            await reader.readexactly(length)
        if close:
            await self.close()
        return status

    async def until_200(self, hostname: str, deadline: float) -> tuple[float, list[int]]:
        others: list[int] = []
        while time.monotonic() < deadline:
            try:
                code = await asyncio.wait_for(self.status(hostname), 2)
                if code == 200:
                    return time.monotonic(), others
                if code != 404:
                    others.append(code)
            except (OSError, ValueError, IndexError, TimeoutError, asyncio.IncompleteReadError):
                others.append(0)
                await self.close()
            await asyncio.sleep(self.step)
        raise TimeoutError(hostname)


# ---- phases ------------------------------------------------------------------------


async def create_many(api: KubeApi, indices: range, concurrency: int) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await api.create(kinds.HTTP_ROUTE, route(i), NS)

    await asyncio.gather(*(one(i) for i in indices))


async def delete_many(api: KubeApi, indices: range, concurrency: int) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await api.delete(kinds.HTTP_ROUTE, f"r{i}", NS)

    await asyncio.gather(*(one(i) for i in indices))


async def accepted_count(api: KubeApi) -> int:
    items, _ = await api.list(kinds.HTTP_ROUTE, label_selector="kbench=route")
    ok = 0
    for item in items:
        parents = (item.get("status") or {}).get("parents") or ()
        if any(
            c.get("type") == "Accepted" and c.get("status") == "True"
            for p in parents
            for c in p.get("conditions") or ()
        ):
            ok += 1
    return ok


async def attached_routes(api: KubeApi) -> int:
    gw = await api.get(kinds.GATEWAY, "gw", NS) or {}
    listeners = (gw.get("status") or {}).get("listeners") or [{}]
    return int(listeners[0].get("attachedRoutes", -1))


async def bulk(
    api: KubeApi, cluster: Cluster, client: httpx.AsyncClient, url: str, n: int, conc: int
) -> dict[str, Any]:
    procs = pod_processes(cluster)
    before = usage(procs)
    sampler = Sampler(procs)
    sampler.start()
    started = time.monotonic()
    await create_many(api, range(n), conc)
    created = time.monotonic() - started
    say(f"bulk: {n} created in {created:.1f} s")
    await probe(client, url, host(n - 1), time.monotonic() + 600)
    served = time.monotonic() - started
    deadline = time.monotonic() + 900
    accepted = 0
    while time.monotonic() < deadline:
        accepted = await accepted_count(api)
        if accepted >= n:
            break
        await asyncio.sleep(1)
    all_accepted = time.monotonic() - started
    say(f"bulk: {accepted} Accepted after {all_accepted:.1f} s")
    after = usage(procs)
    sampler.stop.set()
    sampler.join()
    return {
        "routes": n,
        "concurrency": conc,
        "created_s": round(created, 1),
        "last_route_served_s": round(served, 1),
        "accepted": accepted,
        "all_accepted_s": round(all_accepted, 1),
        "processes": {
            key: {
                "cpu_s": round(after[key]["cpu_s"] - before.get(key, {"cpu_s": 0})["cpu_s"], 1),
                "rss_mib_end": round(after[key]["rss_mib"]),
                "rss_mib_peak": round(sampler.peak.get(key, after[key]["rss_mib"])),
            }
            for key in sorted(after)
        },
    }


async def propagation(
    api: KubeApi,
    cluster: Cluster,
    address: str,
    in_place: int,
    first: int,
    measure: int,
    profile: Path | None,
    probe_step: float,
) -> dict[str, Any]:
    prober = Prober(address, probe_step)
    procs = pod_processes(cluster)
    say(f"propagation: {measure} new routes, {in_place} in place")
    profilers = start_profilers(procs, profile) if profile else []
    traffic = Traffic(address, [host(i) for i in range(0, in_place, max(1, in_place // 50))])
    traffic.start()
    cpu_before = usage(procs)
    requests_before = apiserver_counts(cluster)
    ours_before = await pod_metrics(api)
    latencies: list[float] = []
    create_ms: list[float] = []
    after_ms: list[float] = []  # the create answered -> first 200
    watch_ms: list[float] = []
    others: list[int] = []
    timeouts = 0
    # A watcher of our own, on the host like the operator's and agents' (same API
    # server, same watch cache): when its ADDED event arrives is watch delivery.
    seen: dict[str, float] = {}
    watch_api = KubeApi.connect(cluster.kubeconfig, field_manager="kbench")
    _, rv = await watch_api.list(kinds.HTTP_ROUTE, label_selector="kbench=nothing")

    async def watcher() -> None:
        async for kind, obj in watch_api.watch(
            kinds.HTTP_ROUTE, rv, timeout_s=3600, label_selector="kbench=route"
        ):
            if kind == "ADDED":
                seen.setdefault(obj["metadata"]["name"], time.monotonic())

    watching = asyncio.create_task(watcher())
    try:
        for j in range(measure):
            i = first + j
            t0 = time.monotonic()
            await api.create(kinds.HTTP_ROUTE, route(i), NS)
            answered = time.monotonic()
            create_ms.append((answered - t0) * 1000)
            try:
                t1, bad = await prober.until_200(host(i), time.monotonic() + 30)
            except TimeoutError:
                timeouts += 1
                continue
            latencies.append((t1 - t0) * 1000)
            after_ms.append((t1 - answered) * 1000)
            if f"r{i}" in seen:
                watch_ms.append((seen[f"r{i}"] - t0) * 1000)
            others.extend(bad)
            # Let the change settle (statuses written) before the next, as one apply at a
            # time would.
            await asyncio.sleep(0.1)
        await asyncio.sleep(2)  # the last change's status writes
    finally:
        traffic.finish()
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        await watch_api.close()
        await prober.close()
        for profiler in profilers:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=60)
    requests_after = apiserver_counts(cluster)
    ours_after = await pod_metrics(api)
    cpu_after = usage(procs)
    delta = {
        k: round((requests_after[k] - requests_before.get(k, 0)) / measure, 2)
        for k in sorted(requests_after)
        if requests_after[k] - requests_before.get(k, 0) > 0
    }
    ordered, after = sorted(latencies), sorted(after_ms)
    return {
        "routes_in_place": in_place,
        "measured": len(latencies),
        "timeouts": timeouts,
        "mean_ms": round(statistics.fmean(latencies), 1),
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)], 1),
        "max_ms": round(max(latencies), 1),
        "create_answer_mean_ms": round(statistics.fmean(create_ms), 1),
        "create_answer_max_ms": round(max(create_ms), 1),
        # From the create's answer to the first 200: where gateway-api-bench's probe
        # (tests/probe/probe.go) starts its clock, after the apply has returned.
        "after_create_mean_ms": round(statistics.fmean(after), 1),
        "after_create_p50_ms": round(statistics.median(after), 1),
        "after_create_p99_ms": round(after[max(0, int(len(after) * 0.99) - 1)], 1),
        "after_create_max_ms": round(max(after), 1),
        "probe_step_ms": prober.step * 1000,
        # Create start -> our own watcher's ADDED event (API server + watch delivery).
        "watch_event_mean_ms": round(statistics.fmean(watch_ms), 1) if watch_ms else None,
        "watch_event_max_ms": round(max(watch_ms), 1) if watch_ms else None,
        "watch_events_seen": len(watch_ms),
        "probe_other_statuses": dict(Counter(others)),
        "traffic_to_existing_routes": traffic.statuses,
        "requests_per_change": delta,
        "propylon_metrics_per_change": per_change(ours_before, ours_after, measure),
        "cpu_ms_per_change": {
            key: round((cpu_after[key]["cpu_s"] - cpu_before[key]["cpu_s"]) * 1000 / measure, 1)
            for key in sorted(cpu_after)
            if key in cpu_before
        },
        "latencies_ms": [round(x, 1) for x in latencies],
    }


async def run(args: argparse.Namespace, cluster: Cluster, address: str) -> dict[str, Any]:
    api = KubeApi.connect(cluster.kubeconfig, field_manager="kbench")
    url = f"http://{address}:{PORT}/"
    result: dict[str, Any] = {}
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            if args.bulk:
                result["bulk"] = await bulk(api, cluster, client, url, args.bulk, args.concurrency)
                if args.bulk > args.prefill:
                    await delete_many(api, range(args.prefill, args.bulk), args.concurrency)
                    await wait_attached(api, args.prefill)
                    say(f"deleted down to {args.prefill}")
            else:
                await create_many(api, range(args.prefill), args.concurrency)
                await probe(client, url, host(args.prefill - 1), time.monotonic() + 600)
                await wait_attached(api, args.prefill)
                # Every route's status written: the measured changes must not share the
                # API server with the prefill's status writes.
                while await accepted_count(api) < args.prefill:
                    await asyncio.sleep(1)
            # In place: routes 0..prefill-1; new ones take names never used in this run.
            first = max(args.bulk, args.prefill)
            result["propagation"] = await propagation(
                api,
                cluster,
                address,
                args.prefill,
                first,
                args.measure,
                args.profile,
                args.probe_step_ms / 1000,
            )
    finally:
        await api.close()
    return result


async def wait_attached(api: KubeApi, n: int) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if await attached_routes(api) == n:
            return
        await asyncio.sleep(1)
    raise TimeoutError(f"attachedRoutes {n}")


def machine() -> dict[str, Any]:
    top = subprocess.run(
        ["ps", "-eo", "pcpu,etime,args", "--sort=-pcpu"], capture_output=True, text=True
    ).stdout.splitlines()[1:16]
    return {"loadavg": os.getloadavg(), "cpus": os.cpu_count(), "top": [t[:160] for t in top]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envoy", choices=("embedded", "daemonset"), default="embedded")
    parser.add_argument("--bulk", type=int, default=5000, help="0: skip the bulk create")
    parser.add_argument("--prefill", type=int, default=3000)
    parser.add_argument("--measure", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--probe-step-ms",
        type=float,
        default=0.5,
        help="pause between the measured probe's requests (runs 1-7: 2 ms, through httpx)",
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument("--uninstall", action="store_true")
    parser.add_argument(
        "--profile",
        type=Path,
        help="folder: py-spy samples (collapsed stacks) of the operators and agents "
        "while the new routes are measured (py-spy, in the bench extra)",
    )
    args = parser.parse_args()
    cluster = Cluster.existing()
    if not cluster.is_running():
        print(f"no dev cluster at {cluster.folder}: python3 dev.py cluster up", file=sys.stderr)
        return 2
    say(f"instance {network.INSTANCE}, installing (Envoy {args.envoy})")
    install(cluster, args.envoy)
    address = wait_for("Gateway Programmed with an address", lambda: gateway_address(cluster), 180)
    say(f"Gateway address {address}")
    result: dict[str, Any] = {
        "envoy": args.envoy,
        "instance": network.INSTANCE,
        "nodes": len(cluster.ready_nodes()),
        "gateway_address": address,
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip(),
        "machine_before": machine(),
    }
    started = time.monotonic()
    try:
        result.update(asyncio.run(run(args, cluster, address)))
    finally:
        result["wall_s"] = round(time.monotonic() - started, 1)
        result["machine_after"] = machine()
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=1) + "\n")
        say("cleaning up namespace kbench")
        cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)
        cluster.kubectl("delete", "gatewayclass", "kbench", "--ignore-not-found", check=False)
        if args.uninstall:
            helm(cluster, "uninstall", "propylon", "-n", "kube-system", "--wait")
    summary = {k: v for k, v in result.items() if not k.startswith("machine")}
    if "propagation" in summary:
        summary["propagation"] = {
            k: v for k, v in summary["propagation"].items() if k != "latencies_ms"
        }
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
