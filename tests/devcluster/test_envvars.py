"""Container environment and $(VAR) expansion, as the kubelet builds them."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from devcluster.node.envvars import (
    ConfigError,
    PodFacts,
    container_env,
    expand,
    referenced_objects,
)

FACTS = PodFacts(pod_ip="198.18.17.2", host_ip="198.18.0.11")
POD: dict[str, Any] = {
    "metadata": {"name": "web-1", "namespace": "shop", "uid": "0123-abcd", "labels": {"a": "b"}},
    "spec": {"nodeName": "node-1", "serviceAccountName": "web"},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)", "1"),
        ("x$(A)y$(B)z", "x1y2z"),
        ("$(MISSING)", "$(MISSING)"),
        ("$$(A)", "$(A)"),
        ("$$", "$"),
        ("$(A", "$(A"),
        ("cost $5", "cost $5"),
        ("trailing $", "trailing $"),
        ("", ""),
    ],
)
def test_expand_follows_kubernetes_rules(text: str, expected: str) -> None:
    assert expand(text, {"A": "1", "B": "2"}) == expected


def _secret(**data: str) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"kind": "Secret", "data": encoded}


def test_env_values_field_refs_and_key_refs() -> None:
    container = {
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "LABEL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['a']"}}},
            {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
            {"name": "URL", "value": "http://$(IP):3000/$(POD_NAME)/$(UNSET)"},
        ]
    }
    env = container_env(
        POD,
        container,
        FACTS,
        secrets={"db": _secret(password="s3cret")},
        config_maps={"cfg": {"kind": "ConfigMap", "data": {"mode": "fast"}}},
        base={"PATH": "/bin"},
    )
    assert env == {
        "PATH": "/bin",
        "POD_NAME": "web-1",
        "NS": "shop",
        "UID": "0123-abcd",
        "IP": "198.18.17.2",
        "HOST": "198.18.0.11",
        "NODE": "node-1",
        "SA": "web",
        "LABEL": "b",
        "PASS": "s3cret",
        "MODE": "fast",
        "URL": "http://198.18.17.2:3000/web-1/$(UNSET)",
    }


def test_env_from_with_prefix_and_env_overrides_it() -> None:
    container = {
        "envFrom": [
            {"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
            {"secretRef": {"name": "s"}},
        ],
        "env": [{"name": "TOKEN", "value": "override"}],
    }
    env = container_env(
        POD,
        container,
        FACTS,
        secrets={"s": _secret(TOKEN="from-secret", USER="u")},
        config_maps={"cfg": {"kind": "ConfigMap", "data": {"mode": "fast"}}},
        base={},
    )
    assert env == {"CFG_mode": "fast", "TOKEN": "override", "USER": "u"}


def test_missing_secret_or_key_is_a_config_error_unless_optional() -> None:
    missing_secret = {
        "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]
    }
    with pytest.raises(ConfigError, match='secret "nope" not found'):
        container_env(POD, missing_secret, FACTS, {}, {}, {})
    missing_key = {
        "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]
    }
    with pytest.raises(ConfigError, match="couldn't find key k in ConfigMap shop/c"):
        container_env(POD, missing_key, FACTS, {}, {"c": {"kind": "ConfigMap", "data": {}}}, {})
    optional = {
        "env": [
            {
                "name": "X",
                "valueFrom": {"secretKeyRef": {"name": "n", "key": "k", "optional": True}},
            }
        ]
    }
    assert container_env(POD, optional, FACTS, {}, {}, {}) == {}


def test_referenced_objects_cover_env_env_from_and_volumes() -> None:
    pod = {
        "spec": {
            "containers": [
                {
                    "env": [
                        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k"}}}
                    ],
                    "envFrom": [{"configMapRef": {"name": "c1"}}],
                }
            ],
            "volumes": [
                {"name": "v1", "secret": {"secretName": "s2"}},
                {"name": "v2", "configMap": {"name": "c2"}},
                {
                    "name": "v3",
                    "projected": {"sources": [{"configMap": {"name": "kube-root-ca.crt"}}]},
                },
            ],
        }
    }
    refs = referenced_objects(pod)
    assert refs.secrets == {"s1", "s2"}
    assert refs.config_maps == {"c1", "c2", "kube-root-ca.crt"}
