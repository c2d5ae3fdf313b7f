"""Issue #12 in process: start-up stages and an edit in one big file, CPU time and wall.

    python bench/inprocess_scale.py --routes 10000 [--layout one|many] [--edits 5]
    python bench/inprocess_scale.py --routes 10000 --compare OLD_CHECKOUT [--rounds 2]

The same manifests as bench/scale.py (tmpfs); what `propylon run` does on start-up
without Envoy: the file source reads them (`FileSource.load`), the store applies them,
then one evaluation (build + translate + statuses' diagnostics), with the runtime's
memory objects (Builder, Translator, ConditionDiagnostics). Then (`one` layout) one
route in the big file gets a label, `--edits` times: `update`, `apply`, `evaluate`.
CPU time (process_time) is reported beside wall time: on a shared, loaded machine it is
the steadier of the two. `--compare` runs the same measurement with another checkout's
`propylon` (e.g. a `git worktree add --detach` of an older commit) in alternation with
this one, each in a fresh process, and prints both.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(tree: Path, manifests: Path, edits: int) -> dict[str, Any]:
    sys.path.insert(0, str(tree))
    from propylon import gatewayapi
    from propylon.clock import new_uid, timestamp_now
    from propylon.envoy import Translator
    from propylon.runtime.pipeline import ConditionDiagnostics, evaluate
    from propylon.sources.files import FileSource
    from propylon.store import Store
    from propylon.values import Values

    gc.disable()  # as the runtime's reconcile path (runtime/collector.py)
    out: dict[str, Any] = {"tree": str(tree), "rss_start_mib": _rss_mib()}
    source = FileSource([str(manifests)])
    store = Store(now=timestamp_now, new_uid=new_uid)
    translator, builder, conditions = Translator(), gatewayapi.Builder(), ConditionDiagnostics()
    values = Values()

    def stage(name: str, fn: Any) -> Any:
        c0, t0 = time.process_time(), time.perf_counter()
        result = fn()
        out[name] = {
            "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0,
            "rss_mib": _rss_mib(),
        }
        return result

    changes = stage("load", source.load)
    snapshot = stage("store", lambda: store.apply(changes))
    stage(
        "evaluate",
        lambda: evaluate(
            snapshot,
            changes,
            values,
            translator=translator,
            builder=builder,
            conditions=conditions,
        ),
    )
    big = sorted(manifests.glob("routes-*.yaml"))
    if edits and len(big) == 1:
        gc.freeze()
        path = big[0]
        text = path.read_text()
        per_edit = []
        for i in range(edits):
            edited = text.replace("name: r5\n", f"name: r5\n  labels:\n    edit: e{i}\n", 1)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(edited)
            tmp.rename(path)
            c0, t0 = time.process_time(), time.perf_counter()
            changes = source.update([str(path)])
            t1 = time.perf_counter()
            snapshot = store.apply(changes)
            t2 = time.perf_counter()
            evaluate(
                snapshot,
                changes,
                values,
                translator=translator,
                builder=builder,
                conditions=conditions,
            )
            t3 = time.perf_counter()
            per_edit.append(
                {
                    "update_ms": 1000 * (t1 - t0),
                    "store_ms": 1000 * (t2 - t1),
                    "evaluate_ms": 1000 * (t3 - t2),
                    "wall_ms": 1000 * (t3 - t0),
                    "cpu_ms": 1000 * (time.process_time() - c0),
                }
            )
        out["edits"] = per_edit[1:] if len(per_edit) > 1 else per_edit  # first: warm-up
    return out


def _summary(r: dict[str, Any]) -> str:
    cpu = sum(r[s]["cpu_s"] for s in ("load", "store", "evaluate"))
    wall = sum(r[s]["wall_s"] for s in ("load", "store", "evaluate"))
    parts = [
        f"{r['tree']}: start-up CPU {cpu:.2f} s (load {r['load']['cpu_s']:.2f}, store "
        f"{r['store']['cpu_s']:.2f}, evaluate {r['evaluate']['cpu_s']:.2f}), wall {wall:.2f} s,"
        f" RSS {r['evaluate']['rss_mib']:.0f} MiB"
    ]
    if r.get("edits"):
        e = r["edits"]
        parts.append(
            f"edit in the big file: CPU {sum(x['cpu_ms'] for x in e) / len(e):.1f} ms mean "
            f"(update {sum(x['update_ms'] for x in e) / len(e):.1f}, wall "
            f"{sum(x['wall_ms'] for x in e) / len(e):.1f} ms mean, max "
            f"{max(x['wall_ms'] for x in e):.1f})"
        )
    return "; ".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--routes", type=int, default=10000)
    ap.add_argument("--layout", choices=["one", "many"], default="one")
    ap.add_argument("--edits", type=int, default=6)
    ap.add_argument("--compare", type=Path, help="another checkout to measure in alternation")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--tree", type=Path, default=HERE.parent, help=argparse.SUPPRESS)
    ap.add_argument("--manifests", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.manifests is not None:  # a child: one measurement, JSON on stdout
        print(json.dumps(measure(args.tree.resolve(), args.manifests, args.edits)))
        return 0
    sys.path.insert(0, str(HERE.parent))
    from bench.scale import write_routes

    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    work = Path(tempfile.mkdtemp(prefix="propylon-inprocess-", dir=base))
    try:
        pristine = work / "pristine"
        pristine.mkdir()
        write_routes(pristine, args.routes, args.layout, 9)
        trees = [HERE.parent] + ([args.compare] if args.compare else [])
        for _ in range(args.rounds):
            for tree in reversed(trees):  # the other checkout first
                manifests = work / "m"
                shutil.rmtree(manifests, ignore_errors=True)
                shutil.copytree(pristine, manifests)
                child = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--tree",
                        str(tree),
                        "--manifests",
                        str(manifests),
                        "--edits",
                        str(args.edits),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                print(_summary(json.loads(child.stdout)), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
