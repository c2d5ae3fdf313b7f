"""`propylon run --metrics-address ... --log-format json`: what an operator scrapes and
collects from a standalone instance serving the walkthrough through a real Envoy."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from e2e_harness import (
    Backends,
    Running,
    start_propylon,
    stop_propylon,
    wait_for,
    write_walkthrough,
)
from prometheus_client.parser import text_string_to_metric_families

EXPECTED_FAMILIES = {
    "propylon_reconcile_duration_seconds": "histogram",
    "propylon_object_changes": "counter",
    "propylon_xds_pushes": "counter",
    "propylon_xds_acks": "counter",
    "propylon_xds_nacks": "counter",
    "propylon_xds_streams": "gauge",
    "propylon_status_writes": "counter",
    "propylon_status_write_conflicts": "counter",
    "propylon_watch_restarts": "counter",
    "propylon_watch_relists": "counter",
    "propylon_leader": "gauge",
    "propylon_leader_transitions": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_cpu_seconds": "counter",
}


def json_lines(running: Running) -> list[dict[str, Any]]:
    lines = [line for line in running.output().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    for record in records:
        assert {"time", "level", "logger", "msg"} <= record.keys(), record
    return records


def scrape(address: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Family name -> {sorted labels of a sample (with its name) -> value}."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        samples = out.setdefault(f"{family.name}:{family.type}", {})
        for s in family.samples:
            samples[(("__name__", s.name), *sorted(s.labels.items()))] = s.value
    return out


def value(families: dict[str, dict[Any, float]], family: str, name: str, **labels: str) -> float:
    for key, samples in families.items():
        if key.split(":")[0] == family:
            return samples.get((("__name__", name), *sorted(labels.items())), 0.0)
    raise AssertionError(f"no metric family {family}")


def test_metrics_and_json_logs(tmp_path: Path, backends: Backends) -> None:
    manifests = write_walkthrough(tmp_path / "manifests", backends.http.port, backends.grpc.port)
    running = start_propylon(
        manifests,
        tmp_path / "state",
        "--metrics-address",
        "127.0.0.1:0",
        "--log-format",
        "json",
    )
    try:
        running.wait_synced()

        def metrics_address() -> str | None:
            for record in json_lines(running):
                found = re.search(r"metrics on http://(\S+)/metrics", record["msg"])
                if found:
                    return found.group(1)
            return None

        address = wait_for(metrics_address, what="the metrics address in the log")
        families = wait_for(
            lambda: (
                (f := scrape(address))
                and value(f, "propylon_xds_acks", "propylon_xds_acks_total", kind="Listener") >= 1
                and f
            ),
            what="Envoy's ACK of the listeners in the metrics",
        )
        for name, type_ in EXPECTED_FAMILIES.items():
            assert f"{name}:{type_}" in families, f"missing {type_} {name}"
        count = "propylon_reconcile_duration_seconds_count"
        assert value(families, "propylon_reconcile_duration_seconds", count) >= 1
        changes = "propylon_object_changes_total"
        for kind in ("Gateway", "HTTPRoute", "GRPCRoute", "Service", "EndpointSlice"):
            assert value(families, "propylon_object_changes", changes, kind=kind) >= 1, kind
        pushes = "propylon_xds_pushes_total"
        for kind in ("Cluster", "ClusterLoadAssignment", "Listener", "RouteConfiguration"):
            assert value(families, "propylon_xds_pushes", pushes, kind=kind) >= 1, kind
        assert value(families, "propylon_xds_streams", "propylon_xds_streams") == 1
        assert value(families, "propylon_leader", "propylon_leader") == 1
        assert value(families, "propylon_xds_nacks", "propylon_xds_nacks_total") == 0

        # A change is one more reconcile, and counted by kind.
        before = value(families, "propylon_object_changes", changes, kind="HTTPRoute")
        route = manifests / "20-httproute.yaml"
        text = route.read_text().replace("value: /", "value: /changed", 1)
        assert text != route.read_text()
        route.write_text(text)
        wait_for(
            lambda: (
                value(scrape(address), "propylon_object_changes", changes, kind="HTTPRoute")
                > before
            ),
            what="the HTTPRoute change counted",
        )
    finally:
        stop_propylon(running)
    records = json_lines(running)
    assert any(r["level"] == "INFO" and r["logger"].startswith("propylon") for r in records)


def test_wrong_metrics_address_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "propylon.cli", "run", "-f", str(tmp_path)),
            *("--state-dir", str(tmp_path / "state"), "--metrics-address", "9962"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "error: '9962': expected HOST:PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_metrics_address_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = subprocess.run(
            [
                *(sys.executable, "-m", "propylon.cli", "run", "-f", str(tmp_path)),
                *("--state-dir", str(tmp_path / "state"), "--metrics-address", address),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"error: --metrics-address {address}: cannot listen: Address already in use" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state" / "propylon.pid").exists()  # it stopped in order
