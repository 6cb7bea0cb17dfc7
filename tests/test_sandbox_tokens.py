"""The sandbox's OAuth2 token endpoint beyond the recorded exchanges."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from reconciler.sandbox.server import SandboxServer

TOKEN_PATH = "/admin/api/api/token"
INVALID_REQUEST = (
    "The request is missing a required parameter, includes an invalid parameter"
    " value, includes a parameter more than once, or is otherwise malformed."
)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxServer]:
    with SandboxServer(tmp_path / "pbx.sqlite3") as server:
        yield server


def request_token(
    sandbox: SandboxServer,
    data: dict[str, str],
    auth: tuple[str, str] | None = None,
) -> requests.Response:
    return requests.post(sandbox.url + TOKEN_PATH, data=data, auth=auth, timeout=10)


def claims(token: str) -> dict[str, Any]:
    return decode_part(token.split(".")[1])


def decode_part(part: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    )
    return decoded


def test_token_claims(sandbox: SandboxServer) -> None:
    before = int(time.time())
    response = request_token(
        sandbox,
        {"grant_type": "client_credentials", "scope": "gql:core gql:framework"},
        (sandbox.client_id, sandbox.client_secret),
    )
    token = response.json()["access_token"]
    header = decode_part(token.split(".")[0])
    token_claims = claims(token)

    assert header["typ"] == "JWT"
    assert header["jti"] == token_claims["jti"]
    assert re.fullmatch(r"[0-9a-f]{80}", token_claims["jti"])
    assert token_claims["aud"] == sandbox.client_id
    assert token_claims["sub"] == ""
    assert token_claims["scopes"] == ["gql:core", "gql:framework"]
    assert before <= token_claims["iat"] == token_claims["nbf"]
    assert token_claims["exp"] == token_claims["iat"] + 3600


def test_repeated_scopes_kept_once(sandbox: SandboxServer) -> None:
    response = request_token(
        sandbox,
        {
            "grant_type": "client_credentials",
            "scope": "gql:core  gql:core gql:framework",
        },
        (sandbox.client_id, sandbox.client_secret),
    )

    assert claims(response.json()["access_token"])["scopes"] == [
        "gql:core",
        "gql:framework",
    ]


@pytest.mark.parametrize(
    ("allowed", "requested", "status"),
    [
        ("gql:core", "gql:core:read", 200),
        ("gql:core", "gql:core:read:extension", 200),
        ("gql", "gql:framework", 200),
        ("", "rest:userman:read", 200),
        ("gql:core", "gql:framework", 400),
        ("gql:core:read", "gql:core", 400),
        ("rest:userman:read", "rest:userman", 400),
    ],
)
def test_allowed_scopes_cover_by_prefix(
    sandbox: SandboxServer, allowed: str, requested: str, status: int
) -> None:
    application = sandbox.add_application(allowed)
    response = request_token(
        sandbox, {"grant_type": "client_credentials", "scope": requested}, application
    )

    assert response.status_code == status


def test_empty_allowed_scopes_mean_gql_rest(sandbox: SandboxServer) -> None:
    application = sandbox.add_application("")
    response = request_token(sandbox, {"grant_type": "client_credentials"}, application)

    assert claims(response.json()["access_token"])["scopes"] == ["gql", "rest"]


def test_missing_scope_gives_allowed_in_order(sandbox: SandboxServer) -> None:
    application = sandbox.add_application("gql:framework gql:core rest:userman:read")
    response = request_token(sandbox, {"grant_type": "client_credentials"}, application)

    assert claims(response.json()["access_token"])["scopes"] == [
        "gql:framework",
        "gql:core",
        "rest:userman:read",
    ]


def test_missing_client_id(sandbox: SandboxServer) -> None:
    response = request_token(sandbox, {"grant_type": "client_credentials"})

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "message": INVALID_REQUEST,
        "hint": "Check the `client_id` parameter",
    }


@pytest.mark.parametrize(
    "data", [{}, {"grant_type": "magic"}, {"grant_type": "implicit"}]
)
def test_unsupported_grant_type(sandbox: SandboxServer, data: dict[str, str]) -> None:
    response = request_token(sandbox, data, (sandbox.client_id, sandbox.client_secret))

    assert response.status_code == 400
    assert response.json() == {
        "error": "unsupported_grant_type",
        "message": "The authorization grant type is not supported by the"
        " authorization server.",
        "hint": "Check the `grant_type` parameter",
    }


def test_secret_in_body_wins_over_basic(sandbox: SandboxServer) -> None:
    response = request_token(
        sandbox,
        {
            "grant_type": "client_credentials",
            "client_id": sandbox.client_id,
            "client_secret": "wrong",
        },
        (sandbox.client_id, sandbox.client_secret),
    )

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="OAuth"'


def test_added_application_credentials(sandbox: SandboxServer) -> None:
    client_id, client_secret = sandbox.add_application("gql:core")

    assert re.fullmatch(r"[0-9a-f]{64}", client_id)
    assert re.fullmatch(r"[0-9a-f]{32}", client_secret)
    assert client_id != sandbox.client_id


def test_issue_token_needs_known_client(sandbox: SandboxServer) -> None:
    with pytest.raises(ValueError, match="not an application"):
        sandbox.issue_token("0" * 64, ["gql"])


def test_get_on_token_endpoint(sandbox: SandboxServer) -> None:
    response = requests.get(sandbox.url + TOKEN_PATH, timeout=10)

    assert response.status_code == 405
