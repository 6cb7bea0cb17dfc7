"""graphql-core error messages reworded as graphql-php 0.13 (FreePBX 16) words them.

graphql-php quotes names with double quotes, omits the final period of
syntax errors, and builds its "Did you mean" lists from PHP's levenshtein()
with other thresholds than graphql-core. Errors raised in resolvers read
"Internal server error" unless the resolver made their text client-safe.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLObjectType,
    GraphQLSchema,
)
from graphql.type.definition import GraphQLInterfaceType

from reconciler.sandbox.errors import ClientSafeError
from reconciler.sandbox.php import json_encode

INTERNAL_SERVER_ERROR = "Internal server error"
MAX_SUGGESTIONS = 5

QUOTED = re.compile(r"'([^']*)'")

Rewrite = Callable[["re.Match[str]", GraphQLSchema, dict[str, Any]], str]


def client_message(
    error: GraphQLError, schema: GraphQLSchema, variables: dict[str, Any]
) -> str:
    """Return the message graphql-php would show the client for this error."""
    original = error.original_error
    if isinstance(original, ClientSafeError):
        return str(original)
    if error.path is not None:
        return INTERNAL_SERVER_ERROR
    return php_wording(error.message, schema, variables)


def php_wording(message: str, schema: GraphQLSchema, variables: dict[str, Any]) -> str:
    """Reword one graphql-core validation, syntax or variable message."""
    for pattern, rewrite in REWRITES:
        match = pattern.fullmatch(message)
        if match is not None:
            return rewrite(match, schema, variables)
    return requote(message)


def requote(text: str) -> str:
    return QUOTED.sub(r'"\1"', text)


def suggestion_list(text: str, options: Sequence[str]) -> list[str]:
    """Rank options as graphql-php 0.13 does, by PHP levenshtein() under a threshold."""
    distances: list[tuple[int, str]] = []
    for option in options:
        distance = _distance(text, option)
        threshold = max(len(text) / 2, len(option) / 2, 1)
        if distance <= threshold:
            distances.append((distance, option))
    # PHP 8's asort() is stable: ties keep the schema's order.
    distances.sort(key=lambda pair: pair[0])
    return [option for _, option in distances]


def did_you_mean(suggestions: Sequence[str]) -> str:
    """Format graphql-php's " Did you mean ...?" suffix, empty without suggestions."""
    if not suggestions:
        return ""
    return f" Did you mean {quoted_or_list(suggestions)}?"


def quoted_or_list(items: Sequence[str]) -> str:
    quoted = [f'"{item}"' for item in items[:MAX_SUGGESTIONS]]
    if len(quoted) == 1:
        return quoted[0]
    if len(quoted) == 2:
        return f"{quoted[0]} or {quoted[1]}"
    return ", ".join(quoted[:-1]) + ", or " + quoted[-1]


def _distance(text: str, option: str) -> int:
    if text == option:
        return 0
    if text.lower() == option.lower():
        return 1
    return _levenshtein(text.encode(), option.encode())


def _levenshtein(left: bytes, right: bytes) -> int:
    # PHP's levenshtein() works on bytes with unit costs.
    previous = list(range(len(right) + 1))
    for i, left_byte in enumerate(left, 1):
        current = [i]
        for j, right_byte in enumerate(right, 1):
            substitution = previous[j - 1] + (left_byte != right_byte)
            current.append(min(previous[j] + 1, current[j - 1] + 1, substitution))
        previous = current
    return previous[-1]


def _field_names(schema: GraphQLSchema, type_name: str) -> list[str]:
    named = schema.get_type(type_name)
    if isinstance(
        named, GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType
    ):
        return list(named.fields)
    return []


def _input_field_type(schema: GraphQLSchema, type_name: str, field: str) -> str:
    named = schema.get_type(type_name)
    if isinstance(named, GraphQLInputObjectType) and field in named.fields:
        return str(named.fields[field].type)
    return "?"


def _cannot_query_field(
    match: re.Match[str], schema: GraphQLSchema, _: dict[str, Any]
) -> str:
    field, type_name = match["field"], match["type"]
    suggestions = suggestion_list(field, _field_names(schema, type_name))
    return f'Cannot query field "{field}" on type "{type_name}".' + did_you_mean(
        suggestions
    )


def _missing_input_field(
    match: re.Match[str], schema: GraphQLSchema, _: dict[str, Any]
) -> str:
    type_name, field = match["type"], match["field"]
    field_type = _input_field_type(schema, type_name, field)
    return f"Field {type_name}.{field} of required type {field_type} was not provided."


def _unknown_input_field(
    match: re.Match[str], schema: GraphQLSchema, _: dict[str, Any]
) -> str:
    type_name, field = match["type"], match["field"]
    suggestions = suggestion_list(field, _field_names(schema, type_name))
    suffix = f"; Did you mean {quoted_or_list(suggestions)}?" if suggestions else "."
    return f'Field "{field}" is not defined by type {type_name}{suffix}'


def _invalid_variable(
    match: re.Match[str], schema: GraphQLSchema, variables: dict[str, Any]
) -> str:
    name, detail = match["name"], match["detail"]
    not_provided = VARIABLE_NOT_PROVIDED.fullmatch(detail)
    if not_provided is not None:
        variable_type = not_provided["type"]
        return (
            f'Variable "${name}" of required type "{variable_type}" was not provided.'
        )
    value = json_encode(variables.get(name)).decode()
    # graphql-php names the variable's value "value" in paths: value.name.
    path = "value" + (match["path"] or "")
    return (
        f'Variable "${name}" got invalid value {value};'
        f" {_variable_detail(detail, path, schema)}"
    )


