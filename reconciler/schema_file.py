"""Locate and load the JSON Schema of the desired-state file."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

SCHEMA_NAME = "extensions.schema.json"


@cache
def load_schema() -> dict[str, Any]:
    """Return the JSON Schema, from the installed package or the source tree."""
    packaged = resources.files("reconciler").joinpath(SCHEMA_NAME)
    if packaged.is_file():
        text = packaged.read_text(encoding="utf-8")
    else:
        # An editable install or a source checkout: the schema lives at the top level.
        source_tree = Path(__file__).resolve().parent.parent / "schema" / SCHEMA_NAME
        text = source_tree.read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def load_inlined_schema() -> dict[str, Any]:
    """Return the schema with every local ``$ref`` replaced by its target.

    The file keeps its references for readers and editors; jsonschema validates
    the inlined form about three times faster, which matters at 10,000 entries.
    """
    schema = load_schema()
    return {
        key: _inline(value, schema) for key, value in schema.items() if key != "$defs"
    }


def _inline(node: Any, root: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        reference = node.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/"):
            target: Any = root
            for part in reference[2:].split("/"):
                target = target[part]
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            return _inline({**target, **siblings}, root)
        return {key: _inline(value, root) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, root) for item in node]
    return node
