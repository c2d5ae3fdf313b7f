"""Where a new route's propagation time goes, stage by stage.

    python bench/propagation_trace.py [--prefill 3000] [--routes 30] [--files-of 100]

Like table 1 of bench/run.py (routes added one at a time, each in a file of its own, each
host probed until 404 turns into 200; probing every 1 ms here), with `propylon run`
instrumented by bench/trace/sitecustomize.py: for each route, the times from the file's
rename to the watcher's read, the store, the build, the translation, each xDS response
sent, and the first 200. Prints the mean of each stage as a Markdown table, then the
slowest changes with what else happened in their window (a garbage collection, the state
save, a rescan); nothing is asserted.

`--files-of N` (as bench/scale.py's `many` layout): the routes in place are written in
files of N before `propylon run` starts, on tmpfs (/dev/shm), instead of one file each
while it runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness as h
from bench.manifests import GATEWAY, PORT, dump, hostname, route_docs, write_atomic
from bench.run import Env
from bench.scale import render

MARKS = (
    "read-start",
    "read-end",
    "reconcile-start",
    "store-start",
    "store-end",
    "build-end",
    "translate-end",
    "send CDS",
    "send EDS",
    "send SRDS",
    "send RDS",
    "write CDS",
    "write EDS",
    "write SRDS",
    "ack-start CDS",
    "ack-start EDS",
    "ack-start SRDS",
    "reconcile-end",
    "first 200",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefill", type=int, default=3000)
    parser.add_argument("--routes", type=int, default=30)
    parser.add_argument("--files-of", type=int, default=0, help="prefill in files of N")
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between changes")
    parser.add_argument(
        "--envoy-stats",
        metavar="REGEX",
        help="print Envoy's stats matching REGEX at the end (e.g. update_duration)",
    )
    args = parser.parse_args()
    if args.files_of:
        from bench import run

        run.WORK_DIR = run._memory_dir()
    trace = Path(tempfile.mkstemp(prefix="propylon-trace-")[1])
    os.environ["PROPYLON_BENCH_TRACE"] = str(trace)
    site = str(Path(__file__).resolve().parent / "trace")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [site, os.environ.get("PYTHONPATH")]))
    env = Env(["ok"])
    windows: list[tuple[float, float]] = []
    stats = ""
    try:
        backend = env.backends.ports[0]
        if args.files_of:
            docs = [doc for i in range(args.prefill) for doc in route_docs(i, backend)]
            per_file = 3 * args.files_of
            for first in range(0, len(docs), per_file):
                text = render(docs[first : first + per_file])
                (env.manifests / f"routes-{first // 3:06d}.yaml").write_text(text)
        started = time.monotonic()
        p = env.start()
        if not args.files_of:
            for i in range(args.prefill):
                write_atomic(env.manifests / f"r{i}.yaml", dump(route_docs(i, backend)))
        addr = p.address(GATEWAY)
        h.wait_for(lambda: p.attached(GATEWAY) == args.prefill, timeout=1800, what="prefill")
        h.wait_for(p.synced, timeout=600, what="sync")
        print(f"{args.prefill} routes served {time.monotonic() - started:.1f} s after start")
        prober = h.Prober(addr, PORT)
        for i in range(args.prefill, args.prefill + args.routes):
            text = dump(route_docs(i, backend))
            t0 = time.monotonic()
            write_atomic(env.manifests / f"r{i}.yaml", text)
            while prober.get(hostname(i))[0] != 200:
                time.sleep(0.001)
            t1 = time.monotonic()
            windows.append((t0, t1))
            # Let the ACKs of this change be handled before the next one starts.
            h.wait_for(p.synced, timeout=30, what="sync")
            time.sleep(args.gap)
        if args.envoy_stats:
            import urllib.parse
            import urllib.request

            admin = p.health()["envoy"]["admin"]
            query = urllib.parse.urlencode({"filter": args.envoy_stats})
            for _ in range(2):  # the first asks Envoy to merge its histograms
                with urllib.request.urlopen(f"http://{admin}/stats?{query}", timeout=30) as r:
                    stats = r.read().decode()
                time.sleep(1)
    finally:
        env.close()
    if args.envoy_stats:
        print(f"Envoy stats matching {args.envoy_stats!r}:\n{stats}")
    events = [line.split(None, 1) for line in trace.read_text().splitlines()]
    trace.unlink()
    stages: dict[str, list[float]] = {m: [] for m in MARKS}
    slow: list[tuple[float, list[str]]] = []
    for t0, t1 in windows:
        seen: dict[str, float] = {}
        extra: list[str] = []
        for stamp, what in events:
            t = float(stamp)
            if t0 - 0.2 <= t <= t1 + 0.05 and what.startswith(("gc-", "save", "rescan")):
                extra.append(f"{what} at {(t - t0) * 1000:+.1f} ms")
            if t0 <= t <= t1 + 0.05:
                what = what if what.startswith(("send", "write", "ack")) else what.split(" ", 1)[0]
                seen.setdefault(what, t)
        seen["first 200"] = t1
        slow.append(((t1 - t0) * 1000, extra))
        for mark in MARKS:
            if mark in seen and seen[mark] <= t1 + 0.05:
                stages[mark].append((seen[mark] - t0) * 1000)
    print(f"{len(windows)} routes added with {args.prefill} in place; ms after the rename:\n")
    print("| stage | mean | p50 | max | seen |")
    print("|---|---|---|---|---|")
    for mark in MARKS:
        v = stages[mark]
        if v:
            print(
                f"| {mark} | {statistics.fmean(v):.1f} | {statistics.median(v):.1f} | "
                f"{max(v):.1f} | {len(v)} |"
            )
    print("\nslowest changes (ms) and what else ran from 200 ms before the write to the 200:")
    for ms, extra in sorted(slow, reverse=True)[:5]:
        print(f"- {ms:.1f}: {', '.join(extra) or 'nothing else'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
