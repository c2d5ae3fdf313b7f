"""The one way tests, bench/ and the conformance runner start `propylon run`: a child
process with its output in a log file, waited on until its local API says it is up,
stopped with SIGTERM (then SIGKILL if it does not go)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from propylon.state import ApiClient, NoInstanceError

T = TypeVar("T")


class ProcessExited(RuntimeError):
    """The process being waited on is gone: waiting longer cannot help."""


def wait_for(predicate: Callable[[], T | None], *, timeout: float = 10.0, what: str = "") -> T:
    """Poll `predicate` (errors count as "not yet") until it returns something truthy;
    `TimeoutError` naming `what` and the last error after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except ProcessExited:
            raise
        except Exception as exc:  # the condition may fail until it holds
            last_error = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}: {last_error!r}")
        time.sleep(0.005)


def stop_process(process: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class RunningPropylon:
    """A `propylon run` process and its local API."""

    process: subprocess.Popen[bytes]
    state_dir: Path
    manifests: Path
    log: Path

    @property
    def api(self) -> ApiClient:
        return ApiClient(self.state_dir / "api.sock")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def health(self) -> dict[str, Any]:
        return dict(self.api.healthz())

    def up(self) -> bool:
        """Serving (raises if the process is gone)."""
        if self.process.poll() is not None:
            raise ProcessExited(
                f"propylon exited {self.process.returncode}:\n{self.output()[-4000:]}"
            )
        try:
            # "degraded": serving, with objects Envoy rejected withheld (runtime.isolation)
            return self.health()["status"] in ("ok", "degraded")
        except (NoInstanceError, OSError):
            return False

    def stop(self, timeout: float = 15.0) -> None:
        stop_process(self.process, timeout)


def launch_propylon(
    manifests: Path,
    state_dir: Path,
    *extra: str,
    pool: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> RunningPropylon:
    """Start `propylon run -f manifests --state-dir state_dir [--ip-pool pool] extra...`
    without waiting; its output goes to `<state_dir>.log` beside the state directory."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir.parent / f"{state_dir.name}.log"
    argv = [sys.executable, "-m", "propylon.cli", "run", "-f", str(manifests)]
    argv += ["--state-dir", str(state_dir)]
    if pool is not None:
        argv += ["--ip-pool", pool]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*argv, *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
    return RunningPropylon(process, state_dir, manifests, log)


def start_propylon(
    manifests: Path,
    state_dir: Path,
    *extra: str,
    pool: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
) -> RunningPropylon:
    """`launch_propylon`, then wait until it serves (its first reconcile is done)."""
    running = launch_propylon(manifests, state_dir, *extra, pool=pool, env=env, cwd=cwd)
    try:
        wait_for(running.up, timeout=timeout, what="propylon to start")
    except BaseException:
        running.stop()
        raise
    return running


def repo_env(repo: Path) -> dict[str, str]:
    """The environment with `repo` first on PYTHONPATH (for a checkout run in place)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), env.get("PYTHONPATH")]))
    return env
