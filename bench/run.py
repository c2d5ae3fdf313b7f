"""Propylon benchmarks: `python bench/run.py [--quick] [--only NAME ...]`.

Runs every benchmark and writes BENCHMARKS.md (machine, method, one table per
benchmark). Sizes are flags; `--quick` shrinks all of them. See BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness as h
from bench.manifests import (
    GATEWAY,
    PORT,
    base_docs,
    dump,
    hostname,
    route_docs,
    write_atomic,
)
from bench.simulated_envoy import SimulatedEnvoy

RESULTS = Path(__file__).resolve().parent / "results.json"
REPORT = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
_pool_counter = iter(range(1, 250))
# Where manifests and state directories go: memory (tmpfs) by default, so the tables
# measure Propylon rather than the disk (`--disk`: the system temp directory). On this
# machine's ext4 (virtual disk, mounted with `discard`) creating 1000 small files takes
# 0.6-0.9 s by itself, more than the whole attach on tmpfs.
WORK_DIR: str | None = None


def _memory_dir() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def pool() -> str:
    return f"127.{200 + os.getpid() % 50}.{next(_pool_counter)}.0/24"


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "mean": statistics.fmean(values) if values else float("nan"),
        "p50": pct(values, 50),
        "p99": pct(values, 99),
        "max": max(values) if values else float("nan"),
    }


class Env:
    """A manifests directory + backends + a running `propylon run`."""

    def __init__(self, bodies: list[str]) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="propylon-bench-", dir=WORK_DIR))
        self.manifests = self.root / "manifests"
        self.manifests.mkdir()
        self.backends = h.start_backends(bodies)
        self.propylon: h.Propylon | None = None

    def start(self, *, from_all: bool = True) -> h.Propylon:
        write_atomic(self.manifests / "00-base.yaml", dump(base_docs(from_all=from_all)))
        self.propylon = h.start_propylon(self.manifests, self.root / "state", pool())
        return self.propylon

    def close(self) -> None:
        if self.propylon is not None:
            self.propylon.stop()
        self.backends.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# --- 1. propagation -------------------------------------------------------------------


def bench_propagation(args: argparse.Namespace) -> dict[str, Any]:
    env = Env(["ok"])
    try:
        p = env.start()
        backend = env.backends.ports[0]
        for i in range(args.prefill):  # written at once, not measured
            write_atomic(env.manifests / f"r{i}.yaml", dump(route_docs(i, backend)))
        addr = p.address(GATEWAY)
        h.wait_for(lambda: p.attached(GATEWAY) == args.prefill, timeout=600, what="prefill")
        h.wait_for(p.synced, timeout=120, what="sync")
        prober = h.Prober(addr, PORT)
        latencies: list[float] = []
        others: dict[str, int] = {}
        timeouts = 0
        start = time.monotonic()
        for i in range(args.prefill, args.prefill + args.routes):
            host = hostname(i)
            text = dump(route_docs(i, backend))
            t0 = time.monotonic()
            write_atomic(env.manifests / f"r{i}.yaml", text)
            deadline = t0 + 30
            while True:
                status, _, _ = prober.get(host)
                now = time.monotonic()
                if status == 200:
                    latencies.append((now - t0) * 1000)
                    break
                if status != 404:
                    others[str(status)] = others.get(str(status), 0) + 1
                if now > deadline:
                    timeouts += 1
                    break
                time.sleep(max(0.0, 0.005 - (time.monotonic() - now)))
            if time.monotonic() - start > args.max_seconds:
                break
        return {
            "prefill": args.prefill,
            "routes": len(latencies),
            "latency_ms": summary_ms(latencies),
            "others": others,
            "timeouts": timeouts,
            "first_10_mean": statistics.fmean(latencies[:10]) if latencies else None,
            "last_10_mean": statistics.fmean(latencies[-10:]) if latencies else None,
        }
    finally:
        env.close()


# --- 2. edits under traffic ---------------------------------------------------------


def bench_edits(args: argparse.Namespace) -> dict[str, Any]:
    env = Env(["a", "b"])
    try:
        p = env.start()
        a, b = env.backends.ports
        path = env.manifests / "r0.yaml"
        write_atomic(path, dump(route_docs(0, a)))
        addr = p.address(GATEWAY)
        prober = h.Prober(addr, PORT)
        h.wait_for(lambda: prober.get(hostname(0))[0] == 200, what="route 0")
        stop = threading.Event()
        counts: dict[str, int] = {}
        bodies: dict[str, int] = {}
        requests = [0]

        def load() -> None:
            pr = h.Prober(addr, PORT)
            while not stop.is_set():
                status, headers, body = pr.get(hostname(0))
                requests[0] += 1
                counts[str(status)] = counts.get(str(status), 0) + 1
                key = body.decode() + ("+hdr" if "x-bench" in headers else "")
                bodies[key] = bodies.get(key, 0) + 1

        thread = threading.Thread(target=load, daemon=True)
        thread.start()
        edit_ms: list[float] = []
        for n in range(args.edits):
            port = b if n % 2 == 0 else a
            header = f"v{n}" if n % 4 in (0, 1) else None
            text = dump(route_docs(0, port, header=header))
            t0 = time.monotonic()
            write_atomic(path, text)
            want = b"b" if port == b else b"a"

            def seen(want: bytes = want, header: str | None = header) -> bool:
                status, headers, body = prober.get(hostname(0))
                return (
                    status == 200
                    and body == want
                    and (headers.get("x-bench") == header if header else "x-bench" not in headers)
                )

            h.wait_for(seen, timeout=30, what=f"edit {n}")
            edit_ms.append((time.monotonic() - t0) * 1000)
            time.sleep(args.edit_gap)
        stop.set()
        thread.join(5)
        non200 = sum(v for k, v in counts.items() if k != "200")
        return {
            "edits": args.edits,
            "requests": requests[0],
            "statuses": counts,
            "non_200": non200,
            "bodies": bodies,
            "edit_visible_ms": summary_ms(edit_ms),
        }
    finally:
        env.close()


# --- 3. attached routes ---------------------------------------------------------------


def bench_attached(args: argparse.Namespace) -> dict[str, Any]:
    env = Env(["ok"])
    try:
        p = env.start()
        p.address(GATEWAY)
        h.wait_for(p.synced, what="sync")
        backend = env.backends.ports[0]
        out: dict[str, Any] = {"routes": args.attached}

        def watch(target: int) -> tuple[float, list[int], int]:
            v0 = p.health()["xds"]["version"]
            t0 = time.monotonic()
            return t0, [], v0

        def until(target: int, t0: float, v0: int) -> dict[str, Any]:
            seen: list[int] = []
            while True:
                n = p.attached(GATEWAY)
                if n is not None and (not seen or seen[-1] != n):
                    seen.append(n)
                if n == target:
                    break
                if time.monotonic() - t0 > 300:
                    raise TimeoutError(f"attachedRoutes stuck at {n}")
                time.sleep(0.005)
            elapsed = (time.monotonic() - t0) * 1000
            h.wait_for(p.synced, timeout=120, what="sync")
            return {
                "ms": elapsed,
                "distinct_values_seen": len(seen),
                "values_seen": seen[:12],
                "reconciles": p.health()["xds"]["version"] - v0,
            }

        texts = [dump(route_docs(i, backend)) for i in range(args.attached)]
        t0, _, v0 = watch(args.attached)
        for i, text in enumerate(texts):
            write_atomic(env.manifests / f"r{i}.yaml", text)
        out["write_ms"] = (time.monotonic() - t0) * 1000
        out["add"] = until(args.attached, t0, v0)
        t0, _, v0 = watch(0)
        for i in range(args.attached):
            (env.manifests / f"r{i}.yaml").unlink()
        out["delete"] = until(0, t0, v0)
        return out
    finally:
        env.close()


# --- 4. scale with churn --------------------------------------------------------------


def bench_scale(args: argparse.Namespace) -> dict[str, Any]:
    import psutil

    env = Env(["a", "b"])
    try:
        a, b = env.backends.ports
        for ns in range(args.namespaces):
            for i in range(args.per_namespace):
                write_atomic(
                    env.manifests / f"ns{ns}-r{i}.yaml",
                    dump(route_docs(i, a, ns=f"ns{ns}")),
                )
        t0 = time.monotonic()
        p = env.start()
        total = args.namespaces * args.per_namespace
        h.wait_for(lambda: p.attached(GATEWAY) == total, timeout=900, what="scale attach")
        h.wait_for(p.synced, timeout=300, what="sync")
        startup_s = time.monotonic() - t0
        cp = psutil.Process(p.process.pid)
        envoy = psutil.Process(p.envoy_pid())
        cp.cpu_percent(None)
        samples: list[dict[str, float]] = []
        t_start = time.monotonic()
        n = 0
        while time.monotonic() - t_start < args.churn_seconds:
            ns, i = n % args.namespaces, (n * 7) % args.per_namespace
            port = b if (n // args.namespaces) % 2 == 0 else a
            write_atomic(
                env.manifests / f"ns{ns}-r{i}.yaml",
                dump(route_docs(i, port, ns=f"ns{ns}", header=f"c{n}")),
            )
            n += 1
            time.sleep(max(0.0, t_start + n - time.monotonic()))
            samples.append(
                {
                    "t": time.monotonic() - t_start,
                    "cpu": cp.cpu_percent(None) / 100,
                    "rss": cp.memory_info().rss / 2**20,
                    "envoy_rss": envoy.memory_info().rss / 2**20,
                }
            )
        h.wait_for(p.synced, timeout=300, what="sync")
        cpu = [s["cpu"] for s in samples]
        rss = [s["rss"] for s in samples]
        erss = [s["envoy_rss"] for s in samples]
        third = max(1, len(samples) // 3)
        return {
            "routes": total,
            "startup_s": startup_s,
            "changes": n,
            "seconds": args.churn_seconds,
            "cpu_mean": statistics.fmean(cpu),
            "cpu_max": max(cpu),
            "rss_first": statistics.fmean(rss[:third]),
            "rss_last": statistics.fmean(rss[-third:]),
            "rss_max": max(rss),
            "envoy_rss_first": statistics.fmean(erss[:third]),
            "envoy_rss_last": statistics.fmean(erss[-third:]),
            "envoy_rss_max": max(erss),
            "timeline": samples[:: max(1, len(samples) // 10)],
        }
    finally:
        env.close()


# --- 5. translation (in process) ------------------------------------------------------


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeat):
        gc.collect()
        with _serving_gc():
            t0 = time.perf_counter()
            result = fn()
            times.append((time.perf_counter() - t0) * 1000)
    return times, result


@contextlib.contextmanager
def _serving_gc() -> Iterator[None]:
    """Garbage collection as `propylon run` has it: no automatic collections (the
    runtime freezes what each reconcile leaves and collects on a timer)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def bench_translation(args: argparse.Namespace) -> dict[str, Any]:
    import asyncio

    from propylon import gatewayapi
    from propylon.clock import new_uid, timestamp_now
    from propylon.envoy import Translator
    from propylon.runtime.instance import Instance
    from propylon.runtime.options import RunOptions
    from propylon.runtime.pipeline import proxy_options
    from propylon.sources.files import FileSource
    from propylon.store import Store
    from propylon.values import Values

    root = Path(tempfile.mkdtemp(prefix="propylon-bench-tr-", dir=WORK_DIR))
    out: dict[str, Any] = {}
    try:
        # Envoy Gateway's "large" case: 500 HTTPRoutes, 250 GRPCRoutes, 500 Services.
        large = root / "large"
        large.mkdir()
        (large / "00-base.yaml").write_text(dump(base_docs()))
        docs = []
        for i in range(args.large_http):
            docs += route_docs(i, 9000)
        for i in range(args.large_http, args.large_http + args.large_grpc):
            d = route_docs(i, 9000, grpc=True)
            d[1]["metadata"]["name"] = d[2]["metadata"]["labels"]["kubernetes.io/service-name"] = (
                f"s{i - args.large_http}"
            )
            d[0]["spec"]["rules"][0]["backendRefs"][0]["name"] = f"s{i - args.large_http}"
            docs.append(d[0])
        (large / "routes.yaml").write_text(dump(docs))
        changeset = FileSource([large]).load()
        snapshot = Store(now=timestamp_now, new_uid=new_uid).apply(changeset)
        objects = snapshot.resources()
        values = Values()

        def full() -> Any:
            result = gatewayapi.build(
                gatewayapi.Inputs(
                    objects=objects,
                    values=values,
                    previous_addresses={},
                    default_pool=("127.10.0.0/16",),
                )
            )
            return Translator().translate(result.model, proxy_options(values))

        times, res = _timed(full, args.repeat)
        tracemalloc.start()
        full()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out["large"] = {
            "objects": len(objects),
            "clusters": len(res.clusters),
            "ms": summary_ms(times),
            "peak_alloc_mib": peak / 2**20,
        }

        # One route change at N routes, through the runtime's reconcile path
        # (file source -> store -> build -> translate -> statuses -> state), minus Envoy.
        big = root / "big"
        big.mkdir()
        (big / "00-base.yaml").write_text(dump(base_docs()))
        for i in range(args.change_routes):
            (big / f"r{i}.yaml").write_text(dump(route_docs(i, 9000)))

        async def loaded(state: str) -> tuple[Instance, SimulatedEnvoy, FileSource]:
            """An instance that reconciled every file once, its stream answered."""
            inst = Instance(RunOptions(paths=(big,), state_dir=root / state))
            inst.state.ensure()
            envoy = SimulatedEnvoy()
            inst._xds = envoy.server
            source = FileSource([big])
            await inst.reconcile(source.load())
            envoy.start()
            return inst, envoy, source

        async def run() -> dict[str, Any]:
            inst, envoy, source = await loaded("state")
            steps: list[float] = []
            acks: list[float] = []
            load_ms: list[float] = []
            gc.collect()
            gc.freeze()
            with _serving_gc():
                await changes(inst, envoy, source, steps, acks, load_ms)
            flush = getattr(inst, "flush_state", None)
            if flush is not None:
                flush()
            return {
                "routes": args.change_routes,
                "changes": args.changes,
                "reconcile_ms": summary_ms(steps),
                "acks_ms": summary_ms(acks),
                "file_load_ms": summary_ms(load_ms),
            }

        async def changes(
            inst: Instance,
            envoy: SimulatedEnvoy,
            source: FileSource,
            steps: list[float],
            acks: list[float],
            load_ms: list[float],
        ) -> None:
            for n in range(args.changes):
                path = big / f"r{n}.yaml"
                write_atomic(path, dump(route_docs(n, 9001, header=f"h{n}")))
                t0 = time.perf_counter()
                cs = source.update([str(path)])  # as the watcher does for an event
                t1 = time.perf_counter()
                await inst.reconcile(cs)
                t2 = time.perf_counter()
                envoy.answer_all()
                t3 = time.perf_counter()
                assert envoy.stream.acked_version == inst.xds_version, envoy.stream.describe()
                load_ms.append((t1 - t0) * 1000)
                steps.append((t2 - t1) * 1000)
                acks.append((t3 - t2) * 1000)

        out["change"] = asyncio.run(run())
        if args.profile:
            import cProfile
            import pstats

            prof_path = root / "change.prof"

            async def one() -> None:
                inst, envoy, source = await loaded("state2")
                for n in range(5):
                    path = big / f"r{n}.yaml"
                    write_atomic(path, dump(route_docs(n, 9002)))
                    cs = source.update([str(path)])
                    await inst.reconcile(cs)
                    envoy.answer_all()

            cProfile.runctx(
                "asyncio.run(one())", globals(), {"one": one, "asyncio": asyncio}, str(prof_path)
            )
            import io

            buf = io.StringIO()
            pstats.Stats(str(prof_path), stream=buf).sort_stats("tottime").print_stats(15)
            out["change_profile"] = buf.getvalue()
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- 6. data plane --------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk(url: str, host: str, conns: int, seconds: int) -> dict[str, float]:
    threads = 1 if conns == 1 else 2
    res = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{conns}",
            f"-d{seconds}s",
            "--latency",
            "-H",
            f"Host: {host}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    )
    text = res.stdout

    def lat(label: str) -> float:
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if not m:
            return float("nan")
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors:(.*)", text)
    return {
        "rps": float(rps.group(1)) if rps else float("nan"),
        "p50_ms": lat("50%"),
        "p99_ms": lat("99%"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
    }


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return f"wrk found at {found}"
    if shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True, timeout=300)
        if shutil.which("wrk"):
            return "wrk installed with apt-get install -y wrk"
    raise RuntimeError("wrk not found and could not be installed (apt-get install -y wrk)")


