"""Decide quickly whether a document is valid against the JSON Schema.

jsonschema walks the schema anew for each value and builds an object per
step, which costs about 0.6 s for 10,000 entries. Almost every file is
valid, so the schema is turned once into nested checks that only return true or
false. jsonschema runs only for a file they reject, to say what is wrong.

The checks cover the keywords the schema uses, with jsonschema's meaning
(true is not 1, an integer may be written 2.0, a pattern is searched, not
matched). A schema with any other keyword cannot be turned into checks, and
then jsonschema decides alone. A test checks that both give the same verdict.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

from reconciler.schema_file import load_inlined_schema

Check = Callable[[Any], bool]

# Keywords that describe a value without constraining it.
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "examples", "default"}
)


class Uncompilable(Exception):
    """The schema uses a keyword these checks do not implement."""


@cache
def schema_check() -> Check | None:
    """Return the check of the desired-state schema, or None if it cannot be built."""
    try:
        return compile_schema(load_inlined_schema())
    except Uncompilable:
        return None


def compile_schema(schema: Any) -> Check:
    """Return a function telling whether a value is valid against ``schema``.

    ``schema`` must have no ``$ref`` (inline it first). Raises Uncompilable
    for a keyword without a check here.
    """
    if schema is True:
        return _always
    if schema is False:
        return _never
    if not isinstance(schema, dict):
        raise Uncompilable(f"a schema must be an object or a boolean: {schema!r}")
    unknown = set(schema) - _ANNOTATIONS - _KEYWORDS
    if unknown:
        raise Uncompilable(f"keywords without a check: {sorted(unknown)}")
    checks = [
        build(schema[keyword], schema)
        for keyword, build in _BUILDERS.items()
        if keyword in schema
    ]
    if "properties" not in schema and (
        "required" in schema or "additionalProperties" in schema
    ):
        checks.append(_object({}, schema))
    return _all_of(checks)


def _all_of(checks: list[Check]) -> Check:
    if not checks:
        return _always
    # Chained closures: a generator per value cost more than the checks.
    combined = checks[0]
    for other in checks[1:]:
        combined = _both(combined, other)
    return combined


def _both(first: Check, second: Check) -> Check:
    return lambda value: first(value) and second(value)


def _either(first: Check, second: Check) -> Check:
    return lambda value: first(value) or second(value)


def _always(value: Any) -> bool:
    return True


def _never(value: Any) -> bool:
    return False


# --- one builder per keyword ------------------------------------------------------


def _type(names: Any, schema: dict[str, Any]) -> Check:
    type_names = [names] if isinstance(names, str) else list(names)
    if not type_names:
        raise Uncompilable("type names no type")
    tests = []
    for name in type_names:
        if name not in _TYPE_TESTS:
            raise Uncompilable(f"unknown type {name!r}")
        tests.append(_TYPE_TESTS[name])
    combined = tests[0]
    for other in tests[1:]:
        combined = _either(combined, other)
    return combined


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and value.is_integer()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_TYPE_TESTS: dict[str, Check] = {
    "string": lambda value: isinstance(value, str),
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda value: isinstance(value, bool),
    "null": lambda value: value is None,
    "array": lambda value: isinstance(value, list),
    "object": lambda value: isinstance(value, dict),
}


def _const(expected: Any, schema: dict[str, Any]) -> Check:
    return lambda value: json_equal(value, expected)


def _enum(options: Any, schema: dict[str, Any]) -> Check:
    if not isinstance(options, list):
        raise Uncompilable("enum must be a list")
    return lambda value: any(json_equal(value, option) for option in options)


def _minimum(bound: Any, schema: dict[str, Any]) -> Check:
    # Compared as jsonschema does, so NaN passes both bounds there and here.
    return lambda value: not (_is_number(value) and value < bound)


def _maximum(bound: Any, schema: dict[str, Any]) -> Check:
    return lambda value: not (_is_number(value) and value > bound)


def _min_length(bound: Any, schema: dict[str, Any]) -> Check:
    return lambda value: not isinstance(value, str) or len(value) >= bound


def _max_length(bound: Any, schema: dict[str, Any]) -> Check:
    return lambda value: not isinstance(value, str) or len(value) <= bound


def _pattern(pattern: Any, schema: dict[str, Any]) -> Check:
    search = re.compile(pattern).search
    return lambda value: not isinstance(value, str) or search(value) is not None


def _items(item_schema: Any, schema: dict[str, Any]) -> Check:
    item_check = compile_schema(item_schema)

    def check(value: Any) -> bool:
        return not isinstance(value, list) or all(map(item_check, value))

    return check


def _unique_items(unique: Any, schema: dict[str, Any]) -> Check:
    if not unique:
        return _always

    def check(value: Any) -> bool:
        if not isinstance(value, list):
            return True
        seen = set()
        for item in value:
            key = _scalar_key(item)
            if key is None:
                return _unique_by_pairs(value)
            if key in seen:
                return False
            seen.add(key)
        return True

    return check


def _scalar_key(value: Any) -> tuple[Any, ...] | None:
    """Return a key equal for JSON-equal scalars (1 and 1.0, not true and 1)."""
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    if value is None:
        return ("null",)
    return None


def _unique_by_pairs(items: list[Any]) -> bool:
    # Lists, mappings and dates compare pair by pair, as jsonschema compares
    # items it cannot sort.
    for index, item in enumerate(items):
        for other in items[index + 1 :]:
            if json_equal(item, other):
                return False
    return True


def _any_of(schemas: Any, schema: dict[str, Any]) -> Check:
    if not isinstance(schemas, list) or not schemas:
        raise Uncompilable("anyOf must be a non-empty list")
    checks = [compile_schema(subschema) for subschema in schemas]
    combined = checks[0]
    for other in checks[1:]:
        combined = _either(combined, other)
    return combined


def _object(properties: Any, schema: dict[str, Any]) -> Check:
    """Check properties, required and additionalProperties in one pass."""
    property_checks = {
        name: compile_schema(subschema)
        for name, subschema in (properties or {}).items()
    }
    required = list(schema.get("required", []))
    additional = schema.get("additionalProperties", True)
    extra_check = None if additional is True else compile_schema(additional)

    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        for name in required:
            if name not in value:
                return False
        for name, item in value.items():
            item_check = property_checks.get(name, extra_check)
            if item_check is not None and not item_check(item):
                return False
        return True

    return check


# "properties" builds the whole object check, "required" and
# "additionalProperties" included; compile_schema builds it without.
_BUILDERS: dict[str, Callable[[Any, dict[str, Any]], Check]] = {
    "type": _type,
    "const": _const,
    "enum": _enum,
    "minimum": _minimum,
    "maximum": _maximum,
    "minLength": _min_length,
    "maxLength": _max_length,
    "pattern": _pattern,
    "items": _items,
    "uniqueItems": _unique_items,
    "anyOf": _any_of,
    "properties": _object,
}
_KEYWORDS = frozenset({*_BUILDERS, "required", "additionalProperties"})


def json_equal(left: Any, right: Any) -> bool:
    """Compare right values as JSON does: true is not 1, but 1 is 1.0."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(
            json_equal(left[key], right[key]) for key in left
        )
    if isinstance(left, list | dict) or isinstance(right, list | dict):
        return False
    return bool(left == right)
