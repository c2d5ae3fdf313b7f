"""CustomResourceDefinition files -> `CRDSchemas`, and the parse function that uses them.

CRDs come from `propylon run/validate --crds PATH` (repeatable) and from
`$PROPYLON_CRDS` (paths separated by the OS path separator); the repository ships none:
point them at the Gateway API release you install in a cluster."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from propylon.resources import Resource, parse_object
from propylon.resources.crd import CRDError, CRDSchemas
from propylon.sources.documents import DocumentError, load_documents
from propylon.sources.files import MANIFEST_SUFFIXES, ParseFn

ENV_VAR = "PROPYLON_CRDS"


class CRDLoadError(ValueError):
    """A CRD file could not be read or installed; names the file."""


def crd_paths_from_env(environ: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    value = (os.environ if environ is None else environ).get(ENV_VAR, "")
    return tuple(Path(p) for p in value.split(os.pathsep) if p)


def _files(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in MANIFEST_SUFFIXES))
        elif path.exists():
            out.append(path)
        else:
            raise CRDLoadError(f"{path}: no such file or directory")
    return out


def load_crd_files(paths: Sequence[Path], into: CRDSchemas | None = None) -> CRDSchemas:
    """Install every CustomResourceDefinition in the files under `paths`."""
    schemas = into if into is not None else CRDSchemas()
    for file in _files(paths):
        try:
            docs = load_documents(file.read_text(), json_file=file.suffix.lower() == ".json")
        except (OSError, UnicodeDecodeError, DocumentError) as exc:
            raise CRDLoadError(f"{file}: {exc}") from None
        for i, doc in enumerate(docs):
            if isinstance(doc, Mapping) and doc.get("kind") == "CustomResourceDefinition":
                try:
                    schemas.install(doc)
                except CRDError as exc:
                    raise CRDLoadError(f"{file} (document {i + 1}): {exc}") from None
    return schemas


def crd_parse(schemas: CRDSchemas) -> ParseFn:
    """`parse_object` that checks kinds `schemas` serve against their CRD."""

    def parse(doc: Mapping[str, Any]) -> Resource:
        return parse_object(doc, schemas)

    return parse
