"""The walkthrough, end to end: files -> propylon run -> Envoy -> demo backends."""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from e2e_harness import REPO, Running, wait_for

HTTP_HOST = "http-test.mynetwork.local"
GRPC_HOST = "grpc-test.mynetwork.local"


def get(address: str, path: str = "/", host: str = HTTP_HOST) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection(address, 8080, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": f"{host}:8080"})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


def grpc_ping(address: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "propylon.demo",
            "grpc-client",
            "--addr",
            f"{address}:50051",
            "--authority",
            GRPC_HOST,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_http_and_grpc_through_the_gateway(propylon: Running) -> None:
    address = propylon.gateway_address()
    assert address.startswith("127.")

    wait_for(lambda: get(address)[0] == 200, what="HTTP 200 through the gateway")
    status, _, body = get(address)
    assert status == 200
    assert re.fullmatch(
        r"hello from http server\nmethod=GET path=/ time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n?", body
    ), body

    result = grpc_ping(address)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r'response message="hello" server_time_ms=\d+\n', result.stdout)

    # A host the routes do not name gets 404 from the gateway, not a backend answer.
    assert get(address, host="other.mynetwork.local")[0] == 404


def test_get_gateway_and_service_print_like_kubectl(propylon: Running) -> None:
    address = propylon.gateway_address()

    out = propylon.cli("get", "gateway")
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "CLASS", "ADDRESS", "PROGRAMMED", "AGE"]
    assert row.split()[:4] == ["example-gateway", "example-gateway-class", address, "True"]
    assert re.fullmatch(r"\d+[smhd]\S*", row.split()[4])

    out = propylon.cli("get", "service")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    generated = next(line.split() for line in lines if line.startswith("cilium-gateway-"))
    assert generated[0] == "cilium-gateway-example-gateway"
    assert generated[1] == "LoadBalancer"
    assert generated[3] == address
    assert "8080/TCP" in generated[4] and "50051/TCP" in generated[4]


@dataclass
class Traffic:
    """One keep-alive connection sending requests back to back until stopped."""

    address: str
    statuses: list[int] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        conn = http.client.HTTPConnection(self.address, 8080, timeout=5)
        while not self.stop.is_set():
            try:
                conn.request("GET", "/", headers={"Host": f"{HTTP_HOST}:8080"})
                response = conn.getresponse()
                response.read()
                self.statuses.append(response.status)
                self.headers.append({k.lower(): v for k, v in response.getheaders()})
            except (OSError, http.client.HTTPException) as exc:
                self.errors.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection(self.address, 8080, timeout=5)
        conn.close()


def edit_route(path: Path, mutate: object) -> None:
    doc = yaml.safe_load(path.read_text())
    mutate(doc)  # type: ignore[operator]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    os.replace(tmp, path)  # editors save atomically like this


def test_route_edits_under_traffic_fail_no_request(propylon: Running) -> None:
    address = propylon.gateway_address()
    wait_for(lambda: get(address)[0] == 200, what="route serving")
    envoy_pid = propylon.envoy()["pid"]
    route_file = propylon.manifests / "20-httproute.yaml"

    traffic = Traffic(address)
    worker = threading.Thread(target=traffic.run)
    worker.start()
    try:
        wait_for(lambda: len(traffic.statuses) > 20, what="steady traffic")

        def add_header(doc: dict) -> None:  # type: ignore[type-arg]
            doc["spec"]["rules"][0]["filters"] = [
                {
                    "type": "ResponseHeaderModifier",
                    "responseHeaderModifier": {"add": [{"name": "x-edited", "value": "1"}]},
                }
            ]

        edit_route(route_file, add_header)
        wait_for(
            lambda: traffic.headers and traffic.headers[-1].get("x-edited") == "1",
            what="the edited route to take effect",
        )

        def change_path(doc: dict) -> None:  # type: ignore[type-arg]
            doc["spec"]["rules"].append(
                {
                    "matches": [{"path": {"type": "Exact", "value": "/added"}}],
                    "backendRefs": [{"name": "http-test", "port": 8080}],
                }
            )
            doc["spec"]["rules"][0]["filters"] = []

        assert get(address, "/added")[0] == 200  # the / prefix rule catches it already
        edit_route(route_file, change_path)
        wait_for(
            lambda: traffic.headers and "x-edited" not in traffic.headers[-1],
            what="the second edit to take effect",
        )
        served = len(traffic.statuses)
        wait_for(lambda: len(traffic.statuses) > served + 20, what="traffic after the edits")
    finally:
        traffic.stop.set()
        worker.join()

    assert traffic.errors == []
    assert set(traffic.statuses) == {200}
    assert propylon.envoy()["pid"] == envoy_pid


