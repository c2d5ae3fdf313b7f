"""Processes the benchmarks drive: `propylon run`, backend Envoys, a static Envoy, and
a tiny HTTP/1.1 prober. Everything listens on 127.0.0.0/8 only."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from propylon.dataplane import find_envoy
from propylon.testing.launcher import (
    RunningPropylon,
    launch_propylon,
    repo_env,
    stop_process,
    wait_for,
)

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- Envoy processes with static configs ---------------------------------------------


def _static_listener(
    name: str, port: int, route: dict[str, Any], address: str = "127.0.0.1"
) -> dict[str, Any]:
    return {
        "name": name,
        "address": {"socket_address": {"address": address, "port_value": port}},
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network."
                            "http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": name,
                            "route_config": {
                                "virtual_hosts": [
                                    {"name": name, "domains": ["*"], "routes": [route]}
                                ]
                            },
                            "http_filters": [
                                {
                                    "name": "envoy.filters.http.router",
                                    "typed_config": {
                                        "@type": "type.googleapis.com/envoy.extensions."
                                        "filters.http.router.v3.Router"
                                    },
                                }
                            ],
                        },
                    }
                ]
            }
        ],
    }


@dataclass
class StaticEnvoy:
    process: subprocess.Popen[bytes]
    ports: list[int]
    workdir: Path

    def stop(self) -> None:
        stop_process(self.process)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_static_envoy(
    listeners: list[dict[str, Any]],
    clusters: list[dict[str, Any]],
    ports: list[int],
    address: str = "127.0.0.1",
) -> StaticEnvoy:
    workdir = Path(tempfile.mkdtemp(prefix="bench-envoy-"))
    config = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }
    path = workdir / "envoy.json"
    path.write_text(json.dumps(config))
    process = subprocess.Popen(
        [
            str(find_envoy()),
            "-c",
            str(path),
            "--concurrency",
            "2",
            "--disable-hot-restart",
            "--log-level",
            "error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "stderr").open("wb"),
    )
    for port in ports:
        wait_for(lambda p=port: _connects(p, address), timeout=20, what=f"static envoy on {port}")  # type: ignore[misc]
    return StaticEnvoy(process, ports, workdir)


def _connects(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def start_backends(bodies: list[str]) -> StaticEnvoy:
    """One Envoy answering 200 with a fixed body on one port per body (fast backends
    that never are the bottleneck a Python server would be)."""
    ports = [free_port() for _ in bodies]
    listeners = [
        _static_listener(
            f"backend{i}",
            port,
            {
                "match": {"prefix": "/"},
                "direct_response": {"status": 200, "body": {"inline_string": body}},
            },
        )
        for i, (port, body) in enumerate(zip(ports, bodies, strict=True))
    ]
    return start_static_envoy(listeners, [], ports)


def start_static_proxy(backend_port: int, address: str = "127.0.0.1") -> StaticEnvoy:
    """The hand-written minimal proxy: one listener, one route, one STATIC cluster,
    listening on `address`."""
    port = free_port()
    cluster = {
        "name": "backend",
        "type": "STATIC",
        "connect_timeout": "5s",
        "load_assignment": {
            "cluster_name": "backend",
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {
                                        "address": "127.0.0.1",
                                        "port_value": backend_port,
                                    }
                                }
                            }
                        }
                    ]
                }
            ],
        },
    }
    listener = _static_listener(
        "proxy", port, {"match": {"prefix": "/"}, "route": {"cluster": "backend"}}, address
    )
    return start_static_envoy([listener], [cluster], [port], address)


# --- propylon run -------------------------------------------------------------------


@dataclass
class Propylon(RunningPropylon):
    def gateway(self, name: str, namespace: str = "default") -> dict[str, Any] | None:
        items = self.api.objects("Gateway", namespace=namespace, name=name)["items"]
        return dict(items[0]) if items else None

    def address(self, name: str) -> str:
        def programmed() -> str | None:
            gw = self.gateway(name)
            addresses = (gw or {}).get("status", {}).get("addresses") or []
            return str(addresses[0]["value"]) if addresses else None

        return wait_for(programmed, timeout=60, what=f"Gateway {name} address")

    def attached(self, name: str) -> int | None:
        gw = self.gateway(name)
        listeners = (gw or {}).get("status", {}).get("listeners") or []
        return int(listeners[0]["attachedRoutes"]) if listeners else None

    def synced(self) -> bool:
        h = self.health()
        version, acked = h["xds"]["version"], h["xds"]["acked"]
        return bool(acked) and all(v >= version for v in acked.values())

    def envoy_pid(self) -> int:
        return int(self.health()["envoy"]["pid"])


def start_propylon(manifests: Path, state_dir: Path, pool: str) -> Propylon:
    base = launch_propylon(
        manifests, state_dir, "--log-level", "warning", pool=pool, env=repo_env(REPO)
    )
    running = Propylon(base.process, base.state_dir, base.manifests, base.log)
    try:
        wait_for(running.up, timeout=120, what="propylon to start")
    except BaseException:
        running.stop()
        raise
    return running


# --- HTTP/1.1 probing ---------------------------------------------------------------


class Prober:
    """Keep-alive HTTP/1.1 GETs to one address; reconnects after any error."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.sock: socket.socket | None = None
        self.buf = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buf = None, b""

    def get(self, authority: str, path: str = "/") -> tuple[int, dict[str, str], bytes]:
        """Status (0 for a connection error), headers (lower-case), body."""
        try:
            if self.sock is None:
                self.sock = socket.create_connection((self.host, self.port), timeout=5)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: bench\r\n\r\n".encode()
            )
            return self._read()
        except OSError:
            self.close()
            return 0, {}, b""

    def _read(self) -> tuple[int, dict[str, str], bytes]:
        assert self.sock is not None
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("closed")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("closed")
            self.buf += chunk
        body, self.buf = self.buf[:length], self.buf[length:]
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body
