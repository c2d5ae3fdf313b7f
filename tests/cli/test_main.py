from __future__ import annotations

import asyncio
import json
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from propylon.cli import main
from propylon.runtime.options import RunOptions
from propylon.state import ApiServer, StateDir

CLASS = """\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: cilium
spec:
  controllerName: io.cilium/gateway-controller
"""
GATEWAY = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  gatewayClassName: cilium
  listeners:
  - name: web
    protocol: HTTP
    port: 8080
"""
ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: route
spec:
  parentRefs:
  - name: gw
  hostnames: [app.example]
  rules:
  - backendRefs:
    - name: {backend}
      port: 8080
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: app
spec:
  ports:
  - port: 8080
"""


def manifests(tmp_path: Path, backend: str = "app") -> Path:
    root = tmp_path / "manifests"
    root.mkdir()
    (root / "all.yaml").write_text(
        "---\n".join([CLASS, GATEWAY, ROUTE.format(backend=backend), SERVICE])
    )
    return root


def test_validate_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-f", str(manifests(tmp_path))]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "4 objects, 0 errors, 0 warnings" in err


def test_validate_reports_schema_and_semantic_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = manifests(tmp_path, backend="missing")
    (root / "bad.yaml").write_text(
        SERVICE.replace("name: app", "name: other").replace("port: 8080", "port: -1")
    )
    assert main(["validate", "-f", str(root)]) == 1
    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert any(
        line.startswith(f"error: {root / 'bad.yaml'}#0: Service default/other: spec.ports[0].port:")
        for line in lines
    ), out
    assert any(
        f"{root / 'all.yaml'}#2: HTTPRoute default/route: status.parents[0].conditions:" in line
        and "ResolvedRefs=False (BackendNotFound)" in line
        for line in lines
    ), out


def test_validate_bad_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.yaml"
    bad.write_text("kind: [\n")
    assert main(["validate", "-f", str(bad)]) == 1
    assert f"error: {bad}:2: line 2" in capsys.readouterr().out


def test_translate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = manifests(tmp_path)
    assert main(["translate", "-f", str(root), "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"addresses", "diagnostics", "services", "statuses", "xds"}
    assert "Gateway/default/gw" in data["statuses"]
    assert set(data["xds"]) >= {"listeners", "clusters", "routes"}
    assert main(["translate", "-f", str(root)]) == 0
    first = capsys.readouterr().out
    assert main(["translate", "-f", str(root)]) == 0
    assert capsys.readouterr().out == first  # deterministic
    assert yaml.safe_load(first)["addresses"]


def test_run_builds_options_and_calls_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[RunOptions] = []

    def fake_run(options: RunOptions) -> int:
        seen.append(options)
        return 0

    monkeypatch.setitem(sys.modules, "propylon.runtime", types.SimpleNamespace(run=fake_run))
    monkeypatch.setenv("PROPYLON_STATE_DIR", str(tmp_path / "st"))
    values = tmp_path / "values.yaml"
    values.write_text("gatewayAPI:\n  xffNumTrustedHops: 3\n")
    code = main(
        [
            "run",
            "-f",
            "a",
            "-f",
            "b.yaml",
            "--values",
            str(values),
            "--set",
            "gatewayAPI.hostNetwork.enabled=true",
            "--log-level",
            "debug",
            "--admin-port",
            "9901",
            "--ip-pool",
            "127.171.1.0/24",
        ]
    )
    assert code == 0
    (options,) = seen
    assert options.paths == (Path("a"), Path("b.yaml"))
    assert options.state_dir == tmp_path / "st"
    assert options.values.gateway_api.xff_num_trusted_hops == 3
    assert options.values.gateway_api.host_network.enabled
    assert (options.log_level, options.admin_port, options.envoy_binary) == ("debug", 9901, None)
    assert options.default_pool == ("127.171.1.0/24",)


def test_run_rejects_bad_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-f", "x", "--set", "gatewayAPI.xffNumTrustedHops=-2"]) == 2
    assert "invalid values" in capsys.readouterr().err


def test_get_without_instance(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", "gateways", "--state-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        f"error: no running propylon found at {tmp_path / 'api.sock'}: "
        "start one with `propylon run -f DIR`\n"
    )


@pytest.fixture
def running_api(tmp_path: Path) -> Iterator[Path]:
    """An ApiServer on the state dir's socket, in a thread with its own event loop."""
    state = StateDir(tmp_path / "state")
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {
                "name": "gw",
                "namespace": "default",
                "creationTimestamp": "2020-01-01T00:00:00Z",
            },
            "spec": {"gatewayClassName": "cilium"},
            "status": {
                "addresses": [{"value": "127.10.0.1"}],
                "conditions": [{"type": "Programmed", "status": "True"}],
            },
        },
    ]
    loop = asyncio.new_event_loop()
    server = ApiServer(state.socket_path, objects=lambda _query: docs)
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield state.path
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_get_and_describe_through_socket(
    running_api: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["get", "gtw", "--state-dir", str(running_api)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "NAME   CLASS    ADDRESS      PROGRAMMED   AGE"
    assert out.splitlines()[1].startswith("gw     cilium   127.10.0.1   True         ")
    assert main(["describe", "gateway", "gw", "--state-dir", str(running_api)]) == 0
    assert "Gateway Class Name:  cilium" in capsys.readouterr().out
    assert main(["get", "gtw", "nope", "--state-dir", str(running_api)]) == 1


def test_demo_is_wired() -> None:
    with pytest.raises(SystemExit) as info:
        main(["demo", "--help"])
    assert info.value.code == 0


def test_names_may_follow_options_as_with_kubectl(monkeypatch: pytest.MonkeyPatch) -> None:
    cli_main = sys.modules["propylon.cli.main"]  # the module; `propylon.cli.main` is the function
    seen: list[Any] = []
    parser = cli_main.build_parser()
    monkeypatch.setattr(cli_main, "build_parser", lambda: parser)
    get = parser._subparsers._group_actions[0].choices["get"]  # type: ignore[union-attr]
    get.set_defaults(func=lambda args: seen.append(args) or 0)
    assert main(["get", "gateway", "-n", "infra", "gw-a", "gw-b"]) == 0
    assert seen[0].names == ["gw-a", "gw-b"] and seen[0].namespace == "infra"
    with pytest.raises(SystemExit):
        main(["get", "gateway", "--no-such-flag"])


def test_translate_yaml_spells_out_statuses_routes_share(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Routes with the same status share one object in the core; the YAML output still
    writes each one out (no `&id001` anchors and `*id001` aliases)."""
    root = manifests(tmp_path)
    second = ROUTE.format(backend="app").replace("name: route", "name: route2")
    (root / "more.yaml").write_text(second.replace("app.example", "two.example"))
    assert main(["translate", "-f", str(root)]) == 0
    out = capsys.readouterr().out
    assert "&id" not in out and "*id" not in out
    statuses = yaml.safe_load(out)["statuses"]
    first, other = statuses["HTTPRoute/default/route"], statuses["HTTPRoute/default/route2"]
    assert first == other and first["parents"][0]["conditions"][0]["status"] == "True"
