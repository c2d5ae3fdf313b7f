"""Start and stop the dev cluster: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler (all built from Go modules, see build.py) and one node agent per node, each
node in its own network namespace (network.py).

The processes run detached from the command that started them (`cluster up` returns once
every node is Ready); their PIDs are kept in the run folder, and `cluster down` stops them
by PID, removes the namespaces and the run folder. A cluster left behind by a killed
`up` is found by the same files and cleaned the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devcluster import leftovers, network, pki
from devcluster.build import Binaries, ensure_built
from devcluster.node.hostdirs import LEDGER_NAME, remove_recorded

REPO = Path(__file__).resolve().parents[1]
API_PORT = 6443
# 20 apart per instance: with 10, instance k's peer port was instance k+1's client port.
ETCD_CLIENT_PORT = 23790 + 20 * network.INSTANCE
ETCD_PEER_PORT = 23800 + 20 * network.INSTANCE
API_SERVER = f"https://{network.HOST_ADDRESS}:{API_PORT}"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


def run_dir() -> Path:
    default = "/run/propylon-devcluster" + (f"-{network.INSTANCE}" if network.INSTANCE else "")
    return Path(os.environ.get("PROPYLON_DEVCLUSTER_DIR", default))


def _say(message: str) -> None:
    print(f"[devcluster] {message}", file=sys.stderr, flush=True)


@dataclass
class Cluster:
    """A running (or to-be-started) dev cluster rooted at `folder`."""

    folder: Path = field(default_factory=run_dir)
    node_count: int = 1
    node_labels: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        return self.folder / "kubeconfig"

    @property
    def pki(self) -> Path:
        return self.folder / "pki"

    @property
    def logs(self) -> Path:
        return self.folder / "logs"

    @property
    def ca(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def nodes(self) -> list[network.NodeNet]:
        return network.nodes(self.node_count)

    # ---- processes ---------------------------------------------------------------

    def _pidfile(self, name: str) -> Path:
        return self.folder / "pids" / f"{name}.pid"

    def pid(self, name: str) -> int | None:
        try:
            pid = int(self._pidfile(name).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None

    def _spawn(self, name: str, argv: Sequence[str], *, netns: str | None = None) -> int:
        if netns is not None:
            argv = ["ip", "netns", "exec", netns, *argv]
        self.logs.mkdir(parents=True, exist_ok=True)
        self._pidfile(name).parent.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives `cluster up`; stopped by `down`
                cwd=self.folder,
                env=self._env(),
            )
        self._pidfile(name).write_text(str(process.pid))
        return process.pid

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env.pop("KUBECONFIG", None)
        env.update(leftovers.mark(self.folder))  # found by `down` whatever else happens
        return env

    def stop(self, name: str, grace: float = 10.0) -> None:
        pid = self.pid(name)
        if pid is not None:
            _terminate(pid, grace)
        self._pidfile(name).unlink(missing_ok=True)

    def components(self) -> list[str]:
        folder = self.folder / "pids"
        return sorted(p.stem for p in folder.glob("*.pid")) if folder.is_dir() else []

    # ---- control plane -----------------------------------------------------------

    def _generate_pki(self) -> None:
        ca = pki.Authority(self.pki)
        pki.service_account_keys(self.pki)
        ca.issue(
            "apiserver",
            "kube-apiserver",
            server=True,
            dns=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ips=(network.HOST_ADDRESS, "127.0.0.1", str(network.SERVICE_RANGE[1])),
        )
        clients = {
            "admin": ("propylon-dev-admin", "system:masters"),
            "controller-manager": ("system:kube-controller-manager", None),
            "scheduler": ("system:kube-scheduler", None),
        }
        for node in self.nodes:
            clients[node.name] = (f"system:node:{node.name}", "system:nodes")
            # The node's kubelet API (container logs), verified by the API server.
            ca.issue(
                f"{node.name}-serving",
                f"system:node:{node.name}",
                organization="system:nodes",
                ips=(node.ip,),
                server=True,
            )
        # How the API server authenticates to the nodes' kubelet API.
        ca.issue(
            "apiserver-kubelet-client",
            "kube-apiserver-kubelet-client",
            organization="system:masters",
        )
        for name, (common_name, group) in clients.items():
            pair = ca.issue(name, common_name, organization=group)
            target = self.kubeconfig if name == "admin" else self.pki / f"{name}.kubeconfig"
            pki.write_kubeconfig(target, API_SERVER, self.ca, pair, common_name)

    def _start_etcd(self, binaries: Binaries) -> None:
        url = f"http://127.0.0.1:{ETCD_CLIENT_PORT}"
        peer = f"http://127.0.0.1:{ETCD_PEER_PORT}"
        self._spawn(
            "etcd",
            [
                str(binaries.etcd),
                "--name=devcluster",
                f"--data-dir={self.folder / 'etcd'}",
                f"--listen-client-urls={url}",
                f"--advertise-client-urls={url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=devcluster={peer}",
                "--listen-metrics-urls=",
                # A throwaway cluster on one machine: no fsync per write.
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        _wait(lambda: _http_ok(f"{url}/health"), 30, "etcd to answer /health")

    def _start_apiserver(self, binaries: Binaries) -> None:
        p = self.pki
        self._spawn(
            "kube-apiserver",
            [
                str(binaries.kube_apiserver),
                f"--etcd-servers=http://127.0.0.1:{ETCD_CLIENT_PORT}",
                f"--bind-address={network.HOST_ADDRESS}",
                f"--advertise-address={network.HOST_ADDRESS}",
                f"--secure-port={API_PORT}",
                f"--tls-cert-file={p / 'apiserver.crt'}",
                f"--tls-private-key-file={p / 'apiserver.key'}",
                f"--client-ca-file={self.ca}",
                f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
                f"--kubelet-certificate-authority={self.ca}",
                "--kubelet-preferred-address-types=InternalIP",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={p / 'sa.pub'}",
                f"--service-account-signing-key-file={p / 'sa.key'}",
                f"--service-cluster-ip-range={network.SERVICE_RANGE}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
            ],
        )
        _wait(self.api_ready, 90, "kube-apiserver to be ready (/readyz)")

    def _start_controllers(self, binaries: Binaries) -> None:
        p = self.pki
        self._spawn(
            "kube-controller-manager",
            [
                str(binaries.kube_controller_manager),
                f"--kubeconfig={p / 'controller-manager.kubeconfig'}",
                f"--authentication-kubeconfig={p / 'controller-manager.kubeconfig'}",
                f"--authorization-kubeconfig={p / 'controller-manager.kubeconfig'}",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={p / 'sa.key'}",
                f"--root-ca-file={self.ca}",
                f"--cluster-signing-cert-file={self.ca}",
                f"--cluster-signing-key-file={p / 'ca.key'}",
                f"--service-cluster-ip-range={network.SERVICE_RANGE}",
                "--allocate-node-cidrs=false",
                "--controllers=*",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(binaries.kube_scheduler),
                f"--kubeconfig={p / 'scheduler.kubeconfig'}",
                f"--authentication-kubeconfig={p / 'scheduler.kubeconfig'}",
                f"--authorization-kubeconfig={p / 'scheduler.kubeconfig'}",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                "--leader-elect=false",
                "--v=1",
            ],
        )

    def _start_balancer(self) -> None:
        argv = [sys.executable, "-m", "devcluster.loadbalancer", f"--kubeconfig={self.kubeconfig}"]
        self._spawn("loadbalancer", argv)

    def _start_nodes(self) -> None:
        for node in self.nodes:
            self.start_node(node)

    def start_node(self, node: network.NodeNet) -> None:
        folder = self.folder / "nodes" / node.name
        folder.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            "devcluster.node",
            f"--name={node.name}",
            f"--kubeconfig={self.pki / f'{node.name}.kubeconfig'}",
            f"--node-ip={node.ip}",
            f"--pod-cidr={node.pod_cidr}",
            "--bridge=cbr0",
            f"--api-host={network.HOST_ADDRESS}",
            f"--api-port={API_PORT}",
            f"--ca={self.ca}",
            f"--state-dir={folder}",
            f"--serving-cert={self.pki / f'{node.name}-serving.crt'}",
            f"--serving-key={self.pki / f'{node.name}-serving.key'}",
        ]
        for key, value in self.node_labels.get(node.name, {}).items():
            argv.append(f"--label={key}={value}")
        self._spawn(f"node-{node.index}", argv, netns=node.netns)

    # ---- checks ------------------------------------------------------------------

    def _ssl(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return context

    def api_get(self, path: str, timeout: float = 5.0) -> dict[str, object]:
        with urllib.request.urlopen(
            f"{API_SERVER}{path}", context=self._ssl(), timeout=timeout
        ) as response:
            return dict(json.loads(response.read()))

    def api_ready(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"{API_SERVER}/readyz", context=self._ssl(), timeout=2
            ) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def ready_nodes(self) -> set[str]:
        try:
            listing = self.api_get("/api/v1/nodes")
        except (OSError, urllib.error.URLError, ValueError):
            return set()
        ready: set[str] = set()
        for item in listing.get("items", []):  # type: ignore[attr-defined]
            for condition in item.get("status", {}).get("conditions", []):
                if condition.get("type") == "Ready" and condition.get("status") == "True":
                    ready.add(item["metadata"]["name"])
        return ready

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> str:
        from devcluster.build import binaries

        done = subprocess.run(
            [str(binaries().kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    # ---- up / down ---------------------------------------------------------------

    def is_running(self) -> bool:
        return self.pid("kube-apiserver") is not None and self.api_ready()

    def up(self, timeout: float = 180.0) -> None:
        started = time.monotonic()
        binaries = ensure_built()
        if self.is_running():
            _say(f"already running ({self.folder})")
            return
        self.down(quiet=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "cluster.json").write_text(
            json.dumps({"nodes": self.node_count, "labels": self.node_labels})
        )
        steps: list[tuple[str, Callable[[], None]]] = [
            ("certificates and keys", self._generate_pki),
            ("network: host bridge and node namespaces", lambda: network.create(self.nodes)),
            ("etcd", lambda: self._start_etcd(binaries)),
            ("kube-apiserver", lambda: self._start_apiserver(binaries)),
            (
                "kube-controller-manager and kube-scheduler",
                lambda: self._start_controllers(binaries),
            ),
            ("load balancer (host routes to LoadBalancer addresses)", self._start_balancer),
            ("node agents", self._start_nodes),
        ]
        try:
            for number, (what, step) in enumerate(steps, 1):
                _say(f"[{number}/{len(steps) + 1}] {what}")
                step()
            _say(f"[{len(steps) + 1}/{len(steps) + 1}] waiting for {self.node_count} node(s) Ready")
            names = {n.name for n in self.nodes}
            _wait(lambda: names <= self.ready_nodes(), timeout, "every node to be Ready")
        except BaseException:
            _say(f"start failed; logs are in {self.logs}")
            self.down(quiet=True, keep_logs=True)
            raise
        _say(f"up in {time.monotonic() - started:.1f} s")

    def down(self, quiet: bool = False, keep_logs: bool = False) -> None:
        # Node agents first (they stop their pods and remove the pods' namespaces), then
        # the control plane in reverse order of start.
        order = [c for c in self.components() if c.startswith("node-")]
        order += ["loadbalancer", "kube-scheduler", "kube-controller-manager"]
        order += ["kube-apiserver", "etcd"]
        for name in order:
            if not quiet:
                _say(f"stopping {name}")
            self.stop(name, grace=30.0 if name.startswith("node-") else 10.0)
        for leftover in self.components():
            self.stop(leftover)
        # Whatever the agents did not stop (a pod of an agent that was killed, or that
        # lost track of it): every process carrying the cluster's mark or in its
        # namespaces, before the namespaces go (a process keeps its unnamed one alive).
        stray = set(leftovers.marked_processes(self.folder))
        stray |= set(leftovers.processes_in_netns(network.namespaces()))
        stopped = leftovers.stop(stray)
        if stopped:
            _say(f"stopped {len(stopped)} process(es) left running: {stopped}")
        removed = network.destroy()
        if removed and not quiet:
            _say(f"removed {', '.join(removed)}")
        # The folders the nodes made on this machine (hostPath, node/hostdirs.py).
        gone = remove_recorded(*self.folder.glob(f"nodes/*/{LEDGER_NAME}"))
        if gone and not quiet:
            _say(f"removed {', '.join(map(str, gone))}")
        if self.folder.exists():
            if keep_logs:
                for child in self.folder.iterdir():
                    if child.name != "logs":
                        _remove(child)
            else:
                shutil.rmtree(self.folder, ignore_errors=True)

    def restart(self, name: str) -> None:
        """Stop one component and start it again (for resilience tests)."""
        binaries = ensure_built()
        self.stop(name)
        if name == "etcd":
            self._start_etcd(binaries)
        elif name == "kube-apiserver":
            self._start_apiserver(binaries)
        elif name in ("kube-controller-manager", "kube-scheduler"):
            self.stop("kube-controller-manager")
            self.stop("kube-scheduler")
            self._start_controllers(binaries)
        elif name == "loadbalancer":
            self._start_balancer()
        elif name.startswith("node-"):
            self.start_node(self.nodes[int(name.split("-")[1]) - 1])
        else:
            raise ValueError(f"unknown component {name}")

    @classmethod
    def existing(cls) -> Cluster:
        """The cluster described by the run folder (node count as it was started)."""
        folder = run_dir()
        cluster = cls(folder)
        with contextlib.suppress(FileNotFoundError, ValueError):
            saved = json.loads((folder / "cluster.json").read_text())
            cluster.node_count = int(saved["nodes"])
            cluster.node_labels = dict(saved.get("labels", {}))
        return cluster


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this process counts as gone.
    with contextlib.suppress(ChildProcessError):
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    # So does anyone else's: an orphan's zombie waits for PID 1 to reap it (here the
    # VM's init, which took ~2 s: `down` spent that on every component).
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _terminate(pid: int, grace: float) -> None:
    """SIGTERM the process group led by `pid`, then SIGKILL it after `grace` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)
