"""The GraphQL endpoint: bearer check, request body, execution, FreePBX's reply.

Steps follow a FreePBX 16 request: the OAuth middleware checks the token
before routing, so a GET with a bad token gets 401 and only a GET with a good
token gets 405. graphql-php then reads the body (JSON or application/graphql),
and the schema is built for the token's scopes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from graphql import (
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    execute,
    parse,
    validate,
)
from graphql.language import DocumentNode, FieldNode
from graphql.utilities import get_operation_ast
from graphql.validation import KnownOperationTypesRule, specified_rules

from reconciler.sandbox.coercion import loosen_variables
from reconciler.sandbox.exchange import HttpRequest, HttpResponse
from reconciler.sandbox.messages import client_message
from reconciler.sandbox.pbx import Pbx
from reconciler.sandbox.responses import (
    ClientError,
    GraphqlOutcome,
    access_denied_response,
    batch_response,
    graphql_response,
)
from reconciler.sandbox.schema import patch_builtin_introspection, schema_for_scopes
from reconciler.sandbox.tokens import AccessDenied, authenticate

logger = logging.getLogger(__name__)

BATCH_NOT_SUPPORTED = "Batched queries are not supported by this server"
QUERY_MISSING = (
    "GraphQL Request must include at least one of those two parameters:"
    ' "query" or "queryId"'
)

# graphql-php 0.13 (FreePBX 16) has no rule for an operation type the schema
# lacks, so such a document first fails any other rule, and otherwise at
# execution. Measured: a mutation sent with a rest-only token reports its
# unknown input type.
VALIDATION_RULES = tuple(
    rule for rule in specified_rules if rule is not KnownOperationTypesRule
)

METHOD_NOT_ALLOWED_PAGE = """<html>
    <head>
        <title>Method not allowed</title>
        <style>
            body{
                margin:0;
                padding:30px;
                font:12px/1.5 Helvetica,Arial,Verdana,sans-serif;
            }
            h1{
                margin:0;
                font-size:48px;
                font-weight:normal;
                line-height:48px;
            }
        </style>
    </head>
    <body>
        <h1>Method not allowed</h1>
        <p>Method not allowed. Must be one of: <strong>POST</strong></p>
    </body>
