"""Pod volumes written under the state dir: what each source puts where."""

from __future__ import annotations

import base64
import datetime
from pathlib import Path
from typing import Any

import pytest

from devcluster.node.envvars import ConfigError, PodFacts
from devcluster.node.volumes import VolumeWriter

FACTS = PodFacts(pod_ip="198.18.17.2", host_ip="198.18.0.11")


def pod(volumes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
        "spec": {"volumes": volumes, "containers": []},
    }


class Tokens:
    def __init__(self) -> None:
        self.requests: list[tuple[str | None, int]] = []
        self.issued = datetime.datetime.now(datetime.UTC)

    async def __call__(self, audience: str | None, seconds: int) -> tuple[str, datetime.datetime]:
        self.requests.append((audience, seconds))
        self.issued = datetime.datetime.now(datetime.UTC)
        return f"token-{len(self.requests)}", self.issued + datetime.timedelta(seconds=seconds)


KUBE_API_ACCESS = {
    "name": "kube-api-access",
    "projected": {
        "sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
            {
                "configMap": {
                    "name": "kube-root-ca.crt",
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                }
            },
            {
                "downwardAPI": {
                    "items": [
                        {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                    ]
                }
            },
        ]
    },
}


async def test_service_account_volume_as_the_admission_plugin_writes_it(tmp_path: Path) -> None:
    tokens = Tokens()
    config_maps: dict[str, Any] = {
        "kube-root-ca.crt": {"kind": "ConfigMap", "data": {"ca.crt": "PEM"}}
    }
    writer = VolumeWriter(tmp_path, pod([KUBE_API_ACCESS]), FACTS, {}, config_maps, tokens)
    volumes = await writer.write_all()
    directory = volumes.dirs["kube-api-access"]
    assert (directory / "token").read_text() == "token-1"
    assert (directory / "ca.crt").read_text() == "PEM"
    assert (directory / "namespace").read_text() == "shop"
    assert tokens.requests == [(None, 3607)]  # no audience: the API server's
    assert volumes.refresh_at is not None
    lifetime = (volumes.refresh_at - tokens.issued).total_seconds()
    assert 0.79 * 3607 < lifetime < 0.81 * 3607  # refreshed at 80 % of its life

    await writer.refresh_tokens(volumes)
    assert (directory / "token").read_text() == "token-2"  # same file, replaced


async def test_secret_config_map_empty_dir_and_mounts(tmp_path: Path) -> None:
    secret = {"kind": "Secret", "data": {"password": base64.b64encode(b"s3cret").decode()}}
    config_map = {"kind": "ConfigMap", "data": {"a": "1", "b": "2"}}
    spec = pod(
        [
            {"name": "creds", "secret": {"secretName": "db"}},
            {
                "name": "cfg",
                "configMap": {"name": "cfg", "items": [{"key": "b", "path": "sub/b.txt"}]},
            },
            {"name": "scratch", "emptyDir": {}},
        ]
    )
    writer = VolumeWriter(tmp_path, spec, FACTS, {"db": secret}, {"cfg": config_map}, Tokens())
    volumes = await writer.write_all()
    assert (volumes.dirs["creds"] / "password").read_text() == "s3cret"
    assert (volumes.dirs["cfg"] / "sub" / "b.txt").read_text() == "2"
    assert not (volumes.dirs["cfg"] / "a").exists()
    assert volumes.dirs["scratch"].is_dir()
    container = {
        "volumeMounts": [
            {"name": "creds", "mountPath": "/etc/creds", "readOnly": True},
            {"name": "scratch", "mountPath": "/data"},
            # The chart's per-node folder of a hostPath every node of this machine shares.
            {"name": "scratch", "mountPath": "/state", "subPathExpr": "$(NODE_NAME)"},
        ]
    }
    mounts = volumes.mounts(container, {"NODE_NAME": "node-2"})
    assert [(m.target, m.read_only) for m in mounts] == [
        ("/etc/creds", True),
        ("/data", False),
        ("/state", False),
    ]
    assert mounts[2].source == volumes.dirs["scratch"] / "node-2"
    assert mounts[2].source.is_dir()
    with pytest.raises(ConfigError, match="volumeMount nope: no volume of that name"):
        volumes.mounts({"volumeMounts": [{"name": "nope", "mountPath": "/x"}]}, {})
    escape = {"volumeMounts": [{"name": "scratch", "mountPath": "/s", "subPath": "../x"}]}
    with pytest.raises(ConfigError, match="leaves the volume"):
        volumes.mounts(escape, {})


async def test_missing_secret_is_a_config_error_naming_it(tmp_path: Path) -> None:
    writer = VolumeWriter(
        tmp_path, pod([{"name": "s", "secret": {"secretName": "absent"}}]), FACTS, {}, {}, Tokens()
    )
    with pytest.raises(ConfigError, match='secret "absent" not found'):
        await writer.write_all()


async def test_sub_path_expr_expands_the_containers_env(tmp_path: Path) -> None:
    """A shared host path split per node (`subPathExpr: $(NODE_NAME)`): two nodes' pods on
    one machine must not share the directory."""
    host = tmp_path / "host"
    spec = pod([{"name": "sockets", "hostPath": {"path": str(host)}}])
    writer = VolumeWriter(tmp_path / "pod", spec, FACTS, {}, {}, Tokens())
    volumes = await writer.write_all()
    container = {
        "volumeMounts": [{"name": "sockets", "mountPath": "/run/x", "subPathExpr": "$(NODE_NAME)"}]
    }
    mounts = volumes.mounts(container, {"NODE_NAME": "node-2"})
    assert [(m.source, m.target) for m in mounts] == [(host / "node-2", "/run/x")]
    assert (host / "node-2").is_dir()
