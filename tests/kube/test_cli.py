"""`propylon operator` / `agent` refuse bad settings with one line, not a traceback."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from kube_controlplane import ControlPlane, free_port


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "propylon.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_missing_kubeconfig(tmp_path: Path) -> None:
    for argv in (
        ("operator", "--kubeconfig", str(tmp_path / "nope")),
        ("agent", "--node-name", "n", "--kubeconfig", str(tmp_path / "nope")),
    ):
        proc = _run(*argv)
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr
        assert proc.stderr.startswith("error: cannot use the Kubernetes configuration")
        assert str(tmp_path / "nope") in proc.stderr


def test_lease_timings_must_nest(tmp_path: Path) -> None:
    proc = _run("operator", "--lease-duration", "5s", "--renew-deadline", "10s")
    assert proc.returncode == 2
    assert "lease-duration > renew-deadline" in proc.stderr and "Traceback" not in proc.stderr


def test_external_envoy_needs_a_socket() -> None:
    proc = _run("agent", "--node-name", "n", "--envoy-mode", "external")
    assert proc.returncode == 2
    assert "--xds-socket" in proc.stderr


def test_operator_process_serves_metrics_and_health(
    controlplane: ControlPlane, namespace: str
) -> None:
    """The operator as the chart runs it: a process with its own kubeconfig, Prometheus
    metrics and health endpoints."""
    metrics_port, health_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "propylon.cli",
            "operator",
            "--kubeconfig",
            str(controlplane.kubeconfig),
            "--namespace",
            namespace,
            "--metrics-address",
            f"127.0.0.1:{metrics_port}",
            "--health-address",
            f"127.0.0.1:{health_port}",
            "--log-format",
            "json",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        body = ""
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                ready = urllib.request.urlopen(f"http://127.0.0.1:{health_port}/readyz", timeout=2)
                text = (
                    urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2)
                    .read()
                    .decode()
                )
                if ready.status == 200 and "propylon_leader 1.0" in text:
                    body = text
                    break
            time.sleep(0.1)
        assert body, "operator never became ready and leader"
        assert 'propylon_watch_relists_total{kind="Gateway"}' in body
        assert "propylon_reconcile_duration_seconds_count" in body
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and all(json.loads(line)["level"] for line in lines)  # JSON lines
