"""The sandbox's userman REST routes beyond the recorded exchanges."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from reconciler.sandbox.server import SandboxServer

USERMAN = "/admin/api/api/rest/userman"
ADD_EXTENSION = (
    "mutation Add($input: addExtensionInput!) "
    "{ addExtension(input: $input) { status message } }"
)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxServer]:
    with SandboxServer(tmp_path / "pbx.sqlite3") as server:
        yield server


def token(sandbox: SandboxServer, *scopes: str) -> str:
    return sandbox.issue_token(sandbox.client_id, list(scopes))


def add_extension(sandbox: SandboxServer, number: str, **fields: object) -> None:
    variables = {
        "extensionId": number,
        "name": f"User {number}",
        "email": f"{number}@example.com",
        **fields,
    }
    response = requests.post(
        sandbox.url + "/admin/api/api/gql",
        json={"query": ADD_EXTENSION, "variables": {"input": variables}},
        headers={"Authorization": f"Bearer {token(sandbox, 'gql:core')}"},
        timeout=10,
    )
    assert response.json()["data"]["addExtension"]["status"] is True


def get(
    sandbox: SandboxServer,
    route: str,
    *scopes: str,
    method: str = "GET",
    accept: str | None = None,
) -> requests.Response:
    headers = {"Authorization": f"Bearer {token(sandbox, *scopes)}"}
    if accept is not None:
        headers["Accept"] = accept
    return requests.request(
        method, sandbox.url + USERMAN + route, headers=headers, timeout=10
    )


@pytest.mark.parametrize(
    ("scope", "status"),
    [
        ("rest", 200),
        ("rest:userman", 200),
        ("rest:userman:read", 200),
        ("rest:userman:write", 401),
        ("rest:core:read", 401),
        ("gql", 401),
    ],
)
def test_route_checks_read_scope(
    sandbox: SandboxServer, scope: str, status: int
) -> None:
    response = get(sandbox, "/users", scope)

    assert response.status_code == status
    if status == 401:
        assert response.content == b'{"status":false,"message":"unauthorized"}'
    else:
        assert response.content == b"[]"


def test_options_lists_get(sandbox: SandboxServer) -> None:
    response = get(sandbox, "/users/4001", "gql:core", method="OPTIONS")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain"
    assert response.text == "Allowed methods: GET"


def test_options_needs_token(sandbox: SandboxServer) -> None:
    response = requests.options(sandbox.url + USERMAN + "/users", timeout=10)

    assert response.status_code == 401
    assert response.json()["hint"] == 'Missing "Authorization" header'


def test_head_like_get_without_body(sandbox: SandboxServer) -> None:
    add_extension(sandbox, "4001", email="a@example.com")
    got = get(sandbox, "/users/4001", "rest")
    head = get(sandbox, "/users/4001", "rest", method="HEAD")

    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["Content-Length"] == str(len(got.content))


@pytest.mark.parametrize(
    ("accept", "content_type", "body"),
    [
        ("application/xml", "application/xml", "<root><message>Not found</message>"),
        ("text/xml", "text/xml", "<root><message>Not found</message></root>"),
        ("application/problem+json", "application/json", '{"message":"Not found"}'),
        ("text/html, application/json", "text/html;charset=UTF-8", "<html>"),
    ],
)
def test_not_found_follows_accept(
    sandbox: SandboxServer, accept: str, content_type: str, body: str
) -> None:
    response = get(sandbox, "/groups", "rest", accept=accept)

    assert response.status_code == 404
    assert response.headers["Content-Type"] == content_type
    assert response.text.startswith(body)


def test_not_found_links_request_host(sandbox: SandboxServer) -> None:
    response = get(sandbox, "/groups", "rest")

    assert f"<a href='{sandbox.url}/'>Visit the Home Page</a>" in response.text


def test_method_not_allowed_as_xml(sandbox: SandboxServer) -> None:
    response = get(sandbox, "/users", "rest", method="PUT", accept="text/xml")

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"
    assert response.text == (
        "<root><message>Method not allowed. Must be one of: GET</message></root>"
    )


@pytest.mark.parametrize(
    ("accept", "body"),
    [
        ("application/json", '{\n    "message": "Slim Application Error"\n}'),
        ("application/xml", "<error><message>Slim Application Error</message></error>"),
    ],
)
def test_empty_extensions_map_fails(
    sandbox: SandboxServer, accept: str, body: str
) -> None:
    add_extension(sandbox, "4001", umEnable=False)
    response = get(sandbox, "/extensions", "rest", accept=accept)

    assert response.status_code == 500
    assert response.text == body


def test_extensions_zero_to_n_is_list(sandbox: SandboxServer) -> None:
    add_extension(sandbox, "0", umPassword="x", umEnable=True)
    response = get(sandbox, "/extensions", "rest")

    assert response.json() == [
        {
            "id": 1,
            "username": "0",
            "description": "Autogenerated user on new device creation",
        }
    ]


def test_extensions_map_keyed_by_number(sandbox: SandboxServer) -> None:
    add_extension(sandbox, "4002")
    add_extension(sandbox, "0212")
    response = get(sandbox, "/extensions", "rest")

    assert list(response.json()) == ["0212", "4002"]


@pytest.mark.parametrize("argument", ["4001%20", "4001+", "4001"])
def test_user_lookup_ignores_trailing_blanks(
    sandbox: SandboxServer, argument: str
) -> None:
    add_extension(sandbox, "4001", email="ann@example.com")
    response = get(sandbox, "/users/" + argument, "rest")

    assert response.json()["username"] == "4001"
    assert response.json()["email"] == "ann@example.com"


def test_user_without_userman_is_false(sandbox: SandboxServer) -> None:
    add_extension(sandbox, "4001", umEnable=False)

    assert get(sandbox, "/users/4001", "rest").content == b"false"
    assert get(sandbox, "/extensions/4001", "rest").content == b"false"


def test_password_hash_looks_bcrypt(sandbox: SandboxServer) -> None:
    add_extension(sandbox, "4001", umPassword="first secret", umEnable=True)
    add_extension(sandbox, "4002", umPassword="first secret", umEnable=True)
    users = get(sandbox, "/users", "rest").json()
    hashes = [user["password"] for user in users]

    assert all(len(value) == 60 for value in hashes)
    assert all(value.startswith("$2a$08$") for value in hashes)
    # Like bcrypt's salt, the id makes equal passwords hash differently.
    assert hashes[0] != hashes[1]


def test_freepbx17_serves_rest(tmp_path: Path) -> None:
    with SandboxServer(tmp_path / "pbx.sqlite3", freepbx_version=17) as sandbox:
        served = get(sandbox, "/users", "rest:userman:read")
        denied = requests.get(sandbox.url + USERMAN + "/users", timeout=10)

    assert served.status_code == 200
    assert served.json() == []
    # As on its GraphQL endpoint, FreePBX 17 mode rejects a missing token with 500.
    assert denied.status_code == 500
