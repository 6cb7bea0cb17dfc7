"""Loose coercion of variable values, as graphql-php 0.13 (FreePBX 16) does it.

graphql-php before 14.0 turned a variable's true into "1", 5 into "5" for a
String, and "5" or true into an Int; graphql-core rejects these. The sandbox
converts such values before graphql-core coerces them, so a FreePBX 16 client
that sends loose values gets the same result. Booleans were strict in both.
"""

from __future__ import annotations

import math
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
)
from graphql.utilities import get_operation_ast, type_from_ast

from reconciler.sandbox.php import is_numeric, php_string

INT_RANGE = (-(2**31), 2**31 - 1)


def loosen_variables(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: dict[str, Any],
) -> dict[str, Any]:
    """Return the variables with loose scalar values converted as graphql-php 0.13."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return variables
    loosened = dict(variables)
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        variable_type = type_from_ast(schema, definition.type)
        if name in loosened and variable_type is not None:
            loosened[name] = _loosen(loosened[name], variable_type)  # type: ignore[arg-type]
    return loosened


def _loosen(value: Any, value_type: GraphQLInputType) -> Any:
    if isinstance(value_type, GraphQLNonNull):
        return _loosen(value, value_type.of_type)
    if value is None:
        return None
    if isinstance(value_type, GraphQLList):
        if isinstance(value, list):
            return [_loosen(item, value_type.of_type) for item in value]
        return _loosen(value, value_type.of_type)
    if isinstance(value_type, GraphQLInputObjectType) and isinstance(value, dict):
        fields = value_type.fields
        return {
            key: _loosen(item, fields[key].type) if key in fields else item
            for key, item in value.items()
        }
    if isinstance(value_type, GraphQLScalarType):
        return _loosen_scalar(value, value_type.name)
    return value


def _loosen_scalar(value: Any, type_name: str) -> Any:
    if type_name == "String" and isinstance(value, bool | int | float):
        return php_string(value)
    if type_name == "Int":
        return _loose_int(value)
    if type_name == "Float" and isinstance(value, bool):
        return float(value)
    if type_name == "Float" and isinstance(value, str) and is_numeric(value):
        return float(value)
    return value


def _loose_int(value: Any) -> Any:
    number: float
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        number = value
    elif isinstance(value, str) and is_numeric(value):
        number = float(value)
    else:
        return value
    low, high = INT_RANGE
    if math.isfinite(number) and number.is_integer() and low <= number <= high:
        return int(number)
    # Out of range or fractional: graphql-core rejects it, as graphql-php does.
    return value
