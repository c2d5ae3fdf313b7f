"""Issue #12: where the bytes of a start-up go, in process.

    python bench/memory_profile.py --routes 5000 [--layout many|one] [--top 25]

The same manifests and stages as bench/inprocess_scale.py (the file source's load, the
store's apply, one evaluation with the runtime's Builder, Translator and
ConditionDiagnostics), under tracemalloc. Prints:

- the Python heap after the start-up (tracemalloc's traced total) and the RSS;
- what each long-lived holder keeps alone: the holders are dropped one at a time, last
  built first (conditions, translator, builder, evaluation, snapshot, store, changes,
  source), and the traced memory each drop frees is its exclusive share;
- the live allocations grouped by the innermost `propylon` frame of their traceback
  (file:line), and by that frame's file: which code made the bytes still held.

tracemalloc costs CPU (about 2-3x); the figures are bytes, not time.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _mib(n: float) -> str:
    return f"{n / 2**20:7.1f} MiB"


def _where(tb: tracemalloc.Traceback) -> tuple[str, str]:
    """(file:line, file) of the innermost frame in propylon's own code."""
    for frame in reversed(tb):  # tracemalloc lists the oldest first
        name = frame.filename
        i = name.rfind("/propylon/")
        if i >= 0 and "/site-packages/" not in name:
            short = name[i + 1 :]
            return f"{short}:{frame.lineno}", short
    frame = tb[0]
    return f"(outside) {frame.filename}:{frame.lineno}", f"(outside) {frame.filename}"


def profile(manifests: Path, top: int, frames: int) -> None:
    from propylon import gatewayapi
    from propylon.clock import new_uid, timestamp_now
    from propylon.envoy import Translator
    from propylon.runtime.pipeline import ConditionDiagnostics, evaluate
    from propylon.sources.files import FileSource
    from propylon.store import Store
    from propylon.values import Values

    gc.collect()
    print(f"RSS after imports: {_rss_mib():.1f} MiB")
    tracemalloc.start(frames)
    holders: dict[str, Any] = {}
    holders["source"] = source = FileSource([str(manifests)])
    holders["changes"] = changes = source.load()
    holders["store"] = store = Store(now=timestamp_now, new_uid=new_uid)
    holders["snapshot"] = snapshot = store.apply(changes)
    translator, builder, conditions = Translator(), gatewayapi.Builder(), ConditionDiagnostics()
    holders["builder"], holders["translator"], holders["conditions"] = (
        builder,
        translator,
        conditions,
    )
    holders["evaluation"] = evaluate(
        snapshot,
        changes,
        Values(),
        translator=translator,
        builder=builder,
        conditions=conditions,
    )
    del source, changes, store, snapshot, translator, builder, conditions
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    print(f"after start-up: traced {_mib(current)} (peak {_mib(peak)}), RSS {_rss_mib():.1f} MiB")

    snap = tracemalloc.take_snapshot()
    by_site: Counter[str] = Counter()
    by_line: Counter[str] = Counter()
    by_file: Counter[str] = Counter()
    count_line: Counter[str] = Counter()
    for trace in snap.traces:
        line, file = _where(trace.traceback)
        by_line[line] += trace.size
        count_line[line] += 1
        by_file[file] += trace.size
        site = trace.traceback[-1]
        by_site[f"{site.filename}:{site.lineno}"] += trace.size
    print(f"\nlive bytes by file (innermost propylon frame), top {top}:")
    for file, size in by_file.most_common(top):
        print(f"  {_mib(size)}  {file}")
    print(f"\nlive bytes by line (innermost propylon frame), top {top}:")
    for line, size in by_line.most_common(top):
        print(f"  {_mib(size)}  {count_line[line]:8d} blocks  {line}")
    print(f"\nlive bytes by allocating line (any code), top {top}:")
    for line, size in by_site.most_common(top):
        print(f"  {_mib(size)}  {line}")
    del snap, by_line, by_file, count_line, by_site

    print("\nexclusive share of each holder (dropped last built first):")
    for name in (
        "conditions",
        "translator",
        "builder",
        "evaluation",
        "snapshot",
        "store",
        "changes",
        "source",
    ):
        before = tracemalloc.get_traced_memory()[0]
        del holders[name]
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        print(f"  {_mib(before - after)}  {name}")
    print(f"  {_mib(tracemalloc.get_traced_memory()[0])}  left (module-level caches)")
    tracemalloc.stop()


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--routes", type=int, default=5000)
    ap.add_argument("--layout", choices=["one", "many"], default="many")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--frames", type=int, default=20, help="traceback depth kept")
    args = ap.parse_args()
    from bench.scale import write_routes

    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    work = Path(tempfile.mkdtemp(prefix="propylon-memory-", dir=base))
    try:
        write_routes(work, args.routes, args.layout, 9)
        profile(work, args.top, args.frames)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
