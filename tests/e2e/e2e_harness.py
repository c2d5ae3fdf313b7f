"""End-to-end harness: `propylon run` as a real process, with real Envoy and backends.

Each test gets its own state directory, its own copy of the walkthrough manifests (with
EndpointSlices pointing at backends the test started on ephemeral ports) and its own
loopback IP pool, so tests never collide with each other or with a user's walkthrough.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from propylon.testing.launcher import RunningPropylon, launch_propylon, wait_for

REPO = Path(__file__).resolve().parents[2]
WALKTHROUGH = REPO / "examples" / "walkthrough"
_pools = itertools.count(1)


def unique_pool() -> str:
    """A /24 of loopback that no other test (nor the default pool) uses."""
    return f"127.{100 + os.getpid() % 100}.{next(_pools)}.0/24"


@dataclass
class Running(RunningPropylon):
    """A `propylon run` process and ways to look at it."""

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "propylon.cli", *args, "--state-dir", str(self.state_dir)],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def object(self, kind: str, name: str, namespace: str = "default") -> dict[str, Any] | None:
        items = self.api.objects(kind, namespace=namespace, name=name)["items"]
        return items[0] if items else None

    def condition(self, status: dict[str, Any], type_: str) -> dict[str, Any] | None:
        for cond in status.get("conditions", []):
            if cond["type"] == type_:
                return dict(cond)
        return None

    def gateway_address(self, name: str = "example-gateway") -> str:
        def programmed() -> str | None:
            gw = self.object("Gateway", name)
            if gw is None:
                return None
            cond = self.condition(gw.get("status", {}), "Programmed")
            addresses = gw.get("status", {}).get("addresses") or []
            if cond and cond["status"] == "True" and addresses:
                return str(addresses[0]["value"])
            return None

        return wait_for(programmed, what=f"Gateway {name} Programmed")

    def envoy(self) -> dict[str, Any]:
        health: dict[str, Any] = self.api.healthz()
        return dict(health["envoy"])

    def wait_synced(self) -> None:
        """Wait until the latest configuration is acknowledged by Envoy."""

        def synced() -> bool:
            health = self.api.healthz()
            version = health["xds"]["version"]
            acked = health["xds"]["acked"]
            return bool(acked) and all(v >= version for v in acked.values())

        wait_for(synced, what="Envoy to acknowledge the configuration")

    def diagnostics(self) -> list[dict[str, Any]]:
        return list(self.api.diagnostics())


def write_walkthrough(target: Path, http_port: int, grpc_port: int) -> Path:
    """Copy the walkthrough, pointing its EndpointSlices at the given backend ports."""
    shutil.copytree(WALKTHROUGH, target, ignore=shutil.ignore_patterns("*.md"))
    for path in target.glob("*.yaml"):
        docs = list(yaml.safe_load_all(path.read_text()))
        changed = False
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") == "EndpointSlice":
                service = doc["metadata"]["labels"]["kubernetes.io/service-name"]
                for port in doc["ports"]:
                    port["port"] = http_port if service == "http-test" else grpc_port
                changed = True
        if changed:
            path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return target


@dataclass
class Backend:
    process: subprocess.Popen[str]
    port: int


@dataclass
class Backends:
    http: Backend
    grpc: Backend


def start_backend(command: str) -> Backend:
    """A demo backend as its own process on an ephemeral port (read from its first line)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "propylon.demo", command, "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # "<command> listening on 127.0.0.1:PORT"
    if "listening on" not in line:
        process.kill()
        raise AssertionError(f"{command} did not start: {line!r}")
    return Backend(process, int(line.rsplit(":", 1)[1]))


def stop_backend(backend: Backend) -> None:
    backend.process.terminate()
    try:
        backend.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        backend.process.kill()
        backend.process.wait()


def start_propylon(manifests: Path, state_dir: Path, *extra: str) -> Running:
    base = launch_propylon(manifests, state_dir, *extra, pool=unique_pool())
    running = Running(base.process, base.state_dir, base.manifests, base.log)
    try:
        wait_for(running.up, timeout=30, what="propylon to start")
    except BaseException:
        running.stop()
        raise
    return running


def stop_propylon(running: Running) -> None:
    running.stop()
