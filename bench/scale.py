"""Issue #12, "flat at any scale": `python bench/scale.py [--routes 10000 50000] ...`.

For each number of routes and file layout (`one`: every route in one file; `many`:
files of 100 routes), all written before start (tmpfs), each route with its own
hostname, Service and EndpointSlice pointing at a local backend Envoy:

- start-up to all served: `propylon run` launched -> every route attached, Envoy
  synced, and a sample of hosts (first, last, 20 random) answering 200;
- RSS of `propylon run` (and of its Envoy) once served;
- new route live: a new file with one route at a time, write -> first 200 (probed
  every 1 ms over keep-alive), statuses other than 200/404 counted;
- (`one` layout) an edit in the big file: one route gets a response header, write ->
  the header seen.

Prints a Markdown table and writes bench/results-scale.json. Traffic stays on 127/8.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness as h
from bench.manifests import GATEWAY, PORT, base_docs, dump, hostname, route_docs, write_atomic
from propylon.testing.launcher import launch_propylon, repo_env, wait_for

RESULTS = Path(__file__).resolve().parent / "results-scale.json"


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    s = sorted(values)
    return {
        "n": len(s),
        "mean": statistics.fmean(s),
        "p50": s[len(s) // 2],
        "p99": s[min(len(s) - 1, round(0.99 * (len(s) - 1)))],
        "max": s[-1],
    }


def render(docs: list[dict[str, Any]]) -> str:
    """YAML through libyaml's emitter (PyYAML's own takes minutes at 50 000 routes)."""
    return str(yaml.dump_all(docs, Dumper=yaml.CSafeDumper, sort_keys=False))


def write_routes(manifests: Path, n: int, layout: str, backend: int) -> list[str]:
    """The manifests; returns each route's text (3 documents) for later edits."""
    write_atomic(manifests / "00-base.yaml", render(base_docs()))
    texts = [render(route_docs(i, backend)) for i in range(n)]
    size = n if layout == "one" else 100
    for first in range(0, n, size):
        chunk = texts[first : first + size]
        (manifests / f"routes-{first:06d}.yaml").write_text("---\n".join(chunk))
    return texts


def probe_until(
    prober: h.Prober, host: str, ok: Any, timeout: float = 30
) -> tuple[float, dict[str, int]]:
    """Seconds until `ok(status, headers)`, and the statuses other than 200/404 seen."""
    t0 = time.monotonic()
    others: dict[str, int] = {}
    while True:
        status, headers, _ = prober.get(host)
        if ok(status, headers):
            return time.monotonic() - t0, others
        if status not in (200, 404):
            others[str(status)] = others.get(str(status), 0) + 1
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{host}: still {status} after {timeout}s")
        time.sleep(0.001)


def run_case(n: int, layout: str, args: argparse.Namespace) -> dict[str, Any]:
    import psutil

    root = Path(tempfile.mkdtemp(prefix="propylon-scale-", dir="/dev/shm"))
    manifests = root / "manifests"
    manifests.mkdir()
    backends = h.start_backends(["ok"])
    backend = backends.ports[0]
    out: dict[str, Any] = {"routes": n, "layout": layout}
    p: h.Propylon | None = None
    try:
        texts = write_routes(manifests, n, layout, backend)
        t0 = time.monotonic()
        base = launch_propylon(
            manifests,
            root / "state",
            "--log-level",
            "warning",
            pool=f"127.{200 + os.getpid() % 50}.{n % 250}.0/24",
            env=repo_env(h.REPO),
        )
        p = h.Propylon(base.process, base.state_dir, base.manifests, base.log)
        wait_for(p.up, timeout=args.timeout, what="propylon up")
        out["up_s"] = time.monotonic() - t0
        wait_for(lambda: p.attached(GATEWAY) == n, timeout=args.timeout, what="attached")
        wait_for(p.synced, timeout=args.timeout, what="synced")
        prober = h.Prober(p.address(GATEWAY), PORT)
        rng = random.Random(n)
        for i in [0, n - 1, *rng.sample(range(n), min(20, n))]:
            probe_until(prober, hostname(i), lambda s, _: s == 200, timeout=args.timeout)
        out["startup_s"] = time.monotonic() - t0
        proc = psutil.Process(p.process.pid)
        out["rss_mib"] = proc.memory_info().rss / 2**20
        out["envoy_rss_mib"] = psutil.Process(p.envoy_pid()).memory_info().rss / 2**20
        # New routes, one file each.
        times: list[float] = []
        others: dict[str, int] = {}
        for j in range(args.new):
            i = n + j
            text = dump(route_docs(i, backend))
            t = time.monotonic()
            write_atomic(manifests / f"new-{i}.yaml", text)
            _, seen = probe_until(prober, hostname(i), lambda s, _: s == 200)
            times.append((time.monotonic() - t) * 1000)
            for k, v in seen.items():
                others[k] = others.get(k, 0) + v
            time.sleep(args.gap)
        out["new_route_ms"] = _stats(times)
        out["new_route_other_statuses"] = others
        out["rss_after_mib"] = proc.memory_info().rss / 2**20
        if layout == "one" and args.edits:
            big = manifests / "routes-000000.yaml"
            edit_ms: list[float] = []
            for e in range(args.edits):
                k = rng.randrange(n)
                texts[k] = render(route_docs(k, backend, header=f"e{e}"))
                text = "---\n".join(texts)  # rendered before the clock starts
                t = time.monotonic()
                write_atomic(big, text)
                probe_until(
                    prober,
                    hostname(k),
                    lambda s, hd, v=f"e{e}": s == 200 and hd.get("x-bench") == v,
                )
                edit_ms.append((time.monotonic() - t) * 1000)
                time.sleep(args.gap)
            out["edit_big_file_ms"] = _stats(edit_ms)
        prober.close()
    finally:
        if p is not None:
            t = time.monotonic()
            p.stop()
            out["stop_s"] = time.monotonic() - t
        backends.stop()
        shutil.rmtree(root, ignore_errors=True)
    return out


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| routes | layout | start-up to all served | RSS propylon (Envoy) "
        "| new route live: mean / p50 / max | other statuses "
        "| edit in the big file: mean / max |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        nr = r.get("new_route_ms", {})
        ed = r.get("edit_big_file_ms", {})
        rows.append(
            f"| {r['routes']} | {r['layout']} | {r['startup_s']:.1f} s | "
            f"{r['rss_mib']:.0f} MiB ({r['envoy_rss_mib']:.0f}) | "
            f"{nr.get('mean', float('nan')):.1f} / {nr.get('p50', float('nan')):.1f} / "
            f"{nr.get('max', float('nan')):.1f} ms | {r['new_route_other_statuses'] or 'none'} | "
            + (f"{ed['mean']:.1f} / {ed['max']:.1f} ms |" if ed else "- |")
        )
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--routes", type=int, nargs="+", default=[5000, 10000, 50000])
    ap.add_argument("--layouts", nargs="+", default=["many", "one"])
    ap.add_argument("--new", type=int, default=100, help="new routes measured per case")
    ap.add_argument("--edits", type=int, default=10, help="edits in the big file (one layout)")
    ap.add_argument("--gap", type=float, default=0.05, help="seconds between changes")
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args()
    began = time.time()
    results = []
    for n in args.routes:
        for layout in args.layouts:
            r = run_case(n, layout, args)
            print(json.dumps(r), flush=True)
            results.append(r)
    doc = {"args": vars(args), "wall_s": time.time() - began, "results": results}
    RESULTS.write_text(json.dumps(doc, indent=1) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