def _variable_detail(detail: str, path: str, schema: GraphQLSchema) -> str:
    at_path = "" if path == "value" else f" at {path}"
    missing = MISSING_INPUT_FIELD.fullmatch(detail)
    if missing is not None:
        field_type = _input_field_type(schema, missing["type"], missing["field"])
        field = f"{path}.{missing['field']}"
        return f"Field {field} of required type {field_type} was not provided."
    unknown = UNKNOWN_INPUT_FIELD.fullmatch(detail)
    if unknown is not None:
        return f'Field "{unknown["field"]}" is not defined by type {unknown["type"]}.'
    null = NULL_FOR_NON_NULL.fullmatch(detail)
    if null is not None:
        return f"Expected non-nullable type {null['type']} not to be null{at_path}."
    not_object = NOT_AN_OBJECT.fullmatch(detail)
    if not_object is not None:
        return f"Expected type {not_object['type']} to be an object{at_path}."
    scalar = BAD_SCALAR.fullmatch(detail)
    if scalar is not None:
        return f"Expected type {scalar['type']}{at_path}; {requote(detail)}"
    return requote(detail)


def _missing_argument(
    match: re.Match[str], _schema: GraphQLSchema, _: dict[str, Any]
) -> str:
    return (
        f'Field "{match["field"]}" argument "{match["argument"]}" of type'
        f' "{match["type"]}" is required but not provided.'
    )


def _unknown_argument(
    match: re.Match[str], schema: GraphQLSchema, _: dict[str, Any]
) -> str:
    argument, type_name, field = match["argument"], match["type"], match["field"]
    named = schema.get_type(type_name)
    names: list[str] = []
    if (
        isinstance(named, GraphQLObjectType | GraphQLInterfaceType)
        and field in named.fields
    ):
        names = list(named.fields[field].args)
    suggestions = suggestion_list(argument, names)
    return (
        f'Unknown argument "{argument}" on field "{field}" of type "{type_name}".'
        + did_you_mean(suggestions)
    )


def _bad_literal(
    match: re.Match[str], _schema: GraphQLSchema, _: dict[str, Any]
) -> str:
    return f"Expected type {match['type']}, found {match['value']}."


def _syntax_error(
    match: re.Match[str], _schema: GraphQLSchema, _: dict[str, Any]
) -> str:
    # graphql-php writes punctuators bare, names in double quotes and no period.
    detail = re.sub(r"'(.)'", r"\1", match["detail"])
    return "Syntax Error: " + requote(detail)


def _fixed(text: str) -> Rewrite:
    return lambda _match, _schema, _variables: text


MISSING_INPUT_FIELD = re.compile(
    r"Expected value of type '(?P<type>\w+)' to include required field"
    r" '(?P<field>\w+)', found: .*\.",
    re.DOTALL,
)
VARIABLE_NOT_PROVIDED = re.compile(
    r"Expected a value of non-null type '(?P<type>[^']+)' to be provided\."
)
NULL_FOR_NON_NULL = re.compile(
    r"Expected value of non-null type '(?P<type>[^']+)' not to be None\."
)
NOT_AN_OBJECT = re.compile(
    r"Expected value of type '(?P<type>\w+)' to be an object, found: .*", re.DOTALL
)
BAD_SCALAR = re.compile(
    r"(?P<type>String|Int|Float|Boolean|ID) cannot represent [^:]*: (?P<value>.*)",
    re.DOTALL,
)
UNKNOWN_INPUT_FIELD = re.compile(
    r"Expected value of type '(?P<type>\w+)' not to include unknown field"
    r" '(?P<field>\w+)'.*",
    re.DOTALL,
)

REWRITES: list[tuple[re.Pattern[str], Rewrite]] = [
    (re.compile(r"Syntax Error: (?P<detail>.*?)\.?", re.DOTALL), _syntax_error),
    (
        re.compile(
            r"Cannot query field '(?P<field>\w+)' on type '(?P<type>\w+)'\..*",
            re.DOTALL,
        ),
        _cannot_query_field,
    ),
    (MISSING_INPUT_FIELD, _missing_input_field),
    (UNKNOWN_INPUT_FIELD, _unknown_input_field),
    (
        re.compile(
            r"Variable '\$(?P<name>\w+)' has invalid value"
            r"(?: at (?P<path>\S+))?: (?P<detail>.*)",
            re.DOTALL,
        ),
        _invalid_variable,
    ),
    (
        re.compile(
            r"Argument '\w+\.(?P<field>\w+)\((?P<argument>\w+):\)' of type"
            r" '(?P<type>[^']+)' is required, but it was not provided\."
        ),
        _missing_argument,
    ),
    (
        re.compile(
            r"Unknown argument '(?P<argument>\w+)' on field"
            r" '(?P<type>\w+)\.(?P<field>\w+)'\..*",
            re.DOTALL,
        ),
        _unknown_argument,
    ),
    (BAD_SCALAR, _bad_literal),
    (
        re.compile(
            r"Value '(?P<value>[^']*)' does not exist in '(?P<type>\w+)' enum\..*",
            re.DOTALL,
        ),
        _bad_literal,
    ),
    (
        re.compile(
            r"Schema is not configured to execute mutation operation\."
            r"|The mutation operation is not supported by the schema\."
        ),
        _fixed("Schema is not configured for mutations."),
    ),
    (
        re.compile(
            r"Schema is not configured to execute subscription operation\."
            r"|The subscription operation is not supported by the schema\."
        ),
        _fixed("Schema is not configured for subscriptions."),
    ),
]
