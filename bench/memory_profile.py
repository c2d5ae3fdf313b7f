"""Issue #12: where the bytes of a start-up go, in process.

    python bench/memory_profile.py --routes 5000 [--layout many|one] [--tracemalloc]

The same manifests and stages as bench/inprocess_scale.py (the file source's load, the
store's apply, one evaluation with the runtime's Builder, Translator and
ConditionDiagnostics). Prints the RSS after each stage, then what each long-lived
holder keeps, attribute by attribute: the objects reachable from it that no holder
listed before it reaches (sys.getsizeof of each object once: dicts, strings, models,
protobuf bytes...; the holders in pipeline order, so the parsed objects count for the
source, the store's stamped copies for the store). A few seconds at 5000 routes.

`--tracemalloc`: also the live allocations by the line that made them and by the
innermost `propylon` frame of their traceback (`--frames` deep). Minutes at 2000 routes
(tracemalloc records a traceback per allocation); the figures are bytes, not time.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import tracemalloc
import types
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

_LEAVES = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    bool,
    type(None),
)
_REPORT_MIB = 0.25  # attributes holding less are summed into their holder's total only


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _mib(n: float) -> str:
    return f"{n / 2**20:7.2f} MiB"


def _children(o: Any) -> Iterator[Any]:
    from pydantic import BaseModel

    if isinstance(o, BaseModel):
        yield o.__dict__
        yield o.__pydantic_fields_set__
        if o.__pydantic_extra__ is not None:
            yield o.__pydantic_extra__
    elif isinstance(o, dict):
        yield from o.keys()
        yield from o.values()
    elif isinstance(o, list | tuple | set | frozenset):
        yield from o
    else:
        if hasattr(o, "__dict__"):
            yield o.__dict__
        yield from _slot_values(o)


def _slot_values(o: Any) -> Iterator[Any]:
    for cls in type(o).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if name not in ("__dict__", "__weakref__") and hasattr(o, name):
                yield getattr(o, name)


class _Walker:
    def __init__(self) -> None:
        self.seen: set[int] = set()

    def size(self, root: Any) -> Counter[str]:
        by_type: Counter[str] = Counter()
        stack = [root]
        while stack:
            o = stack.pop()
            if isinstance(o, _LEAVES) or id(o) in self.seen:
                continue
            self.seen.add(id(o))
            by_type[type(o).__name__] += sys.getsizeof(o)
            stack.extend(_children(o))
        return by_type

    def report(self, name: str, holder: Any) -> None:
        self.seen.add(id(holder))
        attrs = list(getattr(holder, "__dict__", {}).items())
        for cls in type(holder).__mro__:
            for slot in getattr(cls, "__slots__", ()):
                if slot not in ("__dict__", "__weakref__") and hasattr(holder, slot):
                    attrs.append((slot, getattr(holder, slot)))
        total = 0
        for attr, value in attrs:
            by_type = self.size(value)
            size = sum(by_type.values())
            total += size
            if size >= _REPORT_MIB * 2**20:
                top = ", ".join(f"{t} {b / 2**20:.1f}" for t, b in by_type.most_common(5))
                print(f"  {_mib(size)}  {name}.{attr}  ({top})")
        print(f"{_mib(total)}  {name}")


def _where(tb: tracemalloc.Traceback) -> str:
    """file:line of the innermost frame in propylon's own code."""
    for frame in reversed(tb):  # tracemalloc lists the oldest first
        i = frame.filename.rfind("/propylon/")
        if i >= 0 and "/site-packages/" not in frame.filename:
            return f"{frame.filename[i + 1 :]}:{frame.lineno}"
    return f"(outside) {tb[-1].filename}:{tb[-1].lineno}"


def profile(manifests: Path, top: int, frames: int | None) -> None:
    from propylon import gatewayapi
    from propylon.clock import new_uid, timestamp_now
    from propylon.envoy import Translator
    from propylon.runtime.pipeline import ConditionDiagnostics, evaluate
    from propylon.sources.files import FileSource
    from propylon.store import Store
    from propylon.values import Values

    gc.disable()  # as the runtime's reconcile path
    print(f"RSS after imports: {_rss_mib():.1f} MiB")
    if frames:
        tracemalloc.start(frames)
    source = FileSource([str(manifests)])
    changes = source.load()
    print(f"RSS after load: {_rss_mib():.1f} MiB")
    store = Store(now=timestamp_now, new_uid=new_uid)
    snapshot = store.apply(changes)
    print(f"RSS after store: {_rss_mib():.1f} MiB")
    translator, builder, conditions = Translator(), gatewayapi.Builder(), ConditionDiagnostics()
    evaluation = evaluate(
        snapshot,
        changes,
        Values(),
        translator=translator,
        builder=builder,
        conditions=conditions,
    )
    print(f"RSS after evaluate: {_rss_mib():.1f} MiB")
    if frames:
        print(f"traced: {_mib(tracemalloc.get_traced_memory()[0])}")
        snap = tracemalloc.take_snapshot()
        tracemalloc.stop()
        by_site: Counter[str] = Counter()
        by_propylon: Counter[str] = Counter()
        for trace in snap.traces:
            site = trace.traceback[-1]
            by_site[f"{site.filename}:{site.lineno}"] += trace.size
            by_propylon[_where(trace.traceback)] += trace.size
        print(f"\nlive bytes by the line that allocated them, top {top}:")
        for line, size in by_site.most_common(top):
            print(f"  {_mib(size)}  {line}")
        print(f"\nlive bytes by the innermost propylon frame, top {top}:")
        for line, size in by_propylon.most_common(top):
            print(f"  {_mib(size)}  {line}")
        del snap
    print("\nkept by each holder (what holders listed before it do not reach):")
    walker = _Walker()
    for name, holder in (
        ("source", source),
        ("store", store),
        ("snapshot", snapshot),
        ("builder", builder),
        ("translator", translator),
        ("conditions", conditions),
        ("evaluation.result", evaluation.result),
        ("evaluation.resources", evaluation.resources),
    ):
        walker.report(name, holder)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--routes", type=int, default=5000)
    ap.add_argument("--layout", choices=["one", "many"], default="many")
    ap.add_argument("--tracemalloc", action="store_true")
    ap.add_argument("--frames", type=int, default=12, help="traceback depth (--tracemalloc)")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    from bench.scale import write_routes

    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    work = Path(tempfile.mkdtemp(prefix="propylon-memory-", dir=base))
    try:
        write_routes(work, args.routes, args.layout, 9)
        profile(work, args.top, args.frames if args.tracemalloc else None)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
