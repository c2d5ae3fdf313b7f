"""EnvoySupervisor and the bootstrap, without routing traffic."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from dataplane_helpers import eventually, forward, free_address, http_model, start_backend

from propylon import model as m
from propylon.dataplane import EnvoyError, EnvoySupervisor, bootstrap, find_envoy
from propylon.envoy import Translator
from propylon.xds import AdsServer


@pytest.mark.parametrize("delta", [True, False])
def test_bootstrap_is_valid(tmp_path: Path, delta: bool) -> None:
    cfg = tmp_path / "b.json"
    cfg.write_text(json.dumps(bootstrap(node_id="n", xds_address="127.0.0.1:1", delta=delta)))
    proc = subprocess.run(
        [str(find_envoy()), "--mode", "validate", "-c", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def test_unix_socket_address_in_bootstrap() -> None:
    b = bootstrap(node_id="n", xds_address="unix:/run/x.sock")
    ep = b["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]
    assert ep["lb_endpoints"][0]["endpoint"]["address"] == {"pipe": {"path": "/run/x.sock"}}


def test_admin_must_be_loopback(tmp_path: Path) -> None:
    with pytest.raises(EnvoyError):
        EnvoySupervisor(
            binary=None,
            xds_address="127.0.0.1:1",
            admin_address="0.0.0.0:9901",
            node_id="n",
            workdir=tmp_path,
        )


def test_missing_binary(tmp_path: Path) -> None:
    with pytest.raises(EnvoyError):
        find_envoy(tmp_path / "nope")


async def test_bad_bootstrap_surfaces_log(tmp_path: Path) -> None:
    sup = EnvoySupervisor(
        binary=None,
        xds_address="127.0.0.1:1",
        admin_address="127.0.0.1:0",
        node_id="bad",
        workdir=tmp_path,
        log_level="not-a-level",
    )
    with pytest.raises(EnvoyError):
        await sup.start()


@pytest.mark.e2e
async def test_xds_over_unix_socket(tmp_path: Path) -> None:
    xds = AdsServer()
    sock = tmp_path / "xds.sock"
    address = await xds.start(f"unix:{sock}")
    assert address == f"unix:{sock}"
    backend = start_backend("unix")
    sup = EnvoySupervisor(
        binary=None,
        xds_address=address,
        admin_address="127.0.0.1:0",
        node_id="unix-node",
        workdir=tmp_path / "envoy",
    )
    await sup.start()
    try:
        assert sup.admin_address is not None and sup.admin_address.startswith("127.0.0.1:")
        lst = free_address()
        model = http_model(
            lst, {"default:u:80": (backend.host, backend.port)}, (forward("r", "default:u:80"),)
        )
        await xds.wait_acked(
            xds.update(Translator().translate(model, m.ProxyOptions())), node_id="unix-node"
        )
        import httpx

        async def probe() -> str:
            async with httpx.AsyncClient(trust_env=False) as c:
                r = await c.get(f"http://{lst[0]}:{lst[1]}/")
            assert r.status_code == 200
            return str(r.json()["backend"])

        assert await eventually(probe) == "unix"
        assert xds.nodes() == {"unix-node": xds.version}
    finally:
        await sup.stop()
        await xds.stop()
        backend.close()
    assert sup.pid is None and sup.restarts == 0
