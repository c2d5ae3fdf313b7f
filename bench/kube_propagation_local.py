"""Kubernetes mode: one HTTPRoute created through the API server -> first answer from
the agent's Envoy, measured like gateway-api-bench (create, then probe until the route
answers), with `routes` already in place; plus the API-server requests each change
costs and the operator's and agent's CPU and memory.

    python bench/kube_propagation_local.py --prefill 3000 --measure 100

A real kube-apiserver + etcd (tests/kube/kube_controlplane.py, the dev cluster's
binaries), `propylon operator` and `propylon agent` (embedded Envoy) as processes.
Addresses: a CiliumLoadBalancerIPPool on 127.33.0.0/24 (loopback: nothing is added to
any interface). The API server refuses loopback EndpointSlices, so the routes answer
with a RequestRedirect (302) made by Envoy's route itself; new-backend clusters (CDS,
EDS) are not part of this figure (the standalone table has them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "kube"))

from kube_controlplane import ControlPlane, binaries_dir, free_port, start  # noqa: E402
from shared_paths import GATEWAY_API  # noqa: E402

from propylon.kube import kinds  # noqa: E402
from propylon.kube.api import KubeApi  # noqa: E402

NS = "bench"
ADDRESS = "127.33.0.1"


def route(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": f"r{i}", "namespace": NS},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "hostnames": [f"h{i}.example"],
            "rules": [
                {
                    "filters": [
                        {
                            "type": "RequestRedirect",
                            "requestRedirect": {"hostname": f"to{i}.example", "statusCode": 302},
                        }
                    ]
                }
            ],
        },
    }


def setup(cp: ControlPlane, port: int) -> None:
    cp.kubectl("apply", "--server-side", "-f", str(GATEWAY_API / "crd" / "experimental"))
    cp.kubectl("apply", "-f", str(ROOT / "tests" / "kube" / "crds" / "cilium.yaml"))
    cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    cp.kubectl("create", "namespace", NS)
    cp.kubectl(
        "apply",
        "-f",
        "-",
        input=f"""apiVersion: cilium.io/v2
