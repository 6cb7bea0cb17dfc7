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
