"""Issue #12, new route live: the control plane's own cost per new route, in process.

    python bench/new_route_inprocess.py --routes 10000 [--new 40] [--profile FILE]
    python bench/new_route_inprocess.py --routes 10000 --compare OLD_CHECKOUT [--rounds 2]

The same manifests as `bench/scale.py --layouts many` (tmpfs, files of 100 routes, each
route with its own hostname, Service and EndpointSlice). A `propylon run` Instance
without Envoy (bench/simulated_envoy.py answers its Delta stream at once) reconciles
them, then `--new` routes are written one file each, and each goes the way a watch
event takes it: `FileSource.update` (on the loop), `Instance.reconcile` (store, build,
translate, statuses on the worker thread; push and status merge on the loop), the
stream's responses acknowledged. Per stage, the thread's CPU time (steady on a loaded
machine) and the change's wall time. `--compare` runs another checkout (a `git worktree
add --detach` of main, say) in alternation with this one, each in a fresh process.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# (label, module, class, method): each wrapped to add its thread CPU time per change.
STAGES = (
    ("read", "propylon.sources.files", "FileSource", "update"),
    ("store", "propylon.store.store", "Store", "apply"),
    ("build", "propylon.gatewayapi.incremental", "Builder", "build"),
    ("policy", "propylon.policy", "PolicyEngine", "apply"),
    ("translate", "propylon.envoy.translator", "Translator", "translate"),
    ("conditions", "propylon.runtime.pipeline", "ConditionDiagnostics", "__call__"),
    ("merge", "propylon.runtime.instance", "Instance", "_merge_statuses"),
    ("push", "propylon.xds._server", "AdsServer", "update"),
)


def _wrap(totals: dict[str, float], label: str, owner: Any, name: str) -> None:
    original = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        c0 = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            totals[label] = totals.get(label, 0.0) + time.thread_time() - c0

    setattr(owner, name, timed)


def measure(tree: Path, manifests: Path, new: int, profile: str | None) -> dict[str, Any]:
    sys.path.insert(0, str(tree))
    sys.path.insert(1, str(HERE.parent))
    import importlib

    from bench.manifests import dump, route_docs, write_atomic
    from bench.simulated_envoy import SimulatedEnvoy
    from propylon.runtime.instance import Instance
    from propylon.runtime.options import RunOptions
    from propylon.sources.files import FileSource

    totals: dict[str, float] = {}
    for label, module, cls, method in STAGES:
        try:
            owner = getattr(importlib.import_module(module), cls)
        except (ImportError, AttributeError):
            continue
        _wrap(totals, label, owner, method)
    out: dict[str, Any] = {"tree": str(tree)}
    changes: list[dict[str, float]] = []

    async def run() -> None:
        state = manifests.parent / "state"
        inst = Instance(RunOptions(paths=(manifests,), state_dir=state))
        inst.state.ensure()
        envoy = SimulatedEnvoy()
        inst._xds = envoy.server
        source: FileSource = inst._source
        inst._collector.start()  # the serving GC policy (runtime/collector.py)
        c0, t0 = time.process_time(), time.perf_counter()
        await inst.reconcile(source.load())
        envoy.start()
        out["startup_cpu_s"] = time.process_time() - c0
        out["startup_wall_s"] = time.perf_counter() - t0
        inst.flush_state()  # the start-up's save now, not among the measured changes
        gc.collect()
        gc.freeze()
        backend = 9
        n = int(out["routes"])
        profiler: Any = None
        texts = [dump(route_docs(n + j, backend)) for j in range(new + 2)]
        for j in range(new + 2):  # the first two: warm-up
            if profile and j == 2:
                import cProfile

                async def inline(fn: Callable[[], Any], stop: Any = None) -> Any:
                    return fn()  # one thread, so that cProfile sees the worker's part too

                inst._worker.run = inline  # type: ignore[method-assign]
                profiler = cProfile.Profile()
                profiler.enable()
            path = manifests / f"new-{n + j}.yaml"
            write_atomic(path, texts[j])
            totals.clear()
            c0, t0 = time.process_time(), time.perf_counter()
            changeset = source.update([str(path)])  # what the watcher does per event
            await inst.reconcile(changeset)
            t1 = time.perf_counter()
            envoy.answer_all()
            assert envoy.stream.acked_version == inst.xds_version, envoy.stream.describe()
            row = {k: 1000 * v for k, v in totals.items()}
            row["cpu"] = 1000 * (time.process_time() - c0)
            row["wall"] = 1000 * (time.perf_counter() - t0)
            row["to_push"] = 1000 * (t1 - t0)
            if j >= 2:
                changes.append(row)
            await asyncio.sleep(0.01)  # the loop's timers (state save, GC) get their turn
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        inst._collector.stop()

    out["routes"] = sum(1 for p in manifests.glob("routes-*.yaml")) * 100
    asyncio.run(run())
    out["changes"] = changes
    return out


def _mean(rows: list[dict[str, float]], key: str) -> float:
    return statistics.fmean(r.get(key, 0.0) for r in rows)


def summary(r: dict[str, Any]) -> str:
    rows = r["changes"]
    labels = [s[0] for s in STAGES]
    parts = ", ".join(f"{k} {_mean(rows, k):.2f}" for k in labels)
    return (
        f"{r['tree']} ({r['routes']} routes): per new route CPU {_mean(rows, 'cpu'):.2f} ms"
        f" (max {max(x['cpu'] for x in rows):.2f}; {parts}), wall {_mean(rows, 'wall'):.2f}"
        f" ms (max {max(x['wall'] for x in rows):.2f}); start-up CPU {r['startup_cpu_s']:.1f} s"
    )


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--routes", type=int, default=10000)
    ap.add_argument("--new", type=int, default=40, help="new routes measured (+2 warm-up)")
    ap.add_argument("--compare", type=Path, help="another checkout to measure in alternation")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--profile", help="cProfile of the measured changes (this checkout)")
    ap.add_argument("--json", type=Path, help="write the raw results here")
    ap.add_argument("--tree", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--manifests", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.manifests is not None:  # a child: one measurement, JSON on stdout
        print(json.dumps(measure(args.tree.resolve(), args.manifests, args.new, args.profile)))
        return 0
    sys.path.insert(0, str(HERE.parent))
    from bench.scale import write_routes

    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    work = Path(tempfile.mkdtemp(prefix="propylon-newroute-", dir=base))
    results: list[dict[str, Any]] = []
    try:
        pristine = work / "pristine"
        pristine.mkdir()
        write_routes(pristine, args.routes, "many", 9)
        trees: list[Path] = [HERE.parent] + ([args.compare] if args.compare else [])
        for _ in range(args.rounds):
            for tree in reversed(trees):  # the other checkout first
                run_dir = work / "run"
                shutil.rmtree(run_dir, ignore_errors=True)
                run_dir.mkdir()
                manifests = run_dir / "m"
                shutil.copytree(pristine, manifests)
                cmd = [sys.executable, __file__, "--tree", str(tree), "--manifests"]
                cmd += [str(manifests), "--new", str(args.new)]
                if args.profile and tree == HERE.parent:
                    cmd += ["--profile", args.profile]
                child = subprocess.run(cmd, check=True, capture_output=True, text=True)
                result = json.loads(child.stdout)
                results.append(result)
                print(summary(result), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
