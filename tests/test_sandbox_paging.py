"""Order and paging of fetchAllExtensions, with FreePBX 16's connection quirks."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from reconciler.sandbox.server import SandboxServer

TOKEN_PATH = "/admin/api/api/token"
GRAPHQL_PATH = "/admin/api/api/gql"
ADD = """mutation ($input: addExtensionInput!) {
  addExtension(input: $input) { status }
}"""
PAGE = """query ($first: Int, $after: String, $last: Int, $before: String) {
  fetchAllExtensions(first: $first, after: $after, last: $last, before: $before) {
    totalCount count extension { extensionId }
  }
}"""
# Recorded order of these ids on a FreePBX 16: plain string order.
IDS_IN_ORDER = ["08000", "101", "102", "7900", "79000", "799", "8", "80", "800", "8000"]


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxServer]:
    with SandboxServer(tmp_path / "pbx.sqlite3", reload_seconds=0.0) as server:
        yield server


@pytest.fixture
def token(sandbox: SandboxServer) -> str:
    response = requests.post(
        sandbox.url + TOKEN_PATH,
        data={"grant_type": "client_credentials"},
        auth=(sandbox.client_id, sandbox.client_secret),
        timeout=10,
    )
    access_token: str = response.json()["access_token"]
    return access_token


@pytest.fixture
def populated(sandbox: SandboxServer, token: str) -> SandboxServer:
    # Added in reverse so that the order comes from the server, not insertion.
    for extension in reversed(IDS_IN_ORDER):
        variables = {"input": {"extensionId": extension, "name": "N", "email": "e"}}
        graphql(sandbox, token, ADD, variables)
    return sandbox


def graphql(
    sandbox: SandboxServer,
    token: str,
    query: str,
    variables: dict[str, Any] | None = None,
) -> requests.Response:
    return requests.post(
        sandbox.url + GRAPHQL_PATH,
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def cursor(offset: int) -> str:
    return base64.b64encode(f"arrayconnection:{offset}".encode()).decode()


def page_ids(sandbox: SandboxServer, token: str, **arguments: Any) -> list[str]:
    response = graphql(sandbox, token, PAGE, arguments)
    connection = response.json()["data"]["fetchAllExtensions"]
    return [item["extensionId"] for item in connection["extension"]]


def test_list_in_string_order(populated: SandboxServer, token: str) -> None:
    assert page_ids(populated, token) == IDS_IN_ORDER


def test_pages_reassemble_list(populated: SandboxServer, token: str) -> None:
    collected: list[str] = []
    after = None
    while True:
        ids = page_ids(populated, token, first=3, after=after)
        if not ids:
            break
        collected += ids
        after = cursor(len(collected) - 1)

    assert collected == IDS_IN_ORDER


def test_first_page_cursor_example(populated: SandboxServer, token: str) -> None:
    ids = page_ids(populated, token, first=2, after="YXJyYXljb25uZWN0aW9uOjA=")

    assert ids == ["101", "102"]


def test_last_items(populated: SandboxServer, token: str) -> None:
    assert page_ids(populated, token, last=2) == ["800", "8000"]


def test_before_cursor(populated: SandboxServer, token: str) -> None:
    assert page_ids(populated, token, before=cursor(2)) == ["08000", "101"]


def test_negative_first_drops_last(populated: SandboxServer, token: str) -> None:
    assert page_ids(populated, token, first=-1) == IDS_IN_ORDER[:-1]


@pytest.mark.parametrize("after", ["not a cursor", "!!!", cursor(-7)[:-2] + "xx"])
def test_unreadable_cursor_ignored(
    populated: SandboxServer, token: str, after: str
) -> None:
    assert page_ids(populated, token, first=2, after=after) == IDS_IN_ORDER[:2]


def test_any_cursor_prefix_works(populated: SandboxServer, token: str) -> None:
    after = base64.b64encode(b"0123456789abcdef4").decode()

    assert page_ids(populated, token, first=1, after=after) == ["799"]


def test_counts_ignore_paging(populated: SandboxServer, token: str) -> None:
    graphql(
        populated,
        token,
        ADD,
        {"input": {"extensionId": "900", "name": "N", "email": "e", "tech": "custom"}},
    )
    response = graphql(populated, token, PAGE, {"first": 1})
    connection = response.json()["data"]["fetchAllExtensions"]

    assert connection["totalCount"] == 11
    assert connection["count"] == 10
    assert len(connection["extension"]) == 1


def test_list_item_fields(populated: SandboxServer, token: str) -> None:
    query = (
        "query { fetchAllExtensions(first: 1) { edges { cursor } extension { id } } }"
    )
    connection = graphql(populated, token, query).json()["data"]["fetchAllExtensions"]

    assert connection["edges"] is None
    assert connection["extension"] == [{"id": "ZXh0ZW5zaW9uOg=="}]


@pytest.mark.parametrize(
    "selection",
    [
        "pageInfo { hasNextPage }",
        "extension { status }",
        "extension { coreDevice { message } }",
    ],
)
def test_broken_fields_fail(
    populated: SandboxServer, token: str, selection: str
) -> None:
    query = f"query {{ fetchAllExtensions {{ totalCount {selection} }} }}"
    response = graphql(populated, token, query)

    assert response.status_code == 400
    assert response.json() == {
        "errors": [{"message": "Internal server error", "status": False}]
    }
