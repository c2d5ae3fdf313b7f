"""How fast the walkthrough reacts: a file edit to live traffic, and Envoy's recovery.

    python bench/walkthrough_latency.py [--edits 20] [--kills 5]

Starts the demo backends and `propylon run` on a copy of examples/walkthrough (its own
state directory and loopback pool), then:

- edit latency: the HTTPRoute file is rewritten (atomic rename, as editors save) to add or
  remove a response header; measured from the rename to the first response through the
  gateway that shows the change, polling one keep-alive connection as fast as it answers.
  Every response in between must be a 200.
- kill recovery: Envoy gets SIGKILL; measured from the kill to the first 200 through the
  gateway again.

Prints a Markdown table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness as h

REPO = h.REPO
HOST = "http-test.mynetwork.local"


def start_backend(command: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "propylon.demo", command, "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, int(line.rsplit(":", 1)[1])


def request(conn: http.client.HTTPConnection) -> tuple[int, dict[str, str]]:
    conn.request("GET", "/", headers={"Host": f"{HOST}:8080"})
    response = conn.getresponse()
    response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}


def summary(label: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"| {label} | {len(samples)} | {statistics.mean(samples):.1f} | "
        f"{statistics.median(samples):.1f} | {p:.1f} | {max(samples):.1f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--kills", type=int, default=5)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="propylon-bench-"))
    http_backend, http_port = start_backend("http-server")
    grpc_backend, grpc_port = start_backend("grpc-server")
    manifests = work / "manifests"
    shutil.copytree(REPO / "examples" / "walkthrough", manifests)
    for path in manifests.glob("*.yaml"):
        docs = list(yaml.safe_load_all(path.read_text()))
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") == "EndpointSlice":
                service = doc["metadata"]["labels"]["kubernetes.io/service-name"]
                for port in doc["ports"]:
                    port["port"] = http_port if service == "http-test" else grpc_port
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    propylon = h.start_propylon(manifests, work / "state", "127.200.0.0/24")
    try:
        address = propylon.address("example-gateway")

        def serving() -> bool:
            c = http.client.HTTPConnection(address, 8080, timeout=1)
            try:
                return request(c)[0] == 200
            finally:
                c.close()

        h.wait_for(serving, what="the walkthrough's route")
        conn = http.client.HTTPConnection(address, 8080, timeout=5)

        route_file = manifests / "20-httproute.yaml"
        doc = yaml.safe_load(route_file.read_text())
        edit_ms: list[float] = []
        failures = 0
        for i in range(args.edits):
            marker = str(i)
            doc["spec"]["rules"][0]["filters"] = [
                {
                    "type": "ResponseHeaderModifier",
                    "responseHeaderModifier": {"set": [{"name": "x-edit", "value": marker}]},
                }
            ]
            tmp = route_file.with_suffix(".tmp")
            tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
            start = time.perf_counter()
            os.replace(tmp, route_file)
            while True:
                status, headers = request(conn)
                if status != 200:
                    failures += 1
                if headers.get("x-edit") == marker:
                    break
                if time.perf_counter() - start > 10:
                    raise TimeoutError("edit not applied")
            edit_ms.append((time.perf_counter() - start) * 1000)

        kill_ms: list[float] = []
        for _ in range(args.kills):
            pid = propylon.envoy_pid()
            start = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            conn.close()
            h.wait_for(
                lambda old=pid: propylon.health()["envoy"]["pid"] not in (None, old),  # type: ignore[misc]
                what="a new Envoy",
            )
            h.wait_for(serving, what="serving again")
            kill_ms.append((time.perf_counter() - start) * 1000)
            conn = http.client.HTTPConnection(address, 8080, timeout=5)

        print("| what | samples | mean ms | p50 ms | p99 ms | max ms |")
        print("|---|---|---|---|---|---|")
        print(summary("file edit -> live (route header)", edit_ms))
        print(summary("Envoy SIGKILL -> serving again", kill_ms))
        print(f"\nnon-200 responses during the edits: {failures}")
        return 0
    finally:
        propylon.stop()
        for proc in (http_backend, grpc_backend):
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