</html>"""


class RequestError(Exception):
    """A request that graphql-php rejects before running it, with the message shown."""


@dataclass(frozen=True)
class OperationRequest:
    """The query, variables and operation name of one GraphQL request."""

    query: str
    variables: dict[str, Any]
    operation_name: str | None


def handle_graphql_request(request: HttpRequest, pbx: Pbx) -> HttpResponse:
    """Handle a request to /admin/api/api/gql."""
    operation = first_root_field(request)
    try:
        claims = authenticate(
            request.header("Authorization"), pbx.store, pbx.signing_key, pbx.clock()
        )
    except AccessDenied as denied:
        logger.info("rejected GraphQL request: %s", denied)
        return access_denied_response(str(denied), pbx.version, operation)
    if request.method != "POST":
        return _method_not_allowed(operation)

    try:
        body = _request_body(request)
        if isinstance(body, list) and body:
            return batch_response([_batch_refusal() for _ in body], pbx.version)
        operation_request = _operation_request(body)
    except RequestError as error:
        # NOTE: FreePBX's response to a body graphql-php cannot read (no
        # Content-Type, invalid JSON) was not measured.
        outcome = GraphqlOutcome([ClientError(str(error))], None)
        return graphql_response(outcome, pbx.version, operation)

    schema = schema_for_scopes(claims.scopes)
    outcome = run_operation(operation_request, schema, pbx)
    return graphql_response(outcome, pbx.version, operation)


def run_operation(
    request: OperationRequest, schema: GraphQLSchema, pbx: Pbx
) -> GraphqlOutcome:
    """Parse, validate and execute one operation, wording errors as graphql-php."""
    try:
        document = parse(request.query)
    except GraphQLError as error:
        return _failed(schema, request, [error])
    errors = validate(schema, document, VALIDATION_RULES)
    if errors:
        return _failed(schema, request, errors)
    result = _execute(request, document, schema, pbx)
    if result.data is not None:
        keys = introspection_keys(document, request.operation_name)
        patch_builtin_introspection(result.data, keys)
    return _outcome(schema, request, result)


def _execute(
    request: OperationRequest, document: DocumentNode, schema: GraphQLSchema, pbx: Pbx
) -> ExecutionResult:
    variables = request.variables
    if pbx.version < 17:
        variables = loosen_variables(
            schema, document, request.operation_name, variables
        )
    result = execute(
        schema,
        document,
        context_value=pbx,
        variable_values=variables,
        operation_name=request.operation_name,
    )
    assert isinstance(result, ExecutionResult)
    return result


def _outcome(
    schema: GraphQLSchema, request: OperationRequest, result: ExecutionResult
) -> GraphqlOutcome:
    for error in result.errors or []:
        if error.path is not None:
            logger.debug("resolver error at %s: %s", error.path, error.message)
    errors = [_client_error(schema, request, error) for error in result.errors or []]
    return GraphqlOutcome(errors, result.data)


def _failed(
    schema: GraphQLSchema, request: OperationRequest, errors: list[GraphQLError]
) -> GraphqlOutcome:
    return GraphqlOutcome(
        [_client_error(schema, request, error) for error in errors], None
    )


def _client_error(
    schema: GraphQLSchema, request: OperationRequest, error: GraphQLError
) -> ClientError:
    locations = [
        {"line": location.line, "column": location.column}
        for location in error.locations or []
    ]
    return ClientError(
        client_message(error, schema, request.variables), locations, error.path
    )


def _batch_refusal() -> GraphqlOutcome:
    return GraphqlOutcome([ClientError(BATCH_NOT_SUPPORTED)], None)


def _method_not_allowed(operation: str | None) -> HttpResponse:
    headers = (
        ("Cache-Control", "no-store, no-cache, must-revalidate"),
        ("Pragma", "no-cache"),
        ("Content-type", "text/html;charset=UTF-8"),
    )
    return HttpResponse(405, headers, METHOD_NOT_ALLOWED_PAGE.encode(), operation)


def _request_body(request: HttpRequest) -> Any:
    content_type = request.header("Content-Type")
    if content_type is None:
        raise RequestError('Missing "Content-Type" header')
    text = request.body.decode("utf-8", errors="replace")
    if "application/graphql" in content_type.lower():
        return {"query": text}
    if "application/json" in content_type.lower():
        return _json_body(text)
    if "application/x-www-form-urlencoded" in content_type.lower():
        return dict(parse_qsl(text, keep_blank_values=True))
    raise RequestError(f"Unexpected content type: {json.dumps(content_type)}")


def _json_body(text: str) -> Any:
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if not isinstance(body, dict | list):
        raise RequestError(
            'PSR-7 request is expected to provide parsed body for "application/json"'
            " requests but got null"
        )
    return body


def _operation_request(body: Any) -> OperationRequest:
    # graphql-php reads the parameter names case-insensitively.
    parameters = {str(key).lower(): value for key, value in dict(body or {}).items()}
    query = parameters.get("query")
    if query is None or query == "":
        raise RequestError(QUERY_MISSING)
    if not isinstance(query, str):
        raise RequestError(f'"query" must be string, but got {json.dumps(query)}')
    variables = parameters.get("variables")
    if isinstance(variables, str):
        variables = _decoded_variables(variables)
    if variables is not None and not isinstance(variables, dict):
        raise RequestError(
            '"variables" must be array or JSON-encoded string, but got'
            f" {json.dumps(variables)}"
        )
    operation_name = parameters.get("operationname")
    return OperationRequest(
        query,
        variables or {},
        operation_name if isinstance(operation_name, str) else None,
    )


def _decoded_variables(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def first_root_field(request: HttpRequest) -> str | None:
    """Name the first root field of the request's operation, for request records."""
    try:
        body = (
            json.loads(request.body) if request.body.startswith((b"{", b"[")) else None
        )
    except ValueError:
        return None
    query = body.get("query") if isinstance(body, dict) else None
    if query is None and "graphql" in (request.header("Content-Type") or ""):
        query = request.body.decode("utf-8", errors="replace")
    if not isinstance(query, str):
        return None
    try:
        document = parse(query)
    except GraphQLError:
        return None
    wanted = body.get("operationName") if isinstance(body, dict) else None
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and (
            wanted is None or (definition.name and definition.name.value == wanted)
        ):
            return _first_field_name(definition)
    return None


def introspection_keys(document: DocumentNode, operation_name: str | None) -> list[str]:
    """List the response keys of the operation's __schema and __type fields."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return []
    return [
        (selection.alias or selection.name).value
        for selection in operation.selection_set.selections
        if isinstance(selection, FieldNode)
        and selection.name.value in ("__schema", "__type")
    ]


def _first_field_name(definition: OperationDefinitionNode) -> str | None:
    for selection in definition.selection_set.selections:
        if isinstance(selection, FieldNode):
            return selection.name.value
    return None
