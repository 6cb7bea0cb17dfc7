"""The sandbox as the FreePBX 17 snapshot: its error shapes and stored names."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sandbox_http import GRAPHQL_PATH, TOKEN_PATH, graphql

from reconciler.sandbox.server import SandboxServer

ADD = """mutation ($input: addExtensionInput!) {
  addExtension(input: $input) { status message }
}"""


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxServer]:
    with SandboxServer(tmp_path / "pbx.sqlite3", freepbx_version=17) as server:
        yield server


def add(sandbox: SandboxServer, **fields: Any) -> requests.Response:
    values = {"extensionId": "7001", "name": "N", "email": "e", **fields}
    return graphql(sandbox, ADD, {"input": values})


def test_validation_error_passes_through(sandbox: SandboxServer) -> None:
    response = graphql(sandbox, "query { noSuchField }")

    assert response.status_code == 200
    assert response.json() == {
        "errors": [
            {
                "message": 'Cannot query field "noSuchField" on type "Query".',
                "locations": [{"line": 1, "column": 9}],
            }
        ]
    }


def test_internal_error_keeps_data(sandbox: SandboxServer) -> None:
    response = graphql(sandbox, "{ fetchAllExtensions { pageInfo { hasNextPage } } }")

    assert response.status_code == 200
    assert response.json() == {
        "errors": [
            {
                "message": "Internal server error",
                "locations": [{"line": 1, "column": 24}],
                "path": ["fetchAllExtensions", "pageInfo"],
            }
        ],
        "data": {"fetchAllExtensions": None},
    }


def test_status_false_still_wrapped(sandbox: SandboxServer) -> None:
    response = graphql(
        sandbox, '{ fetchExtension(extensionId: "9") { status message } }'
    )

    assert response.status_code == 400
    assert response.json() == {
        "errors": [{"message": "Extension does not exists", "status": False}]
    }


def test_auth_failure_is_server_error(sandbox: SandboxServer) -> None:
    response = requests.post(
        sandbox.url + GRAPHQL_PATH,
        json={"query": "{ fetchNeedReload { status } }"},
        timeout=10,
    )

    assert response.status_code == 500
    error = response.json()["error"]
    assert error["message"] == (
        "The resource owner or authorization server denied the request."
    )


def test_any_secret_accepted(sandbox: SandboxServer) -> None:
    response = requests.post(
        sandbox.url + TOKEN_PATH,
        data={"grant_type": "client_credentials"},
        auth=(sandbox.client_id, "wrong"),
        timeout=10,
    )

    assert response.status_code == 200


def test_scope_not_allowed_still_granted(sandbox: SandboxServer) -> None:
    application = sandbox.add_application("gql:framework")
    response = requests.post(
        sandbox.url + TOKEN_PATH,
        data={"grant_type": "client_credentials", "scope": "gql:core"},
        auth=application,
        timeout=10,
    )

    assert response.status_code == 200


def test_token_error_has_description(sandbox: SandboxServer) -> None:
    response = requests.post(
        sandbox.url + TOKEN_PATH,
        data={"grant_type": "client_credentials", "scope": "gql:nonexistent"},
        auth=(sandbox.client_id, sandbox.client_secret),
        timeout=10,
    )
    message = "The requested scope is invalid, unknown, or malformed"

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_scope",
        "error_description": message,
        "hint": "Check the `gql:nonexistent` scope",
        "message": message,
    }


def test_unknown_client_rejected(sandbox: SandboxServer) -> None:
    response = requests.post(
        sandbox.url + TOKEN_PATH,
        data={"grant_type": "client_credentials"},
        auth=("0" * 64, "whatever"),
        timeout=10,
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_json_token_body_not_parsed(sandbox: SandboxServer) -> None:
    response = requests.post(
        sandbox.url + TOKEN_PATH,
        json={"grant_type": "client_credentials"},
        auth=(sandbox.client_id, sandbox.client_secret),
        timeout=10,
    )

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_password_grant_needs_username(sandbox: SandboxServer) -> None:
    response = requests.post(
        sandbox.url + TOKEN_PATH,
        data={"grant_type": "password"},
        auth=(sandbox.client_id, sandbox.client_secret),
        timeout=10,
    )

    assert response.status_code == 400
    assert response.json()["hint"] == "Check the `username` parameter"


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("Tom & Jerry", "Tom &amp; Jerry"),
        ("<b>bold</b>", "&lt;b&gt;bold&lt;/b&gt;"),
        ('O\'Brien "Bob"', "O&#x27;Brien &quot;Bob&quot;"),
        ("  spaced  ", "spaced"),
    ],
)
def test_names_stored_entity_encoded(
    sandbox: SandboxServer, name: str, stored: str
) -> None:
    add(sandbox, name=name)
    query = (
        '{ fetchExtension(extensionId: "7001") {'
        " user { name } coreDevice { description } } }"
    )
    extension = graphql(sandbox, query).json()["data"]["fetchExtension"]

    assert extension["user"]["name"] == stored
    assert extension["coreDevice"]["description"] == stored


def test_chan_sip_rejected_on_asterisk_21(sandbox: SandboxServer) -> None:
    response = add(sandbox, tech="sip")

    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == (
        "The installed version of Asterisk does not support chan_sip."
        " Please use pjsip instead"
    )


def test_driver_check_names_tech(tmp_path: Path) -> None:
    state_file = tmp_path / "pbx.sqlite3"
    with SandboxServer(state_file, freepbx_version=17, asterisk_version=20) as sandbox:
        response = add(sandbox, tech="sip")

    assert response.json()["errors"][0]["message"] == (
        "The existing driver not support this tech(`sip`) option ."
        " Please use pjsip instead"
    )


def test_chan_sip_driver_wants_sip(tmp_path: Path) -> None:
    state_file = tmp_path / "pbx.sqlite3"
    with SandboxServer(
        state_file, freepbx_version=17, asterisk_version=18, sip_driver="chan_sip"
    ) as sandbox:
        pjsip = add(sandbox, extensionId="7002")
        sip = add(sandbox, extensionId="7003", tech="sip")

    assert pjsip.json()["errors"][0]["message"] == (
        "The existing driver not support this tech(`pjsip`) option ."
        " Please use sip instead"
    )
    assert sip.json()["data"]["addExtension"]["status"] is True
