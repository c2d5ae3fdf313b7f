"""Reading a manifest file into plain documents (YAML or JSON), Kubernetes-style.

- Timestamps stay strings (as they do in Kubernetes' YAML -> JSON conversion).
- A key defined twice in one mapping is an error, as strict field validation makes it.
- `.json` files are read with the JSON parser (PyYAML rejects tab indentation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

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


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in _Base.yaml_implicit_resolvers.items()
}


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


def load_documents(text: str, *, json_file: bool = False) -> list[Any]:
    """All documents of a file, in order (`None` for an empty YAML document)."""
    if json_file:
        try:
            return [json.loads(text)]
        except json.JSONDecodeError as exc:
            raise DocumentError(f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from None
    try:
        return list(yaml.load_all(text, Loader=_Loader))  # a safe loader
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
