"""`propylon operator` / `agent` refuse bad settings with one line, not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


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
