"""Issue #12: where one `propylon run` start-up spends its time, from exec to all served.

    python bench/startup_timeline.py [--routes 10000] [--layout many|one] [--checkout DIR]

Writes N routes (each with its own hostname, Service and EndpointSlice pointing at a
local backend Envoy; files of 100 or one file, tmpfs), launches `propylon run
--log-level debug` from `--checkout` (default: this one) and prints a timeline: the
instance's own debug lines (imports done, Envoy started, files read, store and
evaluation, xDS version pushed, each response sent and each ACK per type) against the
bench's clock (health "ok", every Envoy acknowledged, the first 200 for the last route,
a sample of 22 hosts answering 200). Meanwhile a probe asks the local API's health every
20 ms and records the slowest answer (an upper bound of how long the event loop was
blocked: it includes the request itself). Then SIGTERM, and the time to exit.
Nothing is asserted; `uptime`'s load average is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness as h
from bench.manifests import GATEWAY, PORT, hostname
from bench.scale import probe_until, write_routes
from propylon.state import ApiClient
from propylon.testing.launcher import launch_propylon, repo_env, wait_for

LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\w+) ([\w.]+): (.*)$")


def _log_events(log: Path) -> list[tuple[float, str]]:
    """(epoch seconds, message) of each log line of the instance."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        m = LINE.match(line)
        if m is None:
            continue
        stamp = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        out.append((stamp, f"{m.group(3)}: {m.group(4)}"))
    return out


