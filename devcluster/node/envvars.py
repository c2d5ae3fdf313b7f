"""Container environment and $(VAR) expansion, resolved the way the kubelet does it.

Pure: the Secrets and ConfigMaps a pod refers to are fetched by the caller first
(``referenced_objects``) and handed in, so resolution itself does no I/O.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


class ConfigError(Exception):
    """The container's configuration cannot be built (CreateContainerConfigError)."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Replace $(VAR) with env[VAR]; $$ is a literal $; unknown or unclosed references
    stay as written (Kubernetes' expansion rules)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$" or i + 1 >= len(text):
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "(":
            close = text.find(")", i + 2)
            if close < 0:
                out.append(text[i:])
                break
            name = text[i + 2 : close]
            out.append(env[name] if name in env else text[i : close + 1])
            i = close + 1
        else:
            out.append(char + following)
            i += 2
    return "".join(out)


@dataclass(frozen=True)
class PodFacts:
    """The values a fieldRef may name that are only known on the node."""

    pod_ip: str
    host_ip: str


@dataclass(frozen=True)
class Referenced:
    secrets: frozenset[str]
    config_maps: frozenset[str]


def referenced_objects(pod: Obj) -> Referenced:
    """The Secrets and ConfigMaps the pod's env, envFrom and volumes read."""
    secrets: set[str] = set()
    config_maps: set[str] = set()
    spec = pod.get("spec", {})
    for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        for var in container.get("env", []):
            source = var.get("valueFrom") or {}
            if "secretKeyRef" in source:
                secrets.add(source["secretKeyRef"]["name"])
            if "configMapKeyRef" in source:
                config_maps.add(source["configMapKeyRef"]["name"])
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                secrets.add(source["secretRef"]["name"])
            if "configMapRef" in source:
                config_maps.add(source["configMapRef"]["name"])
    for volume in spec.get("volumes", []):
        if "secret" in volume:
            secrets.add(volume["secret"]["secretName"])
        if "configMap" in volume:
            config_maps.add(volume["configMap"]["name"])
        for source in (volume.get("projected") or {}).get("sources", []):
            if "secret" in source:
                secrets.add(source["secret"]["name"])
            if "configMap" in source:
                config_maps.add(source["configMap"]["name"])
    return Referenced(frozenset(secrets), frozenset(config_maps))


def object_data(obj: Obj) -> dict[str, str]:
    """A ConfigMap's or Secret's key -> text value (Secret data is base64)."""
    if obj.get("kind") == "Secret":
        data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        data.update(obj.get("stringData") or {})
        return data
    return {**(obj.get("binaryData") or {}), **(obj.get("data") or {})}


def field_value(pod: Obj, path: str, facts: PodFacts) -> str:
    meta = pod.get("metadata", {})
    spec = pod.get("spec", {})
    values = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": facts.pod_ip,
        "status.hostIP": facts.host_ip,
    }
    if path in values:
        return str(values[path])
    for prefix, source in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        if path.startswith(prefix + "['") and path.endswith("']"):
            return str((meta.get(source) or {}).get(path[len(prefix) + 2 : -2], ""))
    raise ConfigError(f"unsupported fieldRef fieldPath {path!r}")


def _lookup(kind: str, ref: Obj, objects: Mapping[str, Obj | None], namespace: str) -> str | None:
    name, key = ref["name"], ref["key"]
    obj = objects.get(name)
    if obj is None:
        if ref.get("optional"):
            return None
        raise ConfigError(f'{kind.lower()} "{name}" not found')
    data = object_data(obj)
    if key not in data:
        if ref.get("optional"):
            return None
        raise ConfigError(f"couldn't find key {key} in {kind} {namespace}/{name}")
    return data[key]


def container_env(
    pod: Obj,
    container: Obj,
    facts: PodFacts,
    secrets: Mapping[str, Obj | None],
    config_maps: Mapping[str, Obj | None],
    base: Mapping[str, str],
) -> dict[str, str]:
    """The container's environment: ``base`` (service variables) then envFrom, then env in
    order, each env value expanded with what is defined before it."""
    namespace = pod.get("metadata", {}).get("namespace", "")
    env: dict[str, str] = dict(base)
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        for kind, field, objects in (
            ("Secret", "secretRef", secrets),
            ("ConfigMap", "configMapRef", config_maps),
        ):
            if field not in source:
                continue
            ref = source[field]
            obj = objects.get(ref["name"])
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind.lower()} "{ref["name"]}" not found')
            env.update({prefix + k: v for k, v in object_data(obj).items()})
    for var in container.get("env", []):
        name = var["name"]
        source = var.get("valueFrom")
        if source is None:
            env[name] = expand(var.get("value", ""), env)
            continue
        value: str | None
        if "fieldRef" in source:
            value = field_value(pod, source["fieldRef"]["fieldPath"], facts)
        elif "secretKeyRef" in source:
            value = _lookup("Secret", source["secretKeyRef"], secrets, namespace)
        elif "configMapKeyRef" in source:
            value = _lookup("ConfigMap", source["configMapKeyRef"], config_maps, namespace)
        else:
            raise ConfigError(f"env {name}: unsupported valueFrom {sorted(source)}")
        if value is not None:
            env[name] = value
    return env


def expand_all(items: list[str] | None, env: Mapping[str, str]) -> list[str] | None:
    return None if items is None else [expand(item, env) for item in items]
