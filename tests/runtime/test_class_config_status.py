"""CiliumGatewayClassConfig status standalone, as Cilium 1.20 writes it: `Accepted` with
the config's generation; a config the files refuse is `Accepted=False` (`Invalid`) with
the field and the problem, in the status output (translate, the state dir), and the
GatewayClass pointing at it says why it is not accepted."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from propylon.gatewayapi import Builder, Inputs
from propylon.gatewayapi.classconfig import refused_configs
from propylon.resources import ObjectKey, parse_object
from propylon.runtime.pipeline import evaluate_once
from propylon.sources.files import load_paths
from propylon.store import error, warning
from propylon.values import Values

CONFIGS = """
apiVersion: cilium.io/v2alpha1
kind: CiliumGatewayClassConfig
metadata: {name: bad, namespace: infra}
spec:
  service:
    loadBalancerSourceRanges: [198.18.0.0/24, not-a-cidr]
---
apiVersion: cilium.io/v2alpha1
kind: CiliumGatewayClassConfig
metadata: {name: good, namespace: infra}
spec:
  service: {type: NodePort}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: on-bad}
spec:
  controllerName: io.cilium/gateway-controller
  parametersRef: {group: cilium.io, kind: CiliumGatewayClassConfig, name: bad, namespace: infra}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: on-good}
spec:
  controllerName: io.cilium/gateway-controller
  parametersRef: {group: cilium.io, kind: CiliumGatewayClassConfig, name: good, namespace: infra}
"""
BAD = ObjectKey("CiliumGatewayClassConfig", "infra", "bad")
GOOD = ObjectKey("CiliumGatewayClassConfig", "infra", "good")
PROBLEM = "spec.service.loadBalancerSourceRanges: [1]: 'not-a-cidr' is not a CIDR"


def _accepted(status: Mapping[str, Any]) -> dict[str, Any]:
    return next(dict(c) for c in status["conditions"] if c["type"] == "Accepted")


def test_statuses_of_valid_and_refused_configs(tmp_path: Path) -> None:
    (tmp_path / "configs.yaml").write_text(CONFIGS)
    changeset = load_paths([tmp_path])
    evaluation = evaluate_once(changeset, Values())
    statuses = evaluation.result.statuses
    assert statuses[GOOD] == {
        "conditions": [
            {
                "type": "Accepted",
                "status": "True",
                "reason": "Accepted",
                "message": "Valid GatewayClassConfig",
                "observedGeneration": 1,
            }
        ]
    }
    assert statuses[BAD] == {
        "conditions": [
            {
                "type": "Accepted",
                "status": "False",
                "reason": "Invalid",
                "message": f"Invalid GatewayClassConfig: {PROBLEM}",
                "observedGeneration": 1,
            }
        ]
    }
    on_bad = _accepted(statuses[ObjectKey("GatewayClass", "", "on-bad")])
    assert (on_bad["status"], on_bad["reason"]) == ("False", "InvalidParameters")
    assert on_bad["message"] == f"CiliumGatewayClassConfig infra/bad is invalid: {PROBLEM}"
    assert _accepted(statuses[ObjectKey("GatewayClass", "", "on-good")])["status"] == "True"
    # The refusal is reported once, at its file and field (not again from the status).
    about_bad = [d for d in evaluation.diagnostics if d.object == str(BAD)]
    assert [(d.file, d.field) for d in about_bad] == [
        (str(tmp_path / "configs.yaml"), "spec.service.loadBalancerSourceRanges")
    ]


def test_which_diagnostics_refuse_a_config() -> None:
    loaded = {GOOD}
    diagnostics = [
        # Kubernetes mode leaves a refused object out, with a warning.
        warning(f"ignored: {PROBLEM}", object=str(BAD)),
        # A warning about a loaded config (an unknown field) is no refusal ...
        warning('unknown field "spec.extra"', object=str(GOOD), field="spec.extra"),
        # ... an error is (standalone: the last good version stays loaded).
        error("wrong type", object="CiliumGatewayClassConfig infra/last-good", field="spec.x"),
        error("not a class config", object="Gateway infra/bad"),
    ]
    loaded.add(ObjectKey("CiliumGatewayClassConfig", "infra", "last-good"))
    refused = refused_configs(diagnostics, lambda k: k in loaded, lambda k: 7)
    assert refused == {
        BAD: (7, f"ignored: {PROBLEM}"),
        ObjectKey("CiliumGatewayClassConfig", "infra", "last-good"): (7, "spec.x: wrong type"),
    }


def test_the_incremental_builder_follows_refusals() -> None:
    """A config refused, then fixed, then refused again: the statuses follow each time
    (the set of refused configs is an input of the build)."""
    import yaml

    objects = {}
    for doc in yaml.safe_load_all(CONFIGS):
        if doc["metadata"]["name"] != "bad":
            obj = parse_object(doc)
            objects[obj.key] = obj
    builder = Builder()
    refused = {BAD: (2, PROBLEM)}
    first = builder.build(Inputs(objects=objects, refused_class_configs=refused))
    assert _accepted(first.statuses[BAD])["status"] == "False"
    fixed = parse_object(
        {
            "apiVersion": "cilium.io/v2alpha1",
            "kind": "CiliumGatewayClassConfig",
            "metadata": {"name": "bad", "namespace": "infra"},
            "spec": {},
        }
    )
    second = builder.build(Inputs(objects={**objects, BAD: fixed}), [BAD])
    assert _accepted(second.statuses[BAD])["status"] == "True"
    assert _accepted(second.statuses[ObjectKey("GatewayClass", "", "on-bad")])["status"] == "True"
    third = builder.build(Inputs(objects=objects, refused_class_configs=refused), [BAD])
    assert _accepted(third.statuses[BAD])["reason"] == "Invalid"
    on_bad = _accepted(third.statuses[ObjectKey("GatewayClass", "", "on-bad")])
    assert on_bad["message"] == f"CiliumGatewayClassConfig infra/bad is invalid: {PROBLEM}"
