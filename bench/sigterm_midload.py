"""How fast `propylon run` obeys a SIGTERM while it is still reading and building
thousands of routes (BENCHMARKS.md "SIGTERM stops `propylon run` within 2 s even
mid-load"), and how slowly its local API answers meanwhile. The test
(tests/runtime/test_run_process.py) checks that it stops cleanly; the figures are here.

    python bench/sigterm_midload.py [--routes 8000] [--runs 5]

Each run writes one Gateway and N HTTPRoutes (backends that need not exist) in one file,
starts `propylon run`, waits for its Envoy, polls the local API ten times, sends SIGTERM
and measures the time to exit. Prints a Markdown table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.manifests import base_docs, dump, route_docs
from propylon.state import ApiClient
from propylon.testing.launcher import launch_propylon, wait_for


def one_run(folder: Path, routes: int) -> tuple[float, float, str, bool]:
    """(SIGTERM to exit s, slowest local API answer s, status when stopped, Envoy gone)."""
    manifests = folder / "manifests"
    manifests.mkdir()
    docs = base_docs()
    for i in range(routes):  # the route alone: its backend need not exist
        docs += [d for d in route_docs(i, 9) if d["kind"] == "HTTPRoute"]
    (manifests / "routes.yaml").write_text(dump(docs))
    running = launch_propylon(manifests, folder / "state", pool="127.66.3.0/24")
    api = ApiClient(folder / "state" / "api.sock")
    try:
        wait_for(lambda: api.healthz()["envoy"]["pid"], timeout=120, what="Envoy started")
        slowest = 0.0
        health = api.healthz()
        for _ in range(10):
            began = time.monotonic()
            with contextlib.suppress(TimeoutError):  # counted as the client's timeout
                health = api.healthz()
            slowest = max(slowest, time.monotonic() - began)
            time.sleep(0.05)
        envoy = int(health["envoy"]["pid"])
        running.process.terminate()
        began = time.monotonic()
        running.process.wait(timeout=300)
        took = time.monotonic() - began
        gone = not Path(f"/proc/{envoy}").exists() or "Z" in _state(envoy)
        return took, slowest, str(health["status"]), gone
    finally:
        running.stop()


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return "gone"
    return stat[stat.rindex(")") + 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=8000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="propylon-sigterm-") as folder:
            rows.append(one_run(Path(folder), args.routes))
    stops = [r[0] for r in rows]
    print(
        "| routes | runs | SIGTERM to exit: mean / max | local API slowest "
        "| status at stop | Envoy gone | load |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {args.routes} | {args.runs} | {statistics.mean(stops):.2f} / {max(stops):.2f} s "
        f"| {max(r[1] for r in rows):.3f} s | {', '.join(sorted({r[2] for r in rows}))} "
        f"| {sum(r[3] for r in rows)}/{args.runs} | {os.getloadavg()[0]:.1f} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