def bench_dataplane(args: argparse.Namespace) -> dict[str, Any]:
    wrk_note = ensure_wrk()
    env = Env(["hello"])
    static: h.StaticEnvoy | None = None
    try:
        p = env.start()
        write_atomic(env.manifests / "r0.yaml", dump(route_docs(0, env.backends.ports[0])))
        addr = p.address(GATEWAY)
        # The hand-written proxy listens in the Gateway's /24 too: here a listener on a
        # loopback address other than 127.0.0.1 measured 0.95-0.96x (the same static
        # config, 16 pairs), as large as the gap being measured (bench/NOTES.md).
        static_addr = addr.rsplit(".", 1)[0] + ".254"
        static = h.start_static_proxy(env.backends.ports[0], static_addr)
        prober = h.Prober(addr, PORT)
        h.wait_for(lambda: prober.get(hostname(0))[0] == 200, what="route")
        prober.close()
        rows = []
        for conns in (1, 64):
            # Pairs back to back, which one goes first alternating (ABBA...), so drift
            # hits both alike; the ratio is the median of the pairs' ratios (one run of a
            # few seconds varies by +-5 % here, whichever Envoy it measures).
            prop: list[dict[str, float]] = []
            stat: list[dict[str, float]] = []
            for i in range(args.rounds):
                runs = [
                    (prop, f"http://{addr}:{PORT}/", p.envoy_pid()),
                    (stat, f"http://{static_addr}:{static.ports[0]}/", static.process.pid),
                ]
                for out, url, pid in runs if i % 2 == 0 else runs[::-1]:
                    before = _cpu_seconds(pid)
                    r = _wrk(url, hostname(0), conns, args.wrk_seconds)
                    # Envoy's own CPU per request: what the proxy costs, less sensitive to
                    # the scheduling noise of a shared 2-core machine than requests/s.
                    r["cpu_us"] = (_cpu_seconds(pid) - before) / (r["rps"] * args.wrk_seconds) * 1e6
                    out.append(r)

            def avg(rs: list[dict[str, float]], k: str) -> float:
                return statistics.fmean(r[k] for r in rs)

            ratios = [a["rps"] / b["rps"] for a, b in zip(prop, stat, strict=True)]
            rows.append(
                {
                    "connections": conns,
                    "propylon": {k: avg(prop, k) for k in ("rps", "p50_ms", "p99_ms")},
                    "static": {k: avg(stat, k) for k in ("rps", "p50_ms", "p99_ms")},
                    "ratio_rps": statistics.median(ratios),
                    "pair_ratios": ratios,
                    # static / Propylon: above 1 when Propylon's Envoy spends less
                    "ratio_cpu": statistics.median(
                        b["cpu_us"] / a["cpu_us"] for a, b in zip(prop, stat, strict=True)
                    ),
                    "cpu_us": {
                        "propylon": statistics.median(r["cpu_us"] for r in prop),
                        "static": statistics.median(r["cpu_us"] for r in stat),
                    },
                    "non_2xx": sum(int(r["non_2xx"]) for r in prop + stat),
                }
            )
        return {"wrk": wrk_note, "seconds": args.wrk_seconds, "rounds": args.rounds, "rows": rows}
    finally:
        if static is not None:
            static.stop()
        env.close()


