"""`propylon get` and `propylon describe`: read objects from the running instance."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TextIO

from propylon.cli.describe import describe
from propylon.cli.kinds import KindInfo, resolve_kind
from propylon.cli.printers import table
from propylon.cli.yamltext import yaml_text
from propylon.clock import utc_now
from propylon.state import ApiClient, StateDir, default_state_dir

DEFAULT_NAMESPACE = "default"


class ObjectSource(Protocol):
    def list_objects(
        self, kind: str | None = None, *, namespace: str | None = None, name: str | None = None
    ) -> list[dict[str, Any]]: ...


def add_get_parsers(subparsers: Any, common: argparse.ArgumentParser) -> None:
    get = subparsers.add_parser(
        "get",
        parents=[common],
        help="list objects of a kind, as kubectl get does",
        description="Show objects with their status, from the running propylon.",
    )
    get.add_argument("kind", metavar="KIND", help="gateways, gtw, httproutes, svc, gc, ...")
    get.add_argument("names", metavar="NAME", nargs="*")
    _namespace_args(get)
    get.add_argument("-o", "--output", choices=("wide", "yaml", "json", "name"))
    get.set_defaults(func=cmd_get)

    desc = subparsers.add_parser(
        "describe",
        parents=[common],
        help="show one object in detail, with its conditions",
        description="Show objects in detail, as kubectl describe does.",
    )
    desc.add_argument("kind", metavar="KIND")
    desc.add_argument("names", metavar="NAME", nargs="*")
    _namespace_args(desc)
    desc.set_defaults(func=cmd_describe)


def _namespace_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-n", "--namespace", default=None)
    group.add_argument("-A", "--all-namespaces", action="store_true")


def client_for(args: argparse.Namespace) -> ApiClient:
    state = StateDir(args.state_dir or default_state_dir())
    return ApiClient(state.socket_path)


def _fetch(
    source: ObjectSource, info: KindInfo, names: Sequence[str], namespace: str | None
) -> tuple[list[dict[str, Any]], list[str]]:
    """Objects of `info` (all, or the named ones in order) and the names not found."""
    ns = namespace if info.namespaced else None
    items = source.list_objects(info.kind, namespace=ns)
    if not names:
        return items, []
    by_name = {str((i.get("metadata") or {}).get("name")): i for i in items}
    found = [by_name[n] for n in names if n in by_name]
    return found, [n for n in names if n not in by_name]


def _not_found(info: KindInfo, name: str, err: TextIO) -> None:
    print(f'Error from server (NotFound): {info.resource} "{name}" not found', file=err)


def _split_kind_name(args: argparse.Namespace) -> None:
    """`get gateway/foo` is `get gateway foo`, as with kubectl."""
    if "/" in args.kind:
        kind, _, name = args.kind.partition("/")
        args.kind = kind
        args.names = [name, *args.names]


def _namespace(args: argparse.Namespace) -> str | None:
    if getattr(args, "all_namespaces", False):
        return None
    return args.namespace or DEFAULT_NAMESPACE


def run_get(
    args: argparse.Namespace,
    source: ObjectSource,
    *,
    now: datetime | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    _split_kind_name(args)
    if "," in args.kind:
        return _get_many(args, source, now=now, out=out, err=err)
    info = resolve_kind(args.kind)
    namespace = _namespace(args)
    items, missing = _fetch(source, info, args.names, namespace)
    for name in missing:
        _not_found(info, name, err)
    output = args.output
    if output in ("json", "yaml"):
        if items or not args.names:
            single = len(args.names) == 1 and len(items) == 1
            data: Mapping[str, Any] = items[0] if single else _list(items)
            if output == "json":
                out.write(json.dumps(data, indent=4, sort_keys=True) + "\n")
            else:
                out.write(yaml_text(data, default_flow_style=False, sort_keys=True))
    elif output == "name":
        for item in items:
            out.write(f"{info.name_prefix}/{(item.get('metadata') or {}).get('name')}\n")
    elif items:
        out.write(
            table(
                info.kind,
                items,
                now=now or utc_now(),
                wide=output == "wide",
                with_namespace=namespace is None and info.namespaced,
            )
        )
    elif not args.names:
        if namespace is None or not info.namespaced:
            print("No resources found", file=err)
        else:
            print(f"No resources found in {namespace} namespace.", file=err)
    return 1 if missing else 0


def _get_many(
    args: argparse.Namespace,
    source: ObjectSource,
    *,
    now: datetime | None,
    out: TextIO,
    err: TextIO,
) -> int:
    """`get httproutes,grpcroutes`: one table per kind, names prefixed with the type,
    separated by a blank line; json/yaml: one List of everything."""
    infos = [resolve_kind(k) for k in args.kind.split(",") if k]
    namespace = _namespace(args)
    everything: list[dict[str, Any]] = []
    tables: list[str] = []
    for info in infos:
        items, _ = _fetch(source, info, [], namespace)
        everything.extend(items)
        if args.output == "name":
            tables.extend(f"{info.name_prefix}/{i['metadata']['name']}\n" for i in items)
        elif args.output not in ("json", "yaml") and items:
            prefixed = [
                {
                    **i,
                    "metadata": {
                        **i["metadata"],
                        "name": f"{info.name_prefix}/{i['metadata']['name']}",
                    },
                }
                for i in items
            ]
            tables.append(
                table(
                    info.kind,
                    prefixed,
                    now=now or utc_now(),
                    wide=args.output == "wide",
                    with_namespace=namespace is None and info.namespaced,
                )
            )
    if args.output == "json":
        out.write(json.dumps(_list(everything), indent=4, sort_keys=True) + "\n")
    elif args.output == "yaml":
        out.write(yaml_text(_list(everything), default_flow_style=False, sort_keys=True))
    elif args.output == "name":
        out.write("".join(tables))
    elif tables:
        out.write("\n".join(tables))
    else:
        print("No resources found", file=err)
    return 0


def _list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}


def run_describe(
    args: argparse.Namespace,
    source: ObjectSource,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    _split_kind_name(args)
    info = resolve_kind(args.kind)
    namespace = _namespace(args)
    items, missing = _fetch(source, info, args.names, namespace)
    for name in missing:
        _not_found(info, name, err)
    out.write("\n\n".join(describe(item).rstrip("\n") for item in items) + ("\n" if items else ""))
    if not items and not args.names:
        where = f" in {namespace} namespace" if namespace and info.namespaced else ""
        print(f"No resources found{where}.", file=err)
    return 1 if missing else 0


def cmd_get(args: argparse.Namespace) -> int:
    return run_get(args, client_for(args))


def cmd_describe(args: argparse.Namespace) -> int:
    return run_describe(args, client_for(args))
