"""Reading a manifest file into plain documents (YAML or JSON), Kubernetes-style.

- Timestamps stay strings (as they do in Kubernetes' YAML -> JSON conversion).
- A key defined twice in one mapping is an error, as strict field validation makes it.
- `.json` files are read with the JSON parser (PyYAML rejects tab indentation); a key
  defined twice is an error there too.
- Bounded: a file of at most `MAX_FILE_BYTES`, documents nested at most `MAX_DEPTH`
  deep, and aliases that expand a document to at most `MAX_ALIAS_EXPANSION` nodes (a
  few hundred bytes of YAML aliases can otherwise stand for billions of nodes, which
  every later stage would walk).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from sys import intern
from typing import Any

import yaml

from propylon.sources.fast_yaml import read_document, resolvable_strings

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 100  # Gateway API objects nest about 12 deep
MAX_ALIAS_EXPANSION = 100_000

_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[valid-type,misc]
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen and key != "<<":
                raise yaml.constructor.ConstructorError(
                    f"first defined at line {seen[key].start_mark.line + 1}",
                    node.start_mark,
                    f"mapping key {key!r} is defined twice",
                    key_node.start_mark,
                )
            seen[key] = key_node
        result: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return result

    def construct_document(self, node: yaml.Node) -> Any:
        # PyYAML's constructor (Python even with the C parser) is most of the time it
        # takes to read a manifest; plain trees of maps, lists and scalars are built
        # here directly, anything else (aliases, merge keys, other tags) the usual way.
        try:
            return _plain(self, node, set(), 0)
        except _NotPlain:
            pass
        try:
            data = super().construct_document(node)
        except RecursionError:
            raise _TooDeep from None
        _check_expansion(data)
        return data


class _NotPlain(Exception):
    pass


class _TooDeep(Exception):
    pass


_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_SCALARS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("int", "float", "bool", "null"))


def _plain(loader: _Loader, node: yaml.Node, seen: set[int], depth: int) -> Any:
    if id(node) in seen:  # an alias: the same node twice (maybe recursive)
        raise _NotPlain
    if depth > MAX_DEPTH:
        raise _TooDeep
    seen.add(id(node))
    tag = node.tag
    if isinstance(node, yaml.ScalarNode):
        if tag == _STR:
            return node.value
        if tag in _SCALARS:
            return loader.yaml_constructors[tag](loader, node)
        raise _NotPlain
    if isinstance(node, yaml.MappingNode) and tag == _MAP:
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _KEY_TAGS:
                raise _NotPlain  # merge keys ("<<"), complex keys
            key = _plain(loader, key_node, seen, depth + 1)
            if key in out:
                first = next(k for k, _ in node.value if _plain(loader, k, set(), 0) == key)
                raise yaml.constructor.ConstructorError(
                    f"first defined at line {first.start_mark.line + 1}",
                    node.start_mark,
                    f"mapping key {key!r} is defined twice",
                    key_node.start_mark,
                )
            out[key] = _plain(loader, value_node, seen, depth + 1)
        return out
    if isinstance(node, yaml.SequenceNode) and tag == _SEQ:
        return [_plain(loader, child, seen, depth + 1) for child in node.value]
    raise _NotPlain


_KEY_TAGS = _SCALARS | {_STR}


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in _Base.yaml_implicit_resolvers.items()
}
_RESOLVABLE = resolvable_strings(_Loader.yaml_implicit_resolvers)


@dataclass(frozen=True, slots=True)
class DocumentError(Exception):
    """The file as a whole could not be read; `line`/`column` are 1-based when known."""

    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"line {self.line}, column {self.column}: {self.message}"
        return self.message


def _check_expansion(data: Any) -> None:
    """Refuse a tree that aliases make too big or too deep once expanded (each shared
    node counted as often as it is reached, in time proportional to distinct nodes)."""
    sizes: dict[int, tuple[int, int]] = {}  # id -> (expanded nodes, depth)

    def measure(value: Any, level: int) -> tuple[int, int]:
        if level > MAX_DEPTH:
            raise _TooDeep
        if not isinstance(value, dict | list):
            return 1, 0
        known = sizes.get(id(value))
        if known is not None:
            if known == _IN_PROGRESS:  # an alias inside its own anchor: endless
                raise _TooDeep
            return known
        sizes[id(value)] = _IN_PROGRESS
        children = value.values() if isinstance(value, dict) else value
        total, deepest = 1, 0
        for child in children:
            n, d = measure(child, level + 1)
            total += n
            deepest = max(deepest, d + 1)
            if total > MAX_ALIAS_EXPANSION:
                raise _TooBig
        sizes[id(value)] = (total, deepest)
        return total, deepest

    measure(data, 0)


class _TooBig(Exception):
    pass


_IN_PROGRESS = (-1, -1)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DocumentError(f"invalid JSON: object key {key!r} is defined twice")
        out[key] = value
    return out


def _json_depth_ok(data: Any) -> bool:
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return False
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return True


_TOO_DEEP = f"nested more than {MAX_DEPTH} levels deep"

# Strings up to this long are interned (names, namespaces, kinds, API versions, ports'
# names, addresses: a Kubernetes name is at most 253 characters); longer ones (PEM data,
# scripts) are rarely repeated.
_INTERN_MAX = 253


def intern_strings(doc: Any) -> Any:
    """`doc` with its short string values interned, in place: a document's strings are
    new objects, and the typed models keep them as they are, so thousands of objects
    held thousands of copies of "default", "v1" or their Gateway's name (at 5000 routes,
    105 000 strings of which 20 000 distinct: 4.8 of 5.9 MiB were copies). Keys are
    left alone (the models' attributes are their own names). Recursive: the readers
    bound a document's depth (`MAX_DEPTH`) and refuse self-containing ones."""
    if type(doc) is dict:
        for key, value in doc.items():
            kind = type(value)
            if kind is str:
                if len(value) <= _INTERN_MAX:
                    doc[key] = intern(value)  # a value replaced: the size is unchanged
            elif kind is dict or kind is list:
                intern_strings(value)
    elif type(doc) is list:
        for i, value in enumerate(doc):
            kind = type(value)
            if kind is str:
                if len(value) <= _INTERN_MAX:
                    doc[i] = intern(value)
            elif kind is dict or kind is list:
                intern_strings(value)
    return doc


def load_documents(text: str, *, json_file: bool = False) -> list[Any]:
    """All documents of a file, in order (`None` for an empty YAML document)."""
    if len(text) > MAX_FILE_BYTES:
        raise DocumentError(f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    if json_file:
        try:
            data = json.loads(text, object_pairs_hook=_no_duplicates)
        except json.JSONDecodeError as exc:
            raise DocumentError(f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from None
        except RecursionError:
            raise DocumentError(f"invalid JSON: {_TOO_DEEP}") from None
        if not _json_depth_ok(data):
            raise DocumentError(f"invalid JSON: {_TOO_DEEP}")
        return [intern_strings(data)]
    fast = read_document(text, _RESOLVABLE)
    if fast is not None:
        return [intern_strings(fast)]
    try:
        # A safe loader.
        return [intern_strings(doc) for doc in yaml.load_all(text, Loader=_Loader)]
    except _TooDeep:
        raise DocumentError(f"invalid YAML: {_TOO_DEEP}") from None
    except _TooBig:
        raise DocumentError(
            f"invalid YAML: aliases expand a document to more than {MAX_ALIAS_EXPANSION} nodes"
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            problem = f"{exc.problem} ({exc.context})"
        if mark is None:
            raise DocumentError(f"invalid YAML: {problem}") from None
        raise DocumentError(f"invalid YAML: {problem}", mark.line + 1, mark.column + 1) from None
    except yaml.YAMLError as exc:
        raise DocumentError(f"invalid YAML: {exc}") from None
