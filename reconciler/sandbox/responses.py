"""HTTP responses built from GraphQL results, as the FreePBX api module builds them.

FreePBX 16 keeps only the first error and responds with HTTP 400
{"errors":[{"message":...,"status":false}]}. Without errors, a first root
field whose selected `status` is false gets the same 400 wrapper, and
anything else passes through with HTTP 200. The FreePBX 17 snapshot loses the
400 for GraphQL errors and passes graphql-php's own error list through with
HTTP 200.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.sandbox.exchange import HttpResponse, json_response

NO_CACHE_HEADERS = (
    ("Cache-Control", "no-store, no-cache, must-revalidate"),
    ("Pragma", "no-cache"),
)
SUCCESS_HEADERS = (*NO_CACHE_HEADERS, ("Content-Type", "application/json"))
FAILURE_HEADERS = (
    *NO_CACHE_HEADERS,
    ("Content-Type", "application/json;charset=utf-8"),
)

ACCESS_DENIED = "The resource owner or authorization server denied the request."
OAUTH_EXCEPTION = "League\\OAuth2\\Server\\Exception\\OAuthServerException"


@dataclass(frozen=True)
class ClientError:
    """One GraphQL error as graphql-php formats it, message already worded."""

    message: str
    locations: list[dict[str, int]] | None = None
    path: list[str | int] | None = None


@dataclass(frozen=True)
class GraphqlOutcome:
    """The result of one GraphQL operation: its errors and data."""

    errors: list[ClientError]
    data: dict[str, Any] | None


def graphql_response(
    outcome: GraphqlOutcome, version: int, operation: str | None
) -> HttpResponse:
    """Build the HTTP response FreePBX sends for one operation's outcome."""
    if outcome.errors and version >= 17:
        return json_response(200, _raw_result(outcome), SUCCESS_HEADERS, operation)
    if outcome.errors:
        payload = _wrapper(outcome.errors[0].message)
        return json_response(400, payload, FAILURE_HEADERS, operation)
    failed = _failed_first_field(outcome.data)
    if failed is not None:
        headers = SUCCESS_HEADERS if version >= 17 else FAILURE_HEADERS
        return json_response(400, failed, headers, operation)
    return json_response(200, {"data": outcome.data}, SUCCESS_HEADERS, operation)


def batch_response(outcomes: list[GraphqlOutcome], version: int) -> HttpResponse:
    """Pass a batch's results through: the wrapper only looks at an object body."""
    # graphql-php 0.13 adds the error category, and 15 (FreePBX 17) dropped it.
    category = "request" if version < 17 else None
    payload = [_raw_result(outcome, category) for outcome in outcomes]
    return json_response(200, payload, SUCCESS_HEADERS)


def access_denied_response(
    hint: str, version: int, operation: str | None
) -> HttpResponse:
    """Build the response to a failed bearer token check.

    FreePBX 16's middleware responds 401 with the OAuth error. The 17 snapshot
    checks the token inside the route, where nothing catches the exception.
    NOTE: the 17 body is inferred as the Whoops JSON of that exception, which
    carries the message but not the hint.
    """
    if version >= 17:
        payload: dict[str, Any] = {
            "error": {"type": OAUTH_EXCEPTION, "message": ACCESS_DENIED, "code": 9}
        }
        return json_response(500, payload, SUCCESS_HEADERS, operation)
    payload = {"error": "access_denied", "message": ACCESS_DENIED, "hint": hint}
    headers = (*NO_CACHE_HEADERS, ("Content-type", "application/json"))
    return json_response(401, payload, headers, operation)


def _wrapper(message: str | None) -> dict[str, Any]:
    error: dict[str, Any] = {} if message is None else {"message": message}
    error["status"] = False
    return {"errors": [error]}


def _failed_first_field(data: dict[str, Any] | None) -> dict[str, Any] | None:
    # Only the first root field counts, and only a status the client selected.
    if not data:
        return None
    first = next(iter(data.values()))
    if not isinstance(first, dict) or first.get("status", True) is not False:
        return None
    return _wrapper(first.get("message"))


def _raw_result(outcome: GraphqlOutcome, category: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if outcome.errors:
        result["errors"] = [_raw_error(error, category) for error in outcome.errors]
    if outcome.data is not None:
        result["data"] = outcome.data
    return result


def _raw_error(error: ClientError, category: str | None) -> dict[str, Any]:
    raw: dict[str, Any] = {"message": error.message}
    if category is not None:
        raw["extensions"] = {"category": category}
    if error.locations:
        raw["locations"] = error.locations
    if error.path is not None:
        raw["path"] = error.path
    return raw
