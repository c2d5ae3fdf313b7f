"""A pod's volumes as directories under the state dir, ready to be bind-mounted.

Files are replaced by rename, so a refreshed ServiceAccount token appears atomically
inside the containers (they see the directory, not a copy of the file)."""

from __future__ import annotations

import datetime
import os
import shutil
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devcluster.node.envvars import ConfigError, PodFacts, expand, field_value, object_data
from devcluster.node.hostdirs import HostDirs
from devcluster.node.process import BindMount

Obj = dict[str, Any]
# (audience or None for the API server's, expirationSeconds) -> (token, expiry)
TokenSource = Callable[[str | None, int], Awaitable[tuple[str, datetime.datetime]]]
DEFAULT_TOKEN_SECONDS = 3607


@dataclass
class PodVolumes:
    root: Path
    dirs: dict[str, Path] = field(default_factory=dict)
    # When the earliest token must be fetched again (80% of its lifetime, as the kubelet).
    refresh_at: datetime.datetime | None = None
    host_dirs: HostDirs = field(default_factory=HostDirs)

    def mounts(self, container: Obj, env: Mapping[str, str] | None = None) -> list[BindMount]:
        mounts = []
        for mount in container.get("volumeMounts", []):
            name = mount["name"]
            source = self.dirs.get(name)
            if source is None:
                raise ConfigError(f"volumeMount {name}: no volume of that name")
            sub = mount.get("subPath") or expand(mount.get("subPathExpr", ""), env or {})
            if sub:
                if sub.startswith("/") or ".." in Path(sub).parts:
                    raise ConfigError(f"volumeMount {name}: subPath {sub!r} leaves the volume")
                source = source / sub
                if not source.exists():  # a file (a ConfigMap key) is bound as it is
                    # Made as the kubelet makes a missing one; inside a hostPath it is
                    # on this machine's disk, the node's own (recorded for `down`).
                    on_host = not source.is_relative_to(self.root)
                    if on_host:
                        self.host_dirs.make(source, own=True)
                    else:
                        source.mkdir(parents=True)
            mounts.append(BindMount(source, mount["mountPath"], bool(mount.get("readOnly"))))
        return mounts


def _write_atomic(directory: Path, relative: str, content: bytes, mode: int) -> None:
    target = directory / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp"
    tmp.write_bytes(content)
    tmp.chmod(mode)
    os.replace(tmp, target)


def _keys(data: Mapping[str, str], items: list[Obj] | None, what: str) -> dict[str, str]:
    """path -> value for a Secret/ConfigMap volume: every key, or only the items listed."""
    if not items:
        return dict(data)
    chosen = {}
    for item in items:
        if item["key"] not in data:
            raise ConfigError(f"couldn't find key {item['key']} in {what}")
        chosen[item["path"]] = data[item["key"]]
    return chosen


class VolumeWriter:
    def __init__(
        self,
        root: Path,
        pod: Obj,
        facts: PodFacts,
        secrets: Mapping[str, Obj | None],
        config_maps: Mapping[str, Obj | None],
        token_source: TokenSource,
        host_dirs: HostDirs | None = None,
    ) -> None:
        self.root = root
        self.host_dirs = host_dirs or HostDirs()
        self.pod = pod
        self.facts = facts
        self.secrets = secrets
        self.config_maps = config_maps
        self.token_source = token_source
        self.namespace = pod.get("metadata", {}).get("namespace", "")

    def _object(self, kind: str, name: str, optional: bool) -> dict[str, str]:
        objects = self.secrets if kind == "Secret" else self.config_maps
        obj = objects.get(name)
        if obj is None:
            if optional:
                return {}
            raise ConfigError(f'{kind.lower()} "{name}" not found')
        return object_data(obj)

    async def write_all(self) -> PodVolumes:
        volumes = PodVolumes(self.root, host_dirs=self.host_dirs)
        for volume in self.pod.get("spec", {}).get("volumes", []):
            volumes.dirs[volume["name"]] = await self._write(volume, volumes)
        return volumes

    async def refresh_tokens(self, volumes: PodVolumes) -> None:
        volumes.refresh_at = None
        for volume in self.pod.get("spec", {}).get("volumes", []):
            if "projected" in volume:
                await self._write(volume, volumes)

    async def _write(self, volume: Obj, volumes: PodVolumes) -> Path:
        name = str(volume["name"])
        if "hostPath" in volume:
            path = Path(volume["hostPath"]["path"])
            if volume["hostPath"].get("type") in ("DirectoryOrCreate",):
                self.host_dirs.make(path, own=False)  # shared by every node here
            return path
        directory = self.root / name
        directory.mkdir(parents=True, exist_ok=True)
        if "emptyDir" in volume:
            return directory
        if "secret" in volume:
            spec = volume["secret"]
            what = f"Secret {self.namespace}/{spec['secretName']}"
            data = self._object("Secret", spec["secretName"], bool(spec.get("optional")))
            self._files(directory, _keys(data, spec.get("items"), what), spec, 0o644)
        elif "configMap" in volume:
            spec = volume["configMap"]
            what = f"ConfigMap {self.namespace}/{spec['name']}"
            data = self._object("ConfigMap", spec["name"], bool(spec.get("optional")))
            self._files(directory, _keys(data, spec.get("items"), what), spec, 0o644)
        elif "downwardAPI" in volume:
            self._downward(directory, volume["downwardAPI"].get("items", []), 0o644)
        elif "projected" in volume:
            await self._projected(directory, volume["projected"], volumes)
        else:
            kinds = sorted(set(volume) - {"name"})
            raise ConfigError(f"volume {name}: unsupported volume type {kinds}")
        return directory

    def _files(self, directory: Path, files: Mapping[str, str], spec: Obj, mode: int) -> None:
        mode = spec.get("defaultMode", mode)
        for path, value in files.items():
            _write_atomic(directory, path, value.encode(), mode)

    def _downward(self, directory: Path, items: list[Obj], mode: int) -> None:
        for item in items:
            if "fieldRef" not in item:
                path = item.get("path")
                raise ConfigError(f"downwardAPI item {path}: only fieldRef is supported")
            value = field_value(self.pod, item["fieldRef"]["fieldPath"], self.facts)
            _write_atomic(directory, item["path"], value.encode(), item.get("mode", mode))

    async def _projected(self, directory: Path, spec: Obj, volumes: PodVolumes) -> None:
        mode = spec.get("defaultMode", 0o644)
        for source in spec.get("sources", []):
            if "serviceAccountToken" in source:
                token_spec = source["serviceAccountToken"]
                seconds = int(token_spec.get("expirationSeconds", DEFAULT_TOKEN_SECONDS))
                token, expires = await self.token_source(token_spec.get("audience"), seconds)
                _write_atomic(directory, token_spec["path"], token.encode(), mode)
                now = datetime.datetime.now(datetime.UTC)
                refresh = now + (expires - now) * 0.8
                if volumes.refresh_at is None or refresh < volumes.refresh_at:
                    volumes.refresh_at = refresh
            elif "configMap" in source or "secret" in source:
                kind = "ConfigMap" if "configMap" in source else "Secret"
                ref = source["configMap" if kind == "ConfigMap" else "secret"]
                data = self._object(kind, ref["name"], bool(ref.get("optional")))
                files = _keys(data, ref.get("items"), f"{kind} {self.namespace}/{ref['name']}")
                self._files(directory, files, {"defaultMode": mode}, mode)
            elif "downwardAPI" in source:
                self._downward(directory, source["downwardAPI"].get("items", []), mode)
            else:
                raise ConfigError(f"projected source {sorted(source)} is not supported")


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
