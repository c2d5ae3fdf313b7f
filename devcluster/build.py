"""Build the dev cluster's binaries from the pinned Go modules under devcluster/go/.

    python3 -m devcluster.build        # build what is missing, print the cache folder

The binaries land in a cache folder outside the repository whose name carries every
pinned version and a digest of the Go module files, so a changed pin builds anew and an
unchanged one is never rebuilt. Each group is built into a temporary folder and moved into
place only when complete: an interrupted build leaves nothing half-written behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

GO_DIR = Path(__file__).resolve().parent / "go"

KUBERNETES = "v1.36.3"
ETCD = "v3.6.8"
HELM = "v4.2.4"
ECHO = "v1.6.3"  # the sigs.k8s.io/gateway-api/conformance module that ships echo-basic


@dataclass(frozen=True)
class Group:
    """One Go module under devcluster/go and the commands built from it."""

    module: str
    packages: tuple[str, ...]  # import paths (or ./dir) of the main packages
    outputs: tuple[str, ...]  # the binary names they produce, in the same order
    ldflags: str = ""
    test: bool = False  # a test binary (`go test -c`) of the one package


_KUBE_LDFLAGS = " ".join(
    f"-X k8s.io/component-base/version.{key}={value}"
    for key, value in (
        ("gitVersion", KUBERNETES),
        ("gitMajor", KUBERNETES.lstrip("v").split(".")[0]),
        ("gitMinor", KUBERNETES.split(".")[1]),
        ("gitTreeState", "clean"),
    )
)

GROUPS = (
    Group(
        "kube",
        (
            "k8s.io/kubernetes/cmd/kube-apiserver",
            "k8s.io/kubernetes/cmd/kube-controller-manager",
            "k8s.io/kubernetes/cmd/kube-scheduler",
            "k8s.io/kubernetes/cmd/kubectl",
            "./etcd",
        ),
        ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "etcd"),
        _KUBE_LDFLAGS,
    ),
    Group("helm", ("helm.sh/helm/v4/cmd/helm",), ("helm",)),
    Group(
        "echo",
        ("sigs.k8s.io/gateway-api/conformance/echo-basic",),
        ("echo-basic",),
    ),
)

# The upstream Gateway API conformance suite as a test binary (conformance/upstream). Its
# binary's name carries a digest of its own module files, so a change there rebuilds it
# alone.
CONFORMANCE_MODULE = "../../conformance/upstream"


@dataclass(frozen=True)
class Binaries:
    folder: Path

    def path(self, name: str) -> Path:
        return self.folder / name

    @property
    def etcd(self) -> Path:
        return self.path("etcd")

    @property
    def kube_apiserver(self) -> Path:
        return self.path("kube-apiserver")

    @property
    def kube_controller_manager(self) -> Path:
        return self.path("kube-controller-manager")

    @property
    def kube_scheduler(self) -> Path:
        return self.path("kube-scheduler")

    @property
    def kubectl(self) -> Path:
        return self.path("kubectl")

    @property
    def helm(self) -> Path:
        return self.path("helm")

    @property
    def echo_basic(self) -> Path:
        return self.path("echo-basic")

    @property
    def coredns(self) -> Path:
        return self.path(COREDNS.outputs[0])

    @property
    def conformance(self) -> Path:
        return self.path(CONFORMANCE.outputs[0])

    def missing(self) -> list[str]:
        return [name for group in GROUPS for name in group.outputs if not self.path(name).exists()]


# CoreDNS (devcluster/go/coredns), for the conformance suite's UDP backend (image
# coredns/coredns). Built with the suite, not with the cluster, under a name carrying its
# own digest, so adding it did not change the cluster's cache key.
COREDNS_MODULE = "coredns"


def _digest(groups: tuple[Group, ...] = GROUPS) -> str:
    sha = hashlib.sha256()
    for group in groups:
        for name in ("go.mod", "go.sum"):
            file = GO_DIR / group.module / name
            if file.exists():
                sha.update(file.read_bytes())
    return sha.hexdigest()[:12]


CONFORMANCE = Group(
    CONFORMANCE_MODULE,
    (".",),
    (f"gateway-conformance-{_digest((Group(CONFORMANCE_MODULE, (), ()),))}",),
    test=True,
)
COREDNS = Group(
    COREDNS_MODULE,
    (".",),
    (f"coredns-{_digest((Group(COREDNS_MODULE, (), ()),))}",),
)


def cache_root() -> Path:
    override = os.environ.get("PROPYLON_DEVCLUSTER_CACHE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "propylon-devcluster"


def binaries() -> Binaries:
    """Where the binaries of the current pins are (built or not)."""
    key = f"k8s-{KUBERNETES}_etcd-{ETCD}_helm-{HELM}_echo-{ECHO}_{_digest()}"
    return Binaries(cache_root() / key / "bin")


def _say(message: str) -> None:
    print(f"[devcluster build] {message}", file=sys.stderr, flush=True)


def _build_group(group: Group, target: Path) -> None:
    go = shutil.which("go")
    if go is None:
        raise SystemExit("devcluster: the Go toolchain (`go`) is needed to build the cluster")
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=readonly -buildvcs=false")
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
        if group.test:
            argv = [go, "test", "-c", "-v", "-trimpath", "-o", f"{tmp}/{group.outputs[0]}"]
        elif len(group.outputs) == 1:  # named as asked (CoreDNS's carries a digest)
            argv = [go, "build", "-v", "-trimpath", "-o", f"{tmp}/{group.outputs[0]}"]
        else:
            argv = [go, "build", "-v", "-trimpath", "-o", tmp + "/"]
        argv += ["-ldflags", f"-s -w {group.ldflags}".strip(), *group.packages]
        started = time.monotonic()
        module = (GO_DIR / group.module).resolve().relative_to(GO_DIR.parents[1])
        _say(f"building {', '.join(group.outputs)} (module {module})")
        process = subprocess.Popen(
            argv,
            cwd=GO_DIR / group.module,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None
        compiled = 0
        tail: list[str] = []
        done = threading.Event()

        def progress() -> None:
            while not done.wait(15):
                elapsed = time.monotonic() - started
                _say(f"  {module}: {compiled} packages compiled, {elapsed:.0f} s")

        ticker = threading.Thread(target=progress, daemon=True)
        ticker.start()
        for line in process.stderr:
            # `go build -v` names each package as it compiles; other lines are errors
            # or the module download notices.
            if line.startswith("go: downloading"):
                continue
            compiled += 1
            tail = [*tail[-40:], line.rstrip()]
        code = process.wait()
        done.set()
        if code != 0:
            raise SystemExit(
                f"devcluster: building {module} failed (exit {code}):\n" + "\n".join(tail)
            )
        for name in group.outputs:
            os.replace(Path(tmp) / name, target / name)
        _say(f"  {module}: done in {time.monotonic() - started:.0f} s")


def ensure_built(conformance: bool = False) -> Binaries:
    """Build every group with a missing binary (and the conformance suite if asked);
    return the binaries."""
    found = binaries()
    for group in (*GROUPS, COREDNS, CONFORMANCE) if conformance else GROUPS:
        if any(not found.path(name).exists() for name in group.outputs):
            _build_group(group, found.folder)
    return found


def main() -> int:
    started = time.monotonic()
    built = ensure_built()
    _say(f"binaries ready in {time.monotonic() - started:.0f} s: {built.folder}")
    print(built.folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