# --- report -----------------------------------------------------------------------------

BENCHES: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "propagation": bench_propagation,
    "edits": bench_edits,
    "attached": bench_attached,
    "scale": bench_scale,
    "translation": bench_translation,
    "dataplane": bench_dataplane,
}


def machine() -> dict[str, Any]:
    import psutil

    from propylon.dataplane import find_envoy

    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    envoy = subprocess.run([str(find_envoy()), "--version"], capture_output=True, text=True)
    version = re.search(r"version: \S+/([\d.]+)", envoy.stdout)
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "envoy": version.group(1) if version else envoy.stdout.strip()[:80],
        "kernel": platform.release(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    parser.add_argument("--only", nargs="*", choices=list(BENCHES), help="run only these")
    parser.add_argument("--routes", type=int, help="propagation: routes added one at a time")
    parser.add_argument("--prefill", type=int, help="propagation: routes written at once first")
    parser.add_argument("--max-seconds", type=float, default=1800, help="propagation time cap")
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--edit-gap", type=float, default=0.2, help="seconds between edits")
    parser.add_argument("--attached", type=int, help="routes written at once (default 1000)")
    parser.add_argument("--namespaces", type=int, help="scale: namespaces (default 50)")
    parser.add_argument("--per-namespace", type=int, help="scale: routes per namespace (100)")
    parser.add_argument("--churn-seconds", type=int, help="scale: seconds of 1 change/s (300)")
    parser.add_argument("--large-http", type=int, default=500)
    parser.add_argument("--large-grpc", type=int, default=250)
    parser.add_argument("--change-routes", type=int, help="routes for the one-change cost (5000)")
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="cProfile one change")
    parser.add_argument("--wrk-seconds", type=int, help="seconds per wrk run (4)")
    parser.add_argument("--rounds", type=int, help="data plane: pairs of wrk runs (10)")
    parser.add_argument("--tag", help="store results as NAME@TAG (an extra row)")
    parser.add_argument("--no-report", action="store_true", help="do not rewrite BENCHMARKS.md")
    parser.add_argument(
        "--disk", action="store_true", help="manifests in the system temp dir, not tmpfs"
    )
    args = parser.parse_args()
    global WORK_DIR
    WORK_DIR = None if args.disk else _memory_dir()
    q = args.quick
    defaults = {
        "routes": 200 if q else 3000,
        "prefill": 0,
        "attached": 1000,
        "namespaces": 50,
        "per_namespace": 20 if q else 100,
        "churn_seconds": 30 if q else 300,
        "change_routes": 1000 if q else 5000,
        "wrk_seconds": 2 if q else 4,
        "rounds": 2 if q else 10,
    }
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = machine()
    results["machine"]["manifests_on"] = "tmpfs (/dev/shm)" if WORK_DIR else "system temp dir"
    for name in args.only or list(BENCHES):
        print(f"== {name}", flush=True)
        t0 = time.monotonic()
        try:
            r = BENCHES[name](args)
        except Exception as exc:  # report, go on with the others
            r = {"error": repr(exc)}
        r["wall_s"] = round(time.monotonic() - t0, 1)
        r["mode"] = "quick" if q else "full"
        r["args"] = {k: v for k, v in vars(args).items() if k not in ("only",)}
        results[f"{name}@{args.tag}" if args.tag else name] = r
        print(
            json.dumps(
                {k: v for k, v in r.items() if k not in ("timeline", "change_profile", "args")},
                default=str,
            ),
            flush=True,
        )
        # Others may have written other tables meanwhile: merge into the file as it is now.
        fresh = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        fresh.update({"machine": results["machine"], f"{name}@{args.tag}" if args.tag else name: r})
        results = fresh
        RESULTS.write_text(json.dumps(results, indent=1, default=str))
    if not args.no_report:
        from bench.report import write_report

        write_report(results, REPORT)
        print(f"wrote {REPORT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
