"""YAML output without anchors and aliases.

The core shares equal parts of its results (one status object for the thousands of
routes that have the same one: `gatewayapi/statusparts.py`, `state/conditions.py`);
PyYAML would print each repeat as an alias (`*id001`). Output spells every object out,
as `kubectl` does.
"""

from __future__ import annotations

from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def yaml_text(data: Any, **options: Any) -> str:
    """`yaml.safe_dump(data, **options)`, with every repeated object written out."""
    text: str = yaml.dump(data, Dumper=_Dumper, **options)
    return text
