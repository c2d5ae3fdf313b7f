"""Network policy change -> first request with the new verdict, standalone (issue #14).

`propylon run` serves examples/policy/ (a Gateway, the `details` backend and its Pod)
plus ROUTES extra HTTPRoutes on their own hostnames; each trial writes one of Cilium's
example policies into the manifests folder (write to a temporary name, then rename, as
an editor does) and polls a client from 127.0.0.1 (`world`) until the answer changes;
then deletes it and polls until it changes back. Two kinds of change:

- `external-lockdown`: the Listener's verdict (client -> ingress): a Listener update;
- `default-deny`: the backend's verdict (ingress -> backend): a Cluster update.

    python -m bench.policy_propagation [--routes 1000] [--trials 20]
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from propylon.testing.launcher import launch_propylon, wait_for

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "policy"


def status(address: str) -> int:
    conn = http.client.HTTPConnection(address, 8080, timeout=5, source_address=("127.0.0.1", 0))
    try:
        conn.request("GET", "/details/1", headers={"Host": "bookinfo.example"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except OSError:
        return 0
    finally:
        conn.close()


def until(address: str, want: int, timeout: float = 30.0) -> float:
    start = time.perf_counter()
    while status(address) != want:
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"no {want} within {timeout} s")
    return (time.perf_counter() - start) * 1000


def extra_routes(count: int, port: int, distinct: bool) -> str:
    """`count` HTTPRoutes on their own hostnames; `distinct`: each with its own Service,
    EndpointSlice (targetRef) and Pod, so every route is its own cluster whose verdict
    the policy engine computes (the same backend process answers them all)."""
    docs: list[dict[str, object]] = []
    for i in range(count):
        service = f"s{i}" if distinct else "details"
        docs.append(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": f"r{i}", "namespace": "default"},
                "spec": {
                    "parentRefs": [{"name": "bookinfo"}],
                    "hostnames": [f"r{i}.example"],
                    "rules": [{"backendRefs": [{"name": service, "port": 9080}]}],
                },
            }
        )
        if not distinct:
            continue
        meta = {"name": service, "namespace": "default"}
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": meta,
                "spec": {"ports": [{"name": "http", "port": 9080}]},
            }
        )
        docs.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {**meta, "labels": {"kubernetes.io/service-name": service}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": port}],
                "endpoints": [
                    {
                        "addresses": ["127.0.0.1"],
                        "targetRef": {"kind": "Pod", "name": f"p{i}", "namespace": "default"},
                    }
                ],
            }
        )
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"p{i}", "namespace": "default", "labels": {"app": f"a{i}"}},
            }
        )
    return yaml.safe_dump_all(docs)


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def summary(name: str, samples: list[float]) -> str:
    s = sorted(samples)
    p99 = s[min(len(s) - 1, round(0.99 * (len(s) - 1)))]
    return (
        f"| {name} | {len(s)} | {statistics.mean(s):.1f} ms | {statistics.median(s):.1f} ms "
        f"| {p99:.1f} ms | {max(s):.1f} ms |"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--routes", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--distinct", action="store_true", help="a Service and Pod per route")
    args = parser.parse_args()
    backend = subprocess.Popen(
        [sys.executable, "-m", "propylon.demo", "http-server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert backend.stdout is not None
    port = int(backend.stdout.readline().rsplit(":", 1)[1])
    with tempfile.TemporaryDirectory(prefix="policy-bench-") as tmp:
        manifests = Path(tmp) / "m"
        manifests.mkdir()
        for source in EXAMPLE.glob("*.yaml"):
            docs = list(yaml.safe_load_all(source.read_text()))
            for doc in docs:
                if doc.get("kind") == "EndpointSlice":
                    doc["ports"][0]["port"] = port
            (manifests / source.name).write_text(yaml.safe_dump_all(docs, sort_keys=False))
        (manifests / "90-routes.yaml").write_text(extra_routes(args.routes, port, args.distinct))
        running = launch_propylon(manifests, Path(tmp) / "state", pool="127.77.0.0/24")
        try:
            address = wait_for(
                lambda: "127.77.0.1" if status("127.77.0.1") == 200 else None,
                timeout=120,
                what="the Gateway",
            )
            rows = []
            for name in ("external-lockdown", "default-deny"):
                applied: list[float] = []
                removed: list[float] = []
                target = manifests / f"50-{name}.yaml"
                for _ in range(args.trials):
                    atomic_write(
                        target, (EXAMPLE.parent / "cilium-policies" / f"{name}.yaml").read_text()
                    )
                    applied.append(until(address, 403))
                    target.unlink()
                    removed.append(until(address, 200))
                rows.append(summary(f"{name} applied -> first 403", applied))
                rows.append(summary(f"{name} deleted -> first 200", removed))
        finally:
            running.stop()
            backend.terminate()
            backend.wait()
    shape = "a Service, EndpointSlice and Pod each" if args.distinct else "one shared Service"
    print(f"routes in place: {args.routes + 1} ({shape}), trials: {args.trials}")
    print("| change | trials | mean | p50 | p99 | max |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
