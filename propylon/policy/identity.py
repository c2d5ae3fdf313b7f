"""Identities (the labels Cilium gives each end of a flow) and label selectors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from propylon.resources import LabelSelector

NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
NAMESPACE_LABELS_PREFIX = "io.cilium.k8s.namespace.labels."
#: Label sources a selector key may start with (`k8s:app`); no prefix or `any:` matches
#: a label of any source.
SOURCES = ("k8s", "reserved", "any", "container", "unspec", "cidr", "fqdn", "cni")


@dataclass(frozen=True, slots=True)
class Identity:
    """`kind`: "world" (outside the cluster, `address` known), "ingress" (the Gateway's
    Envoy) or "pod" (`name` is `namespace/name`). `labels`: (source, key) -> value."""

    kind: str
    name: str
    labels: Mapping[tuple[str, str], str]
    address: str | None = None

    @property
    def in_cluster(self) -> bool:
        return self.kind != "world"

    @property
    def namespace(self) -> str | None:
        return self.labels.get(("k8s", NAMESPACE_LABEL))

    def lookup(self, key: str) -> str | None:
        source, sep, bare = key.partition(":")
        if sep and source in SOURCES:
            if source != "any":
                return self.labels.get((source, bare))
            key = bare
        for (_, k), v in self.labels.items():
            if k == key:
                return v
        return None

    def describe(self) -> str:
        if self.kind == "pod":
            return f"pod {self.name}"
        if self.kind == "world":
            return f"world ({self.address})" if self.address else "world"
        return "the ingress identity"


INGRESS = Identity("ingress", "ingress", {("reserved", "ingress"): ""})


def world(address: str | None) -> Identity:
    return Identity("world", "world", {("reserved", "world"): ""}, address)


def pod_identity(
    namespace: str, name: str, labels: Mapping[str, str], ns_labels: Mapping[str, str]
) -> Identity:
    found: dict[tuple[str, str], str] = {("k8s", k): v for k, v in labels.items()}
    found[("k8s", NAMESPACE_LABEL)] = namespace
    for k, v in ns_labels.items():
        found[("k8s", NAMESPACE_LABELS_PREFIX + k)] = v
    return Identity("pod", f"{namespace}/{name}", found)


def _bare(key: str) -> str:
    source, sep, bare = key.partition(":")
    return bare if sep and source in SOURCES else key


@dataclass(frozen=True, slots=True)
class Selector:
    """A Cilium endpoint selector. `namespace`: the implicit namespace a namespaced
    policy adds (None: any namespace)."""

    selector: LabelSelector
    namespace: str | None = None

    def matches(self, identity: Identity) -> bool:
        if self.namespace is not None and identity.namespace != self.namespace:
            return False
        for key, value in self.selector.match_labels.items():
            if identity.lookup(key) != value:
                return False
        for req in self.selector.match_expressions:
            have = identity.lookup(req.key)
            op = req.operator
            if op == "In" and (have is None or have not in req.values):
                return False
            if op == "NotIn" and have is not None and have in req.values:
                return False
            if op == "Exists" and have is None:
                return False
            if op == "DoesNotExist" and have is not None:
                return False
        return True


def scoped(selector: LabelSelector, namespace: str | None) -> Selector:
    """A namespaced policy's selector, restricted to its namespace unless it names a
    namespace itself or a reserved identity (which has no namespace)."""
    if namespace is None:
        return Selector(selector)
    keys = [*selector.match_labels, *(r.key for r in selector.match_expressions)]
    if any(_bare(k) == NAMESPACE_LABEL or k.startswith("reserved:") for k in keys):
        return Selector(selector)
    return Selector(selector, namespace)
