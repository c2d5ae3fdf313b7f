"""`propylon validate` and `propylon translate`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

from propylon.cli.helmvalues import ValuesError
from propylon.cli.run import (
    add_file_args,
    add_values_args,
    check_crds,
    crd_paths_from_args,
    values_from_args,
)
from propylon.cli.yamltext import yaml_text
from propylon.resources.meta import ObjectKey
from propylon.sources.files import load_paths
from propylon.state import diagnostic_to_json, to_document
from propylon.store import ChangeSet, key_to_str

if TYPE_CHECKING:  # the runtime is imported lazily: it is slow to import
    from propylon.runtime.pipeline import Evaluation


def add_validate_parsers(subparsers: Any) -> None:
    validate = subparsers.add_parser(
        "validate",
        help="check manifests: syntax, schema, and Gateway API semantics",
        description="Read manifests as `propylon run` would and report every problem "
        "(file, object, field). Exit status 1 if there is any error.",
    )
    add_file_args(validate)
    add_values_args(validate)
    validate.set_defaults(func=cmd_validate)

    translate = subparsers.add_parser(
        "translate",
        help="print the statuses and the Envoy xDS resources manifests turn into",
        description="Run the whole translation (files -> Gateway API -> xDS) without "
        "starting anything, and print statuses and xDS resources.",
    )
    add_file_args(translate)
    add_values_args(translate)
    translate.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
    translate.set_defaults(func=cmd_translate)


def evaluate_files(args: argparse.Namespace, err: TextIO) -> tuple[ChangeSet, Evaluation] | int:
    """Read the files and evaluate them once; an exit code if the values are bad."""
    try:
        values = values_from_args(args)
        crds = crd_paths_from_args(args)
        check_crds(crds)
    except ValuesError as exc:
        print(f"error: {exc}", file=err)
        return 2
    from propylon.runtime.pipeline import evaluate_once

    changeset = load_paths(args.paths, crds=crds)
    return changeset, evaluate_once(changeset, values)


def cmd_validate(
    args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    evaluated = evaluate_files(args, err)
    if isinstance(evaluated, int):
        return evaluated
    _, evaluation = evaluated
    for diagnostic in evaluation.diagnostics:
        out.write(f"{diagnostic.severity}: {diagnostic}\n")
    errors = sum(1 for d in evaluation.diagnostics if d.is_error)
    warnings = len(evaluation.diagnostics) - errors
    count = len(evaluation.snapshot)
    print(
        f"{count} object{'s' if count != 1 else ''}, {errors} error{'s' if errors != 1 else ''}, "
        f"{warnings} warning{'s' if warnings != 1 else ''}",
        file=err,
    )
    return 1 if errors else 0


def cmd_translate(
    args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    evaluated = evaluate_files(args, err)
    if isinstance(evaluated, int):
        return evaluated
    changeset, evaluation = evaluated
    from propylon.envoy import to_dicts

    for diagnostic in evaluation.diagnostics:
        print(f"{diagnostic.severity}: {diagnostic}", file=err)
    build = evaluation.result
    statuses: dict[ObjectKey, Any] = dict(build.statuses)
    document = {
        "statuses": {key_to_str(k): statuses[k] for k in sorted(statuses)},
        "addresses": {key_to_str(k): v for k, v in sorted(build.addresses.items())},
        "services": [to_document(s) for s in build.services],
        "xds": to_dicts(evaluation.resources),
        "diagnostics": [diagnostic_to_json(d) for d in evaluation.diagnostics],
    }
    if args.output == "json":
        out.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
    else:
        out.write(yaml_text(document, default_flow_style=False, sort_keys=True))
    return 1 if changeset.errors else 0
