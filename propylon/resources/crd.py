"""Validation from CustomResourceDefinitions, as the API server does it.

`CRDSchemas` installs CRD documents (the same files Kubernetes mode applies) and
checks objects of their kinds against the served version's structural schema (types,
formats, patterns, enums, lengths, list limits and list-type uniqueness, defaults
applied first) and every `x-kubernetes-validations` CEL rule, evaluated with the
`common-expression-language` library plus the Kubernetes extension functions the
rules use. Unknown fields are reported as strict field validation reports them.

Transition rules (`oldSelf`) are skipped: standalone mode has no previous object at
create time, and the API server skips them on create too."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field, model_validator

from propylon.resources.base import Resource, record
from propylon.resources.celfunctions import KUBERNETES_FUNCTIONS, escape_property, evaluate_rule
from propylon.resources.schemawalk import CRDError, FieldProblem, Walk, compile_schema
from propylon.resources.schemawalk import Node as _Node

__all__ = [
    "KUBERNETES_FUNCTIONS",
    "CRDError",
    "CRDSchemas",
    "CustomResourceDefinition",
    "FieldProblem",
    "escape_property",
    "evaluate_rule",
    "load_crds",
]

# Metadata fields a client may send; anything else under metadata is unknown.
_META_FIELDS_TEXT = (
    "name generateName namespace labels annotations uid resourceVersion generation "
    "creationTimestamp deletionTimestamp deletionGracePeriodSeconds "
    "ownerReferences finalizers managedFields selfLink "
)
META_FIELDS = frozenset(_META_FIELDS_TEXT.split())


@record
class CustomResourceDefinition(Resource):
    """A CRD among the manifests: installed (as a cluster would), then objects of its
    kinds are validated against it. Its schema is kept as written."""

    api_version: str = "apiextensions.k8s.io/v1"
    kind: str = "CustomResourceDefinition"
    spec: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _installable(self) -> CustomResourceDefinition:
        try:
            CRDSchemas().install(self.document())
        except CRDError as exc:
            raise ValueError(str(exc)) from None
        return self

    def document(self) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": {"name": self.metadata.name},
            "spec": self.spec,
        }


@dataclass
class _Version:
    kind: str
    root: _Node


class CRDSchemas:
    """The CRDs installed so far, by (apiVersion, kind) of the versions they serve."""

    def __init__(self) -> None:
        self._versions: dict[tuple[str, str], _Version] = {}
        self.crds: dict[str, Mapping[str, Any]] = {}  # name -> document

    def __bool__(self) -> bool:
        return bool(self._versions)

    def install(self, crd: Mapping[str, Any]) -> None:
        """Install (or replace) one CustomResourceDefinition document."""
        try:
            spec = crd["spec"]
            group = spec["group"]
            kind = spec["names"]["kind"]
            versions = spec["versions"]
        except (KeyError, TypeError):
            raise CRDError(
                "not a CustomResourceDefinition: spec.group, spec.names.kind "
                "and spec.versions are required"
            ) from None
        name = str((crd.get("metadata") or {}).get("name") or f"{kind}.{group}")
        compiled: dict[tuple[str, str], _Version] = {}
        for version in versions:
            if not version.get("served", True):
                continue
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if not isinstance(schema, Mapping):
                raise CRDError(f"{name}: version {version.get('name')} has no openAPIV3Schema")
            where = f"{kind}/{version['name']}"
            compiled[(f"{group}/{version['name']}", kind)] = _Version(
                kind, compile_schema(schema, where)
            )
        old = self.crds.get(name)
        if old is not None:  # replacing: drop what the old one served
            for key in [k for k, v in self._versions.items() if v.kind == kind]:
                del self._versions[key]
        self._versions.update(compiled)
        self.crds[name] = crd

    def serves(self, api_version: str, kind: str) -> bool:
        return (api_version, kind) in self._versions

    def kinds(self) -> frozenset[tuple[str, str]]:
        return frozenset(self._versions)

    def validate(self, doc: Mapping[str, Any]) -> list[FieldProblem]:
        """Every problem the API server would report for `doc` (empty: valid), with
        unknown fields last. `doc` must be of a kind these CRDs serve."""
        version = self._versions[(str(doc.get("apiVersion")), str(doc.get("kind")))]
        walk = Walk()
        root = version.root
        # Defaults are applied while validating, as the API server does: on a copy.
        body = copy.deepcopy({k: v for k, v in doc.items() if k not in ("metadata", "status")})
        for key, value in body.items():
            if key in ("apiVersion", "kind"):
                continue
            sub = root.properties.get(key)
            if sub is None:
                walk.unknown.append(key)
                continue
            walk.value(value, sub, key)
        walk.run_rules()
        meta = doc.get("metadata")
        if isinstance(meta, Mapping):
            walk.unknown.extend(f"metadata.{k}" for k in meta if k not in META_FIELDS)
        return [
            *walk.problems,
            *(FieldProblem("", f'unknown field "{path}"') for path in walk.unknown),
        ]


def load_crds(docs: Sequence[Mapping[str, Any]], into: CRDSchemas | None = None) -> CRDSchemas:
    """Install every CustomResourceDefinition among `docs` (others are ignored)."""
    schemas = into if into is not None else CRDSchemas()
    for doc in docs:
        if isinstance(doc, Mapping) and doc.get("kind") == "CustomResourceDefinition":
            schemas.install(doc)
    return schemas