kind: CiliumLoadBalancerIPPool
metadata: {{name: bench}}
spec: {{blocks: [{{cidr: 127.33.0.0/24}}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: bench}}
spec: {{controllerName: io.cilium/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: {NS}}}
spec:
  gatewayClassName: bench
  listeners: [{{name: web, protocol: HTTP, port: {port}}}]
""",
    )


def apiserver_requests(cp: ControlPlane) -> dict[str, float]:
    """apiserver_request_total summed by verb (mutating vs reading), from /metrics."""
    import ssl

    ctx = ssl.create_default_context(cafile=str(cp.ca_cert))
    ctx.load_cert_chain(str(cp.workdir / "admin.crt"), str(cp.workdir / "admin.key"))
    with urllib.request.urlopen(f"{cp.url}/metrics", context=ctx, timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels, value = line.rsplit(" ", 1)
        parts = dict(
            p.split("=", 1) for p in labels[len("apiserver_request_total{") : -1].split(",")
        )
        verb = parts.get("verb", "").strip('"')
        resource = parts.get("resource", "").strip('"')
        sub = parts.get("subresource", "").strip('"')
        name = f"{verb} {resource}{'/' + sub if sub else ''}"
        out[name] = out.get(name, 0.0) + float(value)
    return out


PROCS: list[psutil.Process] = []


def check_alive() -> None:
    for proc in PROCS:
        if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
            raise RuntimeError(f"{' '.join(proc.cmdline()[:3])} exited: see its log")


async def wait_answer(
    client: httpx.AsyncClient, url: str, host: str, deadline: float
) -> tuple[float, list[int]]:
    others: list[int] = []
    while time.monotonic() < deadline:
        check_alive()
        try:
            resp = await client.get(url, headers={"Host": host})
            if resp.status_code == 302:
                return time.monotonic(), others
            if resp.status_code != 404:
                others.append(resp.status_code)
        except httpx.HTTPError:
            others.append(-1)
        await asyncio.sleep(0.002)
    raise TimeoutError(host)


async def bench(
    cp: ControlPlane, port: int, prefill: int, measure: int, procs: list[psutil.Process]
) -> dict[str, Any]:
    api = KubeApi.connect(cp.kubeconfig)
    url = f"http://{ADDRESS}:{port}/"
    result: dict[str, Any] = {"prefill": prefill, "measure": measure}
    try:
        started = time.monotonic()
        sem = asyncio.Semaphore(16)

        async def create(i: int) -> None:
            async with sem:
                await api.create(kinds.HTTP_ROUTE, route(i), NS)

        await asyncio.gather(*(create(i) for i in range(prefill)))
        created = time.monotonic()
        async with httpx.AsyncClient(timeout=2) as client:
            if prefill:
                await wait_answer(client, url, f"h{prefill - 1}.example", time.monotonic() + 600)
            result["prefill_create_s"] = round(created - started, 1)
            result["prefill_served_s"] = round(time.monotonic() - started, 1)

            # All Accepted?
            async def all_accepted() -> int:
                items, _ = await api.list(kinds.HTTP_ROUTE)
                ok = 0
                for item in items:
                    for parent in (item.get("status") or {}).get("parents") or ():
                        if any(
                            c.get("type") == "Accepted" and c.get("status") == "True"
                            for c in parent.get("conditions") or ()
                        ):
                            ok += 1
                return ok

            deadline = time.monotonic() + 600
            while (accepted := await all_accepted()) < prefill and time.monotonic() < deadline:
                await asyncio.sleep(1)
            result["prefill_accepted"] = accepted
            result["prefill_accepted_s"] = round(time.monotonic() - started, 1)
            result["cpu_s_until_accepted"] = {
                name: round(p.cpu_times().user + p.cpu_times().system, 1)
                for name, p in zip(("operator", "agent"), procs, strict=True)
            }
            result["rss_mib_accepted"] = {
                name: round(p.memory_info().rss / 2**20)
                for name, p in zip(("operator", "agent"), procs, strict=True)
            }
            for p in procs:
                p.cpu_percent()  # start the interval
            before = apiserver_requests(cp)
            cpu_before = [p.cpu_times() for p in procs]
            latencies: list[float] = []
            create_ms: list[float] = []
            others: list[int] = []
            for j in range(measure):
                i = prefill + j
                t0 = time.monotonic()
                await api.create(kinds.HTTP_ROUTE, route(i), NS)
                create_ms.append((time.monotonic() - t0) * 1000)
                t1, bad = await wait_answer(client, url, f"h{i}.example", time.monotonic() + 30)
                latencies.append((t1 - t0) * 1000)
                others.extend(bad)
                # Steady state between changes (statuses written), like one apply at a time.
                await asyncio.sleep(0.05)
            after = apiserver_requests(cp)
            cpu_after = [p.cpu_times() for p in procs]
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        delta = {k: round(v / measure, 2) for k, v in sorted(delta.items()) if v > 0}
        result.update(
            mean_ms=round(statistics.fmean(latencies), 1),
            p50_ms=round(statistics.median(latencies), 1),
            p99_ms=round(sorted(latencies)[max(0, int(len(latencies) * 0.99) - 1)], 1),
            max_ms=round(max(latencies), 1),
            # The API server's own answer to the create (admission, CEL validation, etcd),
            # and what is left: watch delivery, operator/agent work, Envoy.
            create_mean_ms=round(statistics.fmean(create_ms), 1),
            create_max_ms=round(max(create_ms), 1),
            after_create_mean_ms=round(
                statistics.fmean(a - b for a, b in zip(latencies, create_ms, strict=True)), 1
            ),
            other_statuses=sorted(set(others)),
            requests_per_change=delta,
            cpu_s_per_change={
                name: round(((a.user + a.system) - (b.user + b.system)) / measure, 4)
                for name, a, b in zip(("operator", "agent"), cpu_after, cpu_before, strict=True)
            },
            rss_mib={
                name: round(p.memory_info().rss / 2**20)
                for name, p in zip(("operator", "agent"), procs, strict=True)
            },
        )
    finally:
        await api.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefill", type=int, default=3000)
    parser.add_argument("--measure", type=int, default=100)
    args = parser.parse_args()
    bindir = binaries_dir()
    if bindir is None:
        print("kube-apiserver binaries not found", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="propylon-kbench-"))
    cp = start(work / "cp", bindir)
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        setup(cp, port)
        propylon = str(Path(sys.executable).parent / "propylon")
        common = [
            "--kubeconfig",
            str(cp.kubeconfig),
            "--namespace",
            "kube-system",
            "--log-level",
            "warning",
        ]
        procs.append(
            subprocess.Popen(
                [propylon, "operator", *common], stderr=(work / "operator.log").open("wb")
            )
        )
        procs.append(
            subprocess.Popen(
                [
                    propylon,
                    "agent",
                    "--node-name",
                    "bench",
                    *common,
                    "--state-dir",
                    str(work / "agent"),
                    "--admin-port",
                    str(free_port()),
                ],
                stderr=(work / "agent.log").open("wb"),
            )
        )
        ps = [psutil.Process(p.pid) for p in procs]
        PROCS.extend(ps)
        result = asyncio.run(bench(cp, port, args.prefill, args.measure, ps))
        print(json.dumps(result, indent=2))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        cp.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
