"""The token endpoint: OAuth2 client_credentials as FreePBX 16 and 17 handle it.

FreePBX 16 bundles league/oauth2-server 6.1.1 and checks the client secret,
the application's grant type and its allowed scopes. The FreePBX 17 api
module 17.0.1 bundles 8.5.4 with those three checks commented out, so any
existing client_id gets a token, and its errors add `error_description`.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from urllib.parse import parse_qsl

from reconciler.sandbox.exchange import HttpRequest, HttpResponse, json_response
from reconciler.sandbox.pbx import Pbx
from reconciler.sandbox.store import Application
from reconciler.sandbox.tokens import (
    TOKEN_LIFETIME_SECONDS,
    encode_token,
    new_jti,
    secret_sha256,
    token_claims,
)

# Grants FreePBX enables at the token endpoint. Any other grant is unsupported.
GRANT_TYPES = ("client_credentials", "password", "refresh_token", "authorization_code")

# The parameter each other grant needs first (oauth2-server 8.x order).
GRANT_PARAMETERS = {
    "password": ("username", "password"),
    "refresh_token": ("refresh_token",),
    "authorization_code": ("code",),
}

# Scopes of a FreePBX 16 with the core, framework, userman and voicemail
# modules. NOTE: the core keys are the ones the core GraphQL classes declare
# in the sources read; a real install may list more.
KNOWN_SCOPES = frozenset(
    {
        "gql",
        "gql:core",
        "gql:core:read",
        "gql:core:write",
        "gql:core:read:extension",
        "gql:core:write:extension",
        "gql:core:read:device",
        "gql:core:write:devices",
        "gql:framework",
        "gql:framework:read",
        "gql:framework:write",
        "gql:framework:read:modules",
        "gql:framework:write:modules",
        "gql:framework:read:system",
        "rest",
        "rest:framework",
        "rest:framework:read",
        "rest:framework:write",
        "rest:framework:read:system",
        "rest:core",
        "rest:core:read",
        "rest:core:write",
        "rest:core:read:users",
        "rest:userman",
        "rest:userman:read",
        "rest:userman:write",
        "rest:voicemail",
        "rest:voicemail:read",
        "rest:voicemail:write",
    }
)

# Scopes an application with empty allowed_scopes may request.
DEFAULT_ALLOWED_SCOPES = "gql rest"

INVALID_REQUEST = (
    "The request is missing a required parameter, includes an invalid parameter"
    " value, includes a parameter more than once, or is otherwise malformed."
)

ERROR_HEADERS = (
    ("Cache-Control", "no-store, no-cache, must-revalidate"),
    ("Pragma", "no-cache"),
    ("Content-type", "application/json"),
)
SUCCESS_HEADERS = (
    ("content-type", "application/json; charset=UTF-8"),
    ("pragma", "no-cache"),
    ("cache-control", "no-store"),
)


class OAuthError(Exception):
    """An OAuth2 error response: error code, message, HTTP status and hint."""

    def __init__(
        self, error: str, message: str, status: int, hint: str | None = None
    ) -> None:
        super().__init__(message)
        self.error = error
        self.message = message
        self.status = status
        self.hint = hint


def unsupported_grant_type() -> OAuthError:
    return OAuthError(
        "unsupported_grant_type",
        "The authorization grant type is not supported by the authorization server.",
        400,
        "Check the `grant_type` parameter",
    )


def invalid_request(parameter: str) -> OAuthError:
    return OAuthError(
        "invalid_request", INVALID_REQUEST, 400, f"Check the `{parameter}` parameter"
    )


def invalid_client() -> OAuthError:
    return OAuthError("invalid_client", "Client authentication failed", 401)


def invalid_scope(scope: str) -> OAuthError:
    return OAuthError(
        "invalid_scope",
        "The requested scope is invalid, unknown, or malformed",
        400,
        f"Check the `{scope}` scope",
    )


def handle_token_request(request: HttpRequest, pbx: Pbx) -> HttpResponse:
    """Handle POST /admin/api/api/token."""
    try:
        application, scopes = _grant(request, pbx)
    except OAuthError as error:
        return _error_response(error, request, pbx.version)
    token = issue_access_token(pbx, application, scopes, request.client_address)
    payload = {
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME_SECONDS,
        "access_token": token,
    }
    return json_response(200, payload, SUCCESS_HEADERS, "token")


def issue_access_token(
    pbx: Pbx,
    application: Application,
    scopes: list[str],
    ip_address: str,
    *,
    issued_at: int | None = None,
    row_expiry: float | None = None,
) -> str:
    """Sign an access token and store its row.

    `issued_at` and `row_expiry` let tests make expired or revoked tokens. By
    default the token is issued now and its row expires with it.
    """
    if issued_at is None:
        issued_at = int(pbx.clock())
    claims = token_claims(application.client_id, new_jti(), scopes, issued_at)
    if row_expiry is None:
        row_expiry = claims["exp"]
    pbx.store.add_token(claims["jti"], application.id, row_expiry, scopes, ip_address)
    return encode_token(claims, pbx.signing_key)


def new_client_credentials() -> tuple[str, str]:
    """Make a client id (64 hex characters) and secret (32), as FreePBX does."""
    return secrets.token_hex(32), secrets.token_hex(16)


def _grant(request: HttpRequest, pbx: Pbx) -> tuple[Application, list[str]]:
    # Same order as the library: grant type, client, scopes, grant parameters.
    parameters = _request_parameters(request, pbx.version)
    grant_type = parameters.get("grant_type")
    if grant_type not in GRANT_TYPES:
        raise unsupported_grant_type()
    application = _authenticate_client(request, parameters, grant_type, pbx)
    scopes = _validate_scopes(parameters.get("scope"))
    scopes = _finalize_scopes(scopes, application, pbx.version)
    if grant_type != "client_credentials":
        _reject_other_grant(grant_type, parameters)
    return application, scopes


def _request_parameters(request: HttpRequest, version: int) -> dict[str, str]:
    content_type = (request.header("Content-Type") or "").lower()
    text = request.body.decode("utf-8", errors="replace")
    if "application/x-www-form-urlencoded" in content_type:
        return dict(parse_qsl(text, keep_blank_values=True))
    # Slim 3 (FreePBX 16) parses JSON bodies, but the 17 token app adds no parser.
    if "application/json" in content_type and version < 17:
        return _json_parameters(text)
    return {}


def _json_parameters(text: str) -> dict[str, str]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    # The library compares parameters strictly as strings, so keep only those.
    return {key: value for key, value in data.items() if isinstance(value, str)}


def _authenticate_client(
    request: HttpRequest, parameters: dict[str, str], grant_type: str, pbx: Pbx
) -> Application:
    basic_id, basic_secret = _basic_credentials(request.header("Authorization"))
    client_id = parameters.get("client_id", basic_id)
    if client_id is None:
        raise invalid_request("client_id")
    client_secret = parameters.get("client_secret", basic_secret)
    application = pbx.store.find_application(client_id)
    if application is None:
        raise invalid_client()
    if pbx.version >= 17:
        return application
    if application.grant_type != grant_type or client_secret is None:
        raise invalid_client()
    if secret_sha256(client_secret) != application.client_secret_sha256:
        raise invalid_client()
    return application


def _basic_credentials(authorization: str | None) -> tuple[str | None, str | None]:
    if authorization is None or not authorization.startswith("Basic "):
        return None, None
    try:
        decoded = base64.b64decode(authorization[6:], validate=False).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    if ":" not in decoded:
        return None, None
    client_id, client_secret = decoded.split(":", 1)
    return client_id, client_secret


def _validate_scopes(scope_parameter: str | None) -> list[str]:
    requested = [scope for scope in (scope_parameter or "").split(" ") if scope]
    for scope in requested:
        if scope not in KNOWN_SCOPES:
            raise invalid_scope(scope)
    # The token keeps each scope once, in first-seen order.
    return list(dict.fromkeys(requested))


def _finalize_scopes(
    requested: list[str], application: Application, version: int
) -> list[str]:
    allowed = (application.allowed_scopes or DEFAULT_ALLOWED_SCOPES).split()
    if not requested:
        return list(dict.fromkeys(allowed))
    if version >= 17:
        return requested
    for scope in requested:
        if not any(_covers(grant, scope) for grant in allowed):
            raise invalid_scope(scope)
    return requested


def _covers(allowed: str, requested: str) -> bool:
    # Allowed "gql:core" covers "gql:core:read", segment by segment.
    return requested == allowed or requested.startswith(allowed + ":")


def _reject_other_grant(grant_type: str, parameters: dict[str, str]) -> None:
    # Only FreePBX 17 gets here, because it skips the grant-type check.
    for parameter in GRANT_PARAMETERS[grant_type]:
        if parameters.get(parameter) is None:
            raise invalid_request(parameter)
    # NOTE: the sandbox has no users, refresh tokens or codes, so every such
    # grant fails the way oauth2-server 8.x rejects an unknown one.
    raise OAuthError(
        "invalid_grant",
        "The provided authorization grant (e.g., authorization code, resource"
        " owner credentials) or refresh token is invalid, expired, revoked, does"
        " not match the redirection URI used in the authorization request, or"
        " was issued to another client.",
        400,
    )


def _error_response(
    error: OAuthError, request: HttpRequest, version: int
) -> HttpResponse:
    headers: tuple[tuple[str, str], ...] = ERROR_HEADERS
    if error.error == "invalid_client":
        headers = (*headers, ("WWW-Authenticate", _challenge(request)))
    return json_response(error.status, _error_payload(error, version), headers, "token")


def _error_payload(error: OAuthError, version: int) -> dict[str, str]:
    payload = {"error": error.error}
    if version >= 17:
        payload["error_description"] = error.message
    else:
        payload["message"] = error.message
    if error.hint is not None:
        payload["hint"] = error.hint
    if version >= 17:
        payload["message"] = error.message
    return payload


def _challenge(request: HttpRequest) -> str:
    # The library sends a Bearer challenge to a client that used Bearer.
    authorization = request.header("Authorization") or ""
    scheme = "Bearer" if authorization.startswith("Bearer") else "Basic"
    return f'{scheme} realm="OAuth"'