def test_envoy_killed_comes_back_with_the_same_config(propylon: Running) -> None:
    address = propylon.gateway_address()
    wait_for(lambda: get(address)[0] == 200, what="route serving")
    before = propylon.envoy()
    os.kill(before["pid"], signal.SIGKILL)

    def restarted() -> bool:
        now = propylon.envoy()
        return bool(now["pid"]) and now["pid"] != before["pid"]

    wait_for(restarted, what="Envoy restarted")
    wait_for(lambda: get(address)[0] == 200, what="HTTP served again after the restart")
    result = grpc_ping(address)
    assert result.returncode == 0, result.stderr
    assert propylon.envoy()["restarts"] == before["restarts"] + 1


def _diagnostic_texts(propylon: Running) -> list[str]:
    return [
        " | ".join(str(d.get(k) or "") for k in ("file", "object", "field", "message"))
        for d in propylon.diagnostics()
    ]


def test_bad_input_never_stops_the_gateway(propylon: Running) -> None:
    address = propylon.gateway_address()
    wait_for(lambda: get(address)[0] == 200, what="route serving")
    m = propylon.manifests

    (m / "90-bad-yaml.yaml").write_text("kind: HTTPRoute\nmetadata: {name: [unclosed\n")
    (m / "91-wrong-type.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": "wrong-type"},
                "spec": {
                    "parentRefs": [{"name": "example-gateway"}],
                    "rules": [{"backendRefs": [{"name": "http-test", "port": "eighty"}]}],
                },
            }
        )
    )
    (m / "92-missing-field.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "Gateway",
                "metadata": {"name": "no-class"},
                "spec": {"listeners": [{"name": "web", "port": 80, "protocol": "HTTP"}]},
            }
        )
    )
    (m / "93-missing-service.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": "to-nowhere"},
                "spec": {
                    "parentRefs": [{"name": "example-gateway", "sectionName": "web-gw"}],
                    "hostnames": ["nowhere.mynetwork.local"],
                    "rules": [{"backendRefs": [{"name": "does-not-exist", "port": 8080}]}],
                },
            }
        )
    )
    original = (m / "20-httproute.yaml").read_text()
    (m / "94-duplicate.yaml").write_text(original)

    def reported() -> list[str] | None:
        texts = _diagnostic_texts(propylon)
        wanted = [
            "90-bad-yaml.yaml",
            "91-wrong-type.yaml",
            "92-missing-field.yaml",
            "94-duplicate.yaml",
        ]
        return texts if all(any(w in t for t in texts) for w in wanted) else None

    texts = wait_for(reported, what="every bad file reported")
    wrong_type = next(t for t in texts if "91-wrong-type.yaml" in t)
    assert "HTTPRoute default/wrong-type" in wrong_type
    assert "spec.rules[0].backendRefs[0].port" in wrong_type
    missing = next(t for t in texts if "92-missing-field.yaml" in t)
    assert "Gateway default/no-class" in missing and "spec.gatewayClassName" in missing
    duplicate = next(t for t in texts if "94-duplicate.yaml" in t)
    assert "HTTPRoute default/http-test-app" in duplicate and "20-httproute.yaml" in duplicate

    def backend_not_found() -> dict | None:  # type: ignore[type-arg]
        route = propylon.object("HTTPRoute", "to-nowhere")
        parents = (route or {}).get("status", {}).get("parents") or []
        cond = propylon.condition(parents[0], "ResolvedRefs") if parents else None
        return cond if cond and cond["reason"] == "BackendNotFound" else None

    cond = wait_for(backend_not_found, what="ResolvedRefs=False BackendNotFound")
    assert cond["status"] == "False" and "does-not-exist" in cond["message"]
    wait_for(
        lambda: get(address, host="nowhere.mynetwork.local")[0] == 500,
        what="the route to a missing Service answers 500",
    )

    # The valid route kept serving throughout, and the process is alive.
    assert get(address)[0] == 200
    assert propylon.process.poll() is None

    # Breaking a file that held a valid object keeps its last good version serving.
    (m / "94-duplicate.yaml").unlink()
    (m / "20-httproute.yaml").write_text(original.replace("rules:", "rules: [oops"))
    wait_for(
        lambda: any("20-httproute.yaml" in t for t in _diagnostic_texts(propylon)),
        what="the broken route file reported",
    )
    propylon.wait_synced()
    assert get(address)[0] == 200


def test_walkthrough_typo_gets_no_matching_parent(propylon: Running) -> None:
    propylon.gateway_address()
    original = (REPO / "examples" / "walkthrough-original" / "20-httproute.yaml").read_text()
    (propylon.manifests / "20-httproute.yaml").write_text(original)

    def rejected() -> dict | None:  # type: ignore[type-arg]
        route = propylon.object("HTTPRoute", "http-test-app")
        parents = (route or {}).get("status", {}).get("parents") or []
        cond = propylon.condition(parents[0], "Accepted") if parents else None
        return cond if cond and cond["status"] == "False" else None

    cond = wait_for(rejected, what="the typo route rejected")
    assert cond["reason"] == "NoMatchingParent"
    assert "http-gw" in cond["message"]
    assert "web-gw" in cond["message"] and "grpc-gw" in cond["message"]

    out = propylon.cli("describe", "httproute", "http-test-app")
    assert out.returncode == 0, out.stderr
    assert "NoMatchingParent" in out.stdout