class HealthProbe(threading.Thread):
    """The local API's health every `interval` s: the slowest answer, and when."""

    def __init__(self, api: ApiClient, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.api, self.interval = api, interval
        self.stop_event = threading.Event()
        self.slowest = (0.0, 0.0)  # (seconds, epoch when asked)
        self.answers = 0
        self.errors: dict[str, int] = {}

    def run(self) -> None:
        while not self.stop_event.is_set():
            asked = time.time()
            try:
                self.api.healthz()
            except Exception as exc:  # not listening yet, or stopping
                self.errors[type(exc).__name__] = self.errors.get(type(exc).__name__, 0) + 1
                self.stop_event.wait(self.interval)
                continue
            took = time.time() - asked
            self.answers += 1
            if took > self.slowest[0]:
                self.slowest = (took, asked)
            self.stop_event.wait(self.interval)


class CpuSampler(threading.Thread):
    """A process's CPU seconds (user + system) every `interval` s: [(epoch, seconds)]."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.stop_event = threading.Event()
        self.samples: list[tuple[float, float]] = []
        self.tick = os.sysconf("SC_CLK_TCK")

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                stat = Path(f"/proc/{self.pid}/stat").read_text()
            except OSError:
                return
            fields = stat[stat.rindex(")") + 2 :].split()
            self.samples.append((time.time(), (int(fields[11]) + int(fields[12])) / self.tick))
            self.stop_event.wait(self.interval)

    def between(self, start: float, end: float) -> float:
        """CPU seconds used between two epochs (nearest samples)."""
        inside = [c for t, c in self.samples if start <= t <= end + self.interval]
        return inside[-1] - inside[0] if len(inside) > 1 else 0.0


def one_run(n: int, layout: str, checkout: Path, timeout: float) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="propylon-timeline-", dir="/dev/shm"))
    manifests = root / "manifests"
    manifests.mkdir()
    backends = h.start_backends(["ok"])
    marks: list[tuple[float, str]] = []
    out: dict[str, Any] = {"routes": n, "layout": layout, "load_before": os.getloadavg()}
    p: h.Propylon | None = None
    probe: HealthProbe | None = None
    try:
        write_routes(manifests, n, layout, backends.ports[0])
        t0 = time.time()
        base = launch_propylon(
            manifests,
            root / "state",
            "--log-level",
            "debug",
            pool=f"127.{200 + os.getpid() % 50}.{n % 250}.0/24",
            env=repo_env(checkout),
            cwd=checkout,  # `python -m` puts the working directory first on sys.path
        )
        marks.append((t0, "bench: exec"))
        p = h.Propylon(base.process, base.state_dir, base.manifests, base.log)
        probe = HealthProbe(p.api)
        probe.start()
        envoy = CpuSampler(
            wait_for(lambda: p.health()["envoy"]["pid"], timeout=timeout, what="Envoy")
        )
        envoy.start()
        wait_for(p.up, timeout=timeout, what="propylon up")
        marks.append((time.time(), "bench: health ok (first reconcile done)"))
        address = p.address(GATEWAY)
        prober = h.Prober(address, PORT)
        probe_until(prober, hostname(n - 1), lambda s, _: s == 200, timeout=timeout)
        marks.append((time.time(), f"bench: first 200 ({hostname(n - 1)})"))
        wait_for(p.synced, timeout=timeout, what="synced")
        marks.append((time.time(), "bench: every Envoy acknowledged the version"))
        rng = random.Random(n)
        for i in [0, *rng.sample(range(n), min(20, n))]:
            probe_until(prober, hostname(i), lambda s, _: s == 200, timeout=timeout)
        marks.append((time.time(), "bench: 22 hosts answer 200 (all served)"))
        out["startup_s"] = marks[-1][0] - t0
        prober.close()
        probe.stop_event.set()
        probe.join()
        out["health_slowest_s"], asked = probe.slowest
        out["health_slowest_at_s"] = asked - t0
        out["health_answers"] = probe.answers
        out["health_errors"] = probe.errors
        began = time.monotonic()
        p.process.terminate()
        p.process.wait(timeout=60)
        out["sigterm_s"] = time.monotonic() - began
        envoy.stop_event.set()
        events = sorted([*marks, *_log_events(base.log)])
        sent: dict[str, float] = {}
        for t, what in events:  # Envoy's CPU from each type's response to its ACK
            m = re.match(r"propylon.xds: sent (\w+):", what)
            if m:
                sent[m.group(1)] = t
            m = re.match(r"propylon.xds: (\w+) ack", what)
            if m and m.group(1) in sent:
                out[f"envoy_cpu_{m.group(1)}_s"] = envoy.between(sent.pop(m.group(1)), t)
        out["timeline"] = [(round(t - t0, 3), what) for t, what in events]
    finally:
        if probe is not None:
            probe.stop_event.set()
        if p is not None:
            p.stop()
        backends.stop()
        shutil.rmtree(root, ignore_errors=True)
    out["load_after"] = os.getloadavg()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--routes", type=int, default=10000)
    ap.add_argument("--layout", choices=["many", "one"], default="many")
    ap.add_argument("--checkout", type=Path, default=h.REPO, help="the propylon to run")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args()
    out = one_run(args.routes, args.layout, args.checkout.resolve(), args.timeout)
    print(f"# {args.routes} routes, layout {args.layout}, checkout {args.checkout}")
    print(f"load average before {out['load_before']}, after {out['load_after']}")
    last = 0.0
    for t, what in out["timeline"]:
        if len(what) > 150:
            what = what[:147] + "..."
        print(f"{t:8.3f}  (+{t - last:6.3f})  {what}")
        last = t
    cpu = {k[10:-2]: round(v, 2) for k, v in out.items() if k.startswith("envoy_cpu_")}
    print(f"Envoy CPU seconds from each first response to its ACK: {cpu}")
    lags = [what for _, what in out["timeline"] if "event loop lag" in what]
    print(f"worst event loop lag: {lags[-1] if lags else 'none reported'}")
    print(
        f"start-up to all served {out['startup_s']:.2f} s; SIGTERM to exit "
        f"{out['sigterm_s']:.2f} s; slowest health answer {out['health_slowest_s'] * 1000:.0f} ms "
        f"(asked at {out['health_slowest_at_s']:.2f} s; {out['health_answers']} answers; "
        f"errors {out['health_errors']})"
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
