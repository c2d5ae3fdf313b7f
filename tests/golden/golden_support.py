"""Helpers for golden tests: load a case's input, run `build`, dump readable YAML."""

from __future__ import annotations

import dataclasses
import os
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from propylon.cli.yamltext import yaml_text
from propylon.gatewayapi import BuildResult, Inputs, build
from propylon.model import DEFAULT_LISTENER_OPTIONS, Model
from propylon.resources import ObjectKey, Resource, parse_object
from propylon.values import Values

CASES = Path(__file__).parent
DEFAULT_POOL = ("127.10.0.0/16",)
UPDATE = os.environ.get("PROPYLON_UPDATE_GOLDEN") == "1"


def load_objects(text: str) -> dict[ObjectKey, Resource]:
    objects: dict[ObjectKey, Resource] = {}
    for doc in yaml.safe_load_all(text):
        if doc:
            obj = parse_object(doc)
            objects[obj.key] = obj
    return objects


def run_case(case: Path) -> BuildResult:
    values_file = case / "values.yaml"
    values = (
        Values.model_validate(yaml.safe_load(values_file.read_text()))
        if values_file.exists()
        else Values()
    )
    prev_file = case / "previous.yaml"
    previous: dict[ObjectKey, str] = {}
    if prev_file.exists():
        for k, v in (yaml.safe_load(prev_file.read_text()) or {}).items():
            ns, name = k.split("/")
            previous[ObjectKey("Gateway", ns, name)] = v
    inputs = Inputs(
        objects=load_objects((case / "input.yaml").read_text()),
        values=values,
        previous_addresses=previous,
        default_pool=DEFAULT_POOL,
    )
    return build(inputs)


def _plain(value: Any) -> Any:
    """Dataclasses -> dicts, dropping None and empty values so the dump stays readable."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            if not f.compare:
                continue  # hints (Model.stamp, Model.delta), not content
            v = _plain(getattr(value, f.name))
            # Keep cluster=None visible: it means "this share gets HTTP 500".
            if (v is None and f.name != "cluster") or v == () or v == [] or v == {}:
                continue
            out[f.name] = v
        if not out:
            return {}
        return out
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _action(route: Any) -> Any:
    return type(route).__name__


def dump_model(model: Model) -> str:
    data = _plain(model)
    # Tag route actions with their kind, which the plain dict loses.
    for li, li_data in zip(model.listeners, data.get("listeners", []), strict=True):
        if li.options == DEFAULT_LISTENER_OPTIONS:
            li_data.pop("options", None)  # shown only where a class config sets something
        if li.http is not None and "http" not in li_data:
            li_data["http"] = []  # an HTTP listener without routes: everything is a 404
        vhost_sets = []
        if li.http is not None:
            vhost_sets.append((li.http, li_data.get("http", [])))
        for chain, chain_data in zip(li.https, li_data.get("https", []), strict=True):
            vhost_sets.append((chain.virtual_hosts, chain_data.get("virtual_hosts", [])))
        for vhosts, vh_data in vhost_sets:
            for vh, vhd in zip(vhosts, vh_data, strict=True):
                for r, rd in zip(vh.routes, vhd.get("routes", []), strict=True):
                    rd["action"] = {type(r.action).__name__: rd["action"]}
    return yaml_text(data, sort_keys=False, width=100)


def dump_status(result: BuildResult) -> str:
    data = {
        "statuses": {str(k): v for k, v in result.statuses.items()},
        "addresses": {str(k): v for k, v in sorted(result.addresses.items())},
        "services": [
            s.model_dump(by_alias=True, exclude_none=True, mode="json") for s in result.services
        ],
        "diagnostics": [f"{d.severity}: {d}" for d in result.diagnostics],
    }
    return yaml_text(data, sort_keys=False, width=100)
