# ruff: noqa: E501
"""Render bench/results.json as BENCHMARKS.md (tables), followed by bench/NOTES.md
(hand-written analysis: profiles, gaps and what would close them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

NOTES = Path(__file__).resolve().parent / "NOTES.md"

HEADER = """# Benchmarks

Run everything and rewrite this file:

```
. .venv/bin/activate
python bench/run.py --quick      # every table at small sizes, about 2-3 minutes
python bench/run.py              # full sizes (3000 / 1000 / 5000 routes, 5 min churn), ~10 min
python bench/run.py --only propagation --routes 300 --prefill 3000 --tag 3000   # one more row
python bench/propagation_trace.py   # where a new route's time goes, stage by stage
python bench/scale.py --routes 5000 10000 50000   # issue #12: start-up, RSS, new route, big-file edit (~17 min)
```

Every size is a flag (`python bench/run.py --help`). Raw results: `bench/results.json`
(each table records its mode, arguments and wall time). Needs `psutil` (bench only: `pip install -e ".[bench]"`) and
`wrk` (`apt-get install -y wrk`; the script detects it and installs it with apt-get if
missing). All traffic stays on 127.0.0.0/8. Backends are an Envoy answering 200 with
a fixed body per port (so the backend is never the bottleneck); the gateway is a real
`propylon run` with its supervised Envoy, fed manifests as files written with an atomic
rename, on tmpfs (`/dev/shm`) unless `--disk` is given (see "Disk and tmpfs" below).
"""


def _f(v: Any, digits: int = 1) -> str:
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _mode(r: dict[str, Any]) -> str:
    return f"_{r.get('mode', '?')} run, {r.get('wall_s', '?')} s wall_"


def write_report(results: dict[str, Any], path: Path) -> None:
    out = [HEADER]
    m = results.get("machine", {})
    out.append("## Machine\n")
    out.append(
        f"{m.get('cores')} cores, {m.get('cpu')}, {m.get('memory_gib')} GiB RAM, "
        f"kernel {m.get('kernel')}; Python {m.get('python')}, Envoy {m.get('envoy')}. "
        f"Manifests and state directories: {m.get('manifests_on', 'system temp dir')}.\n"
    )

    rows = [results[k] for k in sorted(results) if k.split("@")[0] == "propagation"]
    for n, r in enumerate(rows):
        if n:
            out.append(f"Another run: prefill {r.get('prefill')}, {_mode(r)}\n")
        else:
            out.append("## 1. Propagation: a new HTTPRoute, file write -> first 200\n")
            out.append(
                "Routes are added one at a time, each with its own hostname, Service and "
                "EndpointSlice. After each write the route's host is probed every 5 ms over a "
                "keep-alive connection until 404 turns into 200. `prefill` routes were written "
                f"at once beforehand (not measured). {_mode(r)}\n"
            )
        out.extend(_propagation_table(r))
    r = results.get("edits")
    if r:
        out.append("## 2. Route edits under steady traffic\n")
        out.append(
            "One client thread sends back-to-back keep-alive GETs to one route while the "
            "route is edited: the backend port flips between two backends (bodies `a` and "
            "`b`) and a ResponseHeaderModifier is added/removed. Each edit waits until "
            f"its effect is visible, then 0.2 s. {_mode(r)}\n"
        )
        if "error" in r:
            out.append(f"error: `{r['error']}`\n")
        else:
            e = r["edit_visible_ms"]
            out.append(
                "| edits | requests | non-200 | statuses | edit visible mean / max | target |"
            )
            out.append("|---|---|---|---|---|---|")
            out.append(
                f"| {r['edits']} | {r['requests']} | **{r['non_200']}** | {r['statuses']} | "
                f"{_f(e['mean'])} / {_f(e['max'])} ms | 0 non-200 |\n"
            )
    r = results.get("attached")
    if r:
        out.append("## 3. Attached routes: 1000 routes written at once, then deleted\n")
        out.append(
            "Files are written back to back (pre-rendered); time runs from the first write "
            "until the Gateway's status (read over the API socket every 5 ms) shows "
            "`attachedRoutes` = N, then from the first delete until 0. `reconciles` is the "
            "number of xDS versions pushed meanwhile (one per reconcile); `values seen` are "
            f"the distinct attachedRoutes values observed. {_mode(r)}\n"
        )
        if "error" in r:
            out.append(f"error: `{r['error']}`\n")
        else:
            out.append("| step | routes | time | reconciles | values seen | target |")
            out.append("|---|---|---|---|---|---|")
            for step in ("add", "delete"):
                s = r[step]
                out.append(
                    f"| {step} | {r['routes']} | {_f(s['ms'], 0)} ms | {s['reconciles']} | "
                    f"{s['values_seen']} | {'<= 1 s' if step == 'add' else '-'} |"
                )
            out.append(f"\n(writing the {r['routes']} files took {_f(r['write_ms'], 0)} ms)\n")
    r = results.get("scale")
    if r:
        out.append("## 4. Scale: many namespaces, one change per second\n")
        out.append(
            "Namespaces x routes, each with its own Service and EndpointSlice, all loaded "
            "at start. Then one route file is rewritten every second (backend port and a "
            "header value change). CPU and RSS of the `propylon run` process and RSS of "
            f"its Envoy are sampled every second (psutil). {_mode(r)}\n"
        )
        if "error" in r:
            out.append(f"error: `{r['error']}`\n")
        else:
            out.append(
                "| routes | startup to synced | changes | CP CPU mean | CP CPU max | CP RSS first third -> last third (max) | Envoy RSS first -> last (max) | target |"
            )
            out.append("|---|---|---|---|---|---|---|---|")
            out.append(
                f"| {r['routes']} | {_f(r['startup_s'])} s | {r['changes']} in {r['seconds']} s | "
                f"{_f(r['cpu_mean'], 3)} core | {_f(r['cpu_max'], 2)} core | "
                f"{_f(r['rss_first'], 0)} -> {_f(r['rss_last'], 0)} ({_f(r['rss_max'], 0)}) MiB | "
                f"{_f(r['envoy_rss_first'], 0)} -> {_f(r['envoy_rss_last'], 0)} ({_f(r['envoy_rss_max'], 0)}) MiB | "
                "CPU mean <= 0.1 core, RSS <= 300 MiB, no growth |\n"
            )
            out.append("Timeline (every ~10th sample):\n")
            out.append("| t (s) | CP CPU (cores) | CP RSS (MiB) | Envoy RSS (MiB) |")
            out.append("|---|---|---|---|")
            for s in r.get("timeline", []):
                out.append(
                    f"| {_f(s['t'], 0)} | {_f(s['cpu'], 2)} | {_f(s['rss'], 0)} | {_f(s['envoy_rss'], 0)} |"
                )
            out.append("")
    r = results.get("translation")
    if r:
        out.append("## 5. Translation (in process)\n")
        out.append(
            "Large case (Envoy Gateway's): 500 HTTPRoutes, 250 GRPCRoutes, 500 Services and "
            "EndpointSlices on one Gateway listener. Full translation = `gatewayapi.build` + "
            "`Translator().translate` (fresh translator, no cache), best of warm repeats; "
            "peak memory allocated during one full translation (tracemalloc). One change: "
            "the runtime's reconcile path (`Instance.reconcile`: store -> build -> translate "
            "-> xDS server -> statuses) after rewriting one route file, with one Delta ADS "
            "stream connected to an in-process stand-in for Envoy (`bench/simulated_envoy.py`) "
            "that acknowledges each response and subscribes to new clusters' endpoints; the "
            "server's handling of those requests, and the file source's re-read, are rows of "
            "their own, and `total` is the three. "
            f"{_mode(r)}\n"
        )
        if "error" in r:
            out.append(f"error: `{r['error']}`\n")
        else:
            lg = r["large"]
            out.append("| case | objects | mean | p50 | max | peak alloc | target |")
            out.append("|---|---|---|---|---|---|---|")
            out.append(
                f"| large: full translation | {lg['objects']} | {_f(lg['ms']['mean'])} ms | "
                f"{_f(lg['ms']['p50'])} ms | {_f(lg['ms']['max'])} ms | "
                f"{_f(lg['peak_alloc_mib'])} MiB | <= 139 ms |"
            )
            extra = [results[k] for k in sorted(results) if k.startswith("translation@")]
            for x in [*extra, r]:
                if "change" in x:
                    out.extend(_change_rows(x["change"], _mode(x) if x is not r else ""))
            out.append("")
    r = results.get("dataplane")
    if r:
        out.append("## 6. Data plane: Propylon's Envoy vs a hand-written static Envoy\n")
        out.append(
            "Same backend, same run, both Envoys with `--concurrency 2`; wrk against "
            "Propylon's listener (one route among the Gateway's config) and against a "
            "minimal static config (one listener, one route, one STATIC cluster) on an "
            "address of the Gateway's /24 (`.254`; see the data-plane notes below). Each "
            f"row is {r.get('rounds', 2)} pairs of {r.get('seconds')} s wrk runs back to "
            "back, which Envoy goes first alternating; rps and latencies are means, the "
            "ratio is the median of the pairs' ratios (their range in the next column). "
            "Envoy CPU per request is each proxy process's user + system CPU during its "
            "runs over the requests it served (median of the runs; the CPU ratio is "
            "static / Propylon per pair, median). "
            f"{r.get('wrk', '')}. {_mode(r)}\n"
        )
        if "error" in r:
            out.append(f"error: `{r['error']}`\n")
        else:
            out.append(
                "| connections | Propylon rps | p50 | p99 | static rps | p50 | p99 | ratio (rps) "
                "| pairs | Envoy CPU per request, Propylon / static | ratio (CPU) | non-2xx "
                "| target |"
            )
            out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
            for row in r["rows"]:
                pr, st = row["propylon"], row["static"]
                out.append(
                    f"| {row['connections']} | {_f(pr['rps'], 0)} | {_f(pr['p50_ms'], 2)} ms | "
                    f"{_f(pr['p99_ms'], 2)} ms | {_f(st['rps'], 0)} | {_f(st['p50_ms'], 2)} ms | "
                    f"{_f(st['p99_ms'], 2)} ms | **{_f(row['ratio_rps'], 3)}x** | "
                    f"{_range(row.get('pair_ratios'))} | {_cpu(row)} | "
                    f"{_f(row['ratio_cpu'], 3) + 'x' if 'ratio_cpu' in row else '-'} | "
                    f"{row['non_2xx']} | >= 0.97x |"
                )
            out.append("")
    if NOTES.exists():
        out.append(NOTES.read_text())
    path.write_text("\n".join(out).rstrip() + "\n")


def _change_rows(c: dict[str, Any], mode: str) -> list[str]:
    """Rows for one route change: reconcile, ACK handling, file re-read, their total."""
    parts = [("reconcile", c["reconcile_ms"]), ("ACK handling", c.get("acks_ms"))]
    parts.append(("file source re-read", c["file_load_ms"]))
    rows = []
    total = 0.0
    at = f"at {c['routes']} routes" + (f" ({mode})" if mode else "")
    for label, ms in parts:
        if ms is None:
            continue
        total += ms["mean"]
        rows.append(
            f"| one route change {at}: {label} | - | {_f(ms['mean'])} ms | {_f(ms['p50'])} ms | "
            f"{_f(ms['max'])} ms | - | - |"
        )
    rows.append(
        f"| one route change {at}: **total** | - | {_f(total)} ms | - | - | - | <= 5 ms (at 5000) |"
    )
    return rows


def _range(values: list[float] | None) -> str:
    if not values:
        return "-"
    return f"{min(values):.3f}-{max(values):.3f}"


def _cpu(row: dict[str, Any]) -> str:
    cpu = row.get("cpu_us")
    if not cpu:
        return "-"
    return f"{cpu['propylon']:.1f} / {cpu['static']:.1f} µs"


def _propagation_table(r: dict[str, Any]) -> list[str]:
    if "error" in r:
        return [f"error: `{r['error']}`\n"]
    lat = r["latency_ms"]
    return [
        "| routes in place | measured | mean | p50 | p99 | max | first 10 mean | last 10 mean "
        "| other statuses | timeouts | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {r['prefill']}..{r['prefill'] + r['routes']} | {r['routes']} | {_f(lat['mean'])} ms | "
        f"{_f(lat['p50'])} ms | {_f(lat['p99'])} ms | {_f(lat['max'])} ms | "
        f"{_f(r['first_10_mean'])} ms | {_f(r['last_10_mean'])} ms | {r['others'] or 'none'} | "
        f"{r['timeouts']} | mean <= 15 ms, max <= 100 ms at 3000, no errors |\n",
    ]
