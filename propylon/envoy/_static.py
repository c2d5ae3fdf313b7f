"""Render `XdsResources` as plain dicts: for golden files, `propylon translate`, and a
static bootstrap that `envoy --mode validate` can check without an xDS server."""

from __future__ import annotations

import copy
import json
from typing import Any

from google.protobuf.json_format import MessageToDict

from propylon.envoy.output import XdsResources


def to_dicts(resources: XdsResources) -> dict[str, dict[str, dict[str, Any]]]:
    """Kind (`listeners`, `routes`, ...) -> name -> proto3 JSON (original field names)."""

    def conv(msgs: Any) -> dict[str, dict[str, Any]]:
        # The JSON round trip turns the OrderedDicts of `Any` fields into plain dicts.
        return {
            name: json.loads(json.dumps(MessageToDict(msg, preserving_proto_field_name=True)))
            for name, msg in sorted(msgs.items())
        }

    return {
        "listeners": conv(resources.listeners),
        "routes": conv(resources.routes),
        "clusters": conv(resources.clusters),
        "endpoints": conv(resources.endpoints),
        "secrets": conv(resources.secrets),
        # Only when present, so translations without scoped RDS read as before.
        **({"scoped_routes": conv(resources.scoped_routes)} if resources.scoped_routes else {}),
    }


def static_bootstrap(resources: XdsResources, *, admin_port: int = 0) -> dict[str, Any]:
    """The same configuration as static resources: RDS inlined into each HCM (scoped RDS
    as an inline list of scopes), EDS
    clusters turned STATIC with their load assignment, SDS secrets made static."""
    d = to_dicts(resources)

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, value in node.items():
                if key == "rds":
                    out["route_config"] = copy.deepcopy(d["routes"][value["route_config_name"]])
                elif key == "scoped_rds":
                    prefix = node["name"] + "/"
                    out["scoped_route_configurations_list"] = {
                        "scoped_route_configurations": [
                            copy.deepcopy(scope)
                            for name, scope in d.get("scoped_routes", {}).items()
                            if name.startswith(prefix)
                        ]
                    }
                elif key == "sds_config":
                    continue
                else:
                    out[key] = inline(value)
            return out
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    clusters = []
    for name, c in d["clusters"].items():
        c = dict(c)
        c.pop("eds_cluster_config", None)
        c["type"] = "STATIC"
        c["load_assignment"] = d["endpoints"].get(name, {"cluster_name": name})
        clusters.append(c)
    return {
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}
        },
        "bootstrap_extensions": [
            {
                "name": "envoy.bootstrap.internal_listener",
                "typed_config": {
                    "@type": "type.googleapis.com/"
                    "envoy.extensions.bootstrap.internal_listener.v3.InternalListener"
                },
            }
        ],
        "static_resources": {
            "listeners": [inline(lst) for lst in d["listeners"].values()],
            "clusters": clusters,
            "secrets": list(d["secrets"].values()),
        },
    }
