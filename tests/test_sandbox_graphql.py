"""The sandbox's GraphQL endpoint: scopes, error wording, bodies and headers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from reconciler.sandbox.server import RequestRecord, SandboxServer, serve_forever

TOKEN_PATH = "/admin/api/api/token"
GRAPHQL_PATH = "/admin/api/api/gql"
FAILURE_TYPE = "application/json;charset=utf-8"
ADD = """mutation ($input: addExtensionInput!) {
  addExtension(input: $input) { status message }
}"""


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxServer]:
    with SandboxServer(tmp_path / "pbx.sqlite3", reload_seconds=0.0) as server:
        yield server


def access_token(sandbox: SandboxServer, scope: str = "gql:core gql:framework") -> str:
    client_id, client_secret = sandbox.add_application(scope)
    response = requests.post(
        sandbox.url + TOKEN_PATH,
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(client_id, client_secret),
        timeout=10,
    )
    token: str = response.json()["access_token"]
    return token


def graphql(
    sandbox: SandboxServer,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
) -> requests.Response:
    return requests.post(
        sandbox.url + GRAPHQL_PATH,
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {token or access_token(sandbox)}"},
        timeout=10,
    )


def error_message(response: requests.Response) -> str:
    message: str = response.json()["errors"][0]["message"]
    return message


@pytest.mark.parametrize(
    ("scope", "query", "message"),
    [
        (
            "gql:framework",
            "{ fetchAllExtensions { totalCount } }",
            'Cannot query field "fetchAllExtensions" on type "Query".'
            ' Did you mean "fetchAllModuleStatus"?',
        ),
        (
            "gql:core",
            "mutation { doreload(input: {}) { status } }",
            'Cannot query field "doreload" on type "Mutation".',
        ),
        (
            "gql:core",
            "{ fetchNeedReload { status } }",
            'Cannot query field "fetchNeedReload" on type "Query".',
        ),
        (
            "gql:core:read",
            'mutation { deleteExtension(input: {extensionId: "1"}) { status } }',
            "Schema is not configured for mutations.",
        ),
        (
            "gql:core:read:extension",
            "{ fetchAllExtensions { totalCount } }",
            'Cannot query field "fetchAllExtensions" on type "Query".',
        ),
        (
            "gql:framework:read:system",
            "mutation { doreload(input: {}) { status } }",
            "Schema is not configured for mutations.",
        ),
    ],
)
def test_scope_hides_fields(
    sandbox: SandboxServer, scope: str, query: str, message: str
) -> None:
    response = graphql(sandbox, query, token=access_token(sandbox, scope))

    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": message, "status": False}]}


@pytest.mark.parametrize(
    ("scope", "query"),
    [
        ("gql", "{ fetchAllExtensions { totalCount } fetchNeedReload { status } }"),
        ("gql:core:read", "{ fetchAllExtensions { totalCount } }"),
        ("gql:framework:read:modules", "mutation { doreload(input: {}) { status } }"),
        ("gql:framework:read", "{ fetchApiStatus(txnId: 1) { status } }"),
        (
            "gql:core:read gql:core:write",
            'mutation { deleteExtension(input: {extensionId: "1"}) { message } }',
        ),
    ],
)
def test_scope_grants_fields(sandbox: SandboxServer, scope: str, query: str) -> None:
    response = graphql(sandbox, query, token=access_token(sandbox, scope))

    assert "data" in response.json()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "{ fetchApiStatus { status } }",
            'Field "fetchApiStatus" argument "txnId" of type "ID!"'
            " is required but not provided.",
        ),
        (
            "{ fetchApiStatus(txnId: 1, txnid: 2) { status } }",
            'Unknown argument "txnid" on field "fetchApiStatus" of type "Query".'
            ' Did you mean "txnId"?',
        ),
        (
            'mutation { addExtension(input: {extensionId: "1", email: "e"})'
            " { status } }",
            "Field addExtensionInput.name of required type String! was not provided.",
        ),
        (
            'mutation { addExtension(input: {name: "n", email: "e"}) { status } }',
            "Field addExtensionInput.extensionId of required type ID!"
            " was not provided.",
        ),
        (
            'mutation { addExtension(input: {extensionId: "1", name: "n", email: "e",'
            ' channelName: "a", channelName: "b"}) { status } }',
            'There can be only one input field named "channelName".',
        ),
        (
            'mutation { addExtension(input: {extensionId: "1", name: 5, email: "e"})'
            " { status } }",
            "Expected type String, found 5.",
        ),
        (
            'mutation { addExtension(input: {extensionId: "1", name: "n", email: "e",'
            " nmae: 1}) { status } }",
            'Field "nmae" is not defined by type addExtensionInput;'
            ' Did you mean "name"?',
        ),
        (
            '{ fetchExtension(extensionId: "1") { coreDevice { lorem } } }',
            'Cannot query field "lorem" on type "coredevice".',
        ),
        (
            "{ fetchAllExtensions { data } }",
            'Cannot query field "data" on type "ExtensionConnection".',
        ),
        (
            "{ fetchAllExtensions }",
            'Field "fetchAllExtensions" of type "ExtensionConnection" must have a'
            ' selection of subfields. Did you mean "fetchAllExtensions { ... }"?',
        ),
        (
            "mutation { fwconsoleCommand(input: {command: lorem}) { status } }",
            "Expected type command, found lorem.",
        ),
        ("{ fetchAllExtensions {", "Syntax Error: Expected Name, found <EOF>"),
        (
            '{ fetchExtension(extensionId: "1" { status } }',
            "Syntax Error: Expected Name, found {",
        ),
    ],
)
def test_errors_worded_as_graphql_php(
    sandbox: SandboxServer, query: str, message: str
) -> None:
    response = graphql(sandbox, query)

    assert response.status_code == 400
    assert response.headers["Content-Type"] == FAILURE_TYPE
    assert response.json() == {"errors": [{"message": message, "status": False}]}


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {},
            'Variable "$input" of required type "addExtensionInput!" was not provided.',
        ),
        (
            {"input": {"extensionId": "1", "email": "a/b"}},
            'Variable "$input" got invalid value {"extensionId":"1","email":"a\\/b"};'
            " Field value.name of required type String! was not provided.",
        ),
        (
            {
                "input": {
                    "extensionId": "1",
                    "name": "n",
                    "email": "e",
                    "umEnable": "no",
                }
            },
            'Variable "$input" got invalid value'
            ' {"extensionId":"1","name":"n","email":"e","umEnable":"no"};'
            " Expected type Boolean at value.umEnable;"
            ' Boolean cannot represent a non boolean value: "no"',
        ),
    ],
    ids=["missing", "missing-field", "not-boolean"],
)
def test_variable_errors_worded_as_graphql_php(
    sandbox: SandboxServer, variables: dict[str, Any], message: str
) -> None:
    response = graphql(sandbox, ADD, variables)

    assert response.status_code == 400
    assert error_message(response) == message


def test_loose_variables_accepted(sandbox: SandboxServer) -> None:
    variables = {"input": {"extensionId": 7001, "name": 42, "email": "e"}}
    added = graphql(sandbox, ADD, variables)
    listed = graphql(
        sandbox,
        "query ($first: Int) { fetchAllExtensions(first: $first) {"
        " extension { extensionId user { name } } } }",
        {"first": "1"},
    )

    assert added.status_code == 200
    assert listed.json()["data"]["fetchAllExtensions"]["extension"] == [
        {"extensionId": "7001", "user": {"name": "42"}}
    ]


def test_only_first_error_kept(sandbox: SandboxServer) -> None:
    response = graphql(sandbox, "{ first second }")

    assert response.json() == {
        "errors": [
            {"message": 'Cannot query field "first" on type "Query".', "status": False}
        ]
    }


def test_status_false_without_message(sandbox: SandboxServer) -> None:
    response = graphql(sandbox, '{ fetchExtension(extensionId: "9") { status } }')

    assert response.status_code == 400
    assert response.json() == {"errors": [{"status": False}]}


def test_only_first_root_field_checked(sandbox: SandboxServer) -> None:
    query = """{
      all: fetchAllExtensions { totalCount }
      one: fetchExtension(extensionId: "9") { status message }
    }"""
    response = graphql(sandbox, query)

    assert response.status_code == 200
    assert response.json() == {
        "data": {
            "all": {"totalCount": 0},
            "one": {"status": False, "message": "Extension does not exists"},
        }
    }


def test_alias_counts_as_first_field(sandbox: SandboxServer) -> None:
    query = '{ probe: fetchExtension(extensionId: "9") { status message } }'
    response = graphql(sandbox, query)

    assert response.status_code == 400
    assert error_message(response) == "Extension does not exists"


def test_success_headers(sandbox: SandboxServer) -> None:
    response = graphql(sandbox, "{ fetchNeedReload { status message } }")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store, no-cache, must-revalidate"
    assert response.headers["Pragma"] == "no-cache"


def test_graphql_content_type(sandbox: SandboxServer) -> None:
    response = requests.post(
        sandbox.url + GRAPHQL_PATH,
        data="{ fetchNeedReload { message } }",
        headers={
            "Content-Type": "application/graphql",
            "Authorization": f"Bearer {access_token(sandbox)}",
        },
        timeout=10,
    )

    assert response.json() == {
        "data": {"fetchNeedReload": {"message": "Doreload is not required"}}
    }


def test_batch_refused(sandbox: SandboxServer) -> None:
    operation = {"query": "{ fetchNeedReload { status } }"}
    response = requests.post(
        sandbox.url + GRAPHQL_PATH,
        data=json.dumps([operation, operation]),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {access_token(sandbox)}",
        },
        timeout=10,
    )
    refusal = {
        "errors": [
            {
                "message": "Batched queries are not supported by this server",
                "extensions": {"category": "request"},
            }
        ]
    }

    assert response.status_code == 200
    assert response.json() == [refusal, refusal]


def test_missing_query(sandbox: SandboxServer) -> None:
    response = requests.post(
        sandbox.url + GRAPHQL_PATH,
        json={"variables": {}},
        headers={"Authorization": f"Bearer {access_token(sandbox)}"},
        timeout=10,
    )

    assert response.status_code == 400
    assert error_message(response) == (
        "GraphQL Request must include at least one of those two parameters:"
        ' "query" or "queryId"'
    )


@pytest.mark.parametrize(
    ("authorization", "status", "hint"),
    [
        ("{token}", 200, None),
        ("Bearer {token}", 200, None),
        ("bearer {token}", 401, "Error while decoding to JSON"),
        ("Basic Y2xpZW50OnNlY3JldA==", 401, "The JWT string must have two dots"),
        ("Bearer garbage.token.value", 401, "Error while decoding to JSON"),
    ],
    ids=["bare", "bearer", "lower-case-bearer", "basic", "garbage"],
)
def test_authorization_forms(
    sandbox: SandboxServer, authorization: str, status: int, hint: str | None
) -> None:
    response = requests.post(
        sandbox.url + GRAPHQL_PATH,
        json={"query": "{ fetchNeedReload { status } }"},
        headers={"Authorization": authorization.format(token=access_token(sandbox))},
        timeout=10,
    )

    assert response.status_code == status
    assert response.json().get("hint") == hint


@pytest.mark.parametrize(
    ("expired", "revoked", "hint"),
    [
        (True, False, "Access token is invalid"),
        (False, True, "Access token has been revoked"),
    ],
)
def test_issued_token_rejected(
    sandbox: SandboxServer, expired: bool, revoked: bool, hint: str
) -> None:
    token = sandbox.issue_token(
        sandbox.client_id, ["gql:core"], expired=expired, revoked=revoked
    )
    response = graphql(sandbox, "{ fetchAllExtensions { totalCount } }", token=token)

    assert response.status_code == 401
    assert response.json() == {
        "error": "access_denied",
        "message": "The resource owner or authorization server denied the request.",
        "hint": hint,
    }


def test_token_from_other_sandbox_rejected(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    with SandboxServer(tmp_path / "other.sqlite3") as other:
        foreign = access_token(other)
    response = graphql(sandbox, "{ fetchNeedReload { status } }", token=foreign)

    assert response.status_code == 401
    assert response.json()["hint"] == "Access token could not be verified"


def test_get_checks_token_first(sandbox: SandboxServer) -> None:
    anonymous = requests.get(sandbox.url + GRAPHQL_PATH, timeout=10)
    authorized = requests.get(
        sandbox.url + GRAPHQL_PATH,
        headers={"Authorization": f"Bearer {access_token(sandbox)}"},
        timeout=10,
    )

    assert anonymous.status_code == 401
    assert authorized.status_code == 405
    assert "Must be one of: <strong>POST</strong>" in authorized.text


def test_requests_recorded(sandbox: SandboxServer) -> None:
    token = access_token(sandbox)
    graphql(sandbox, "mutation { doreload(input: {}) { status } }", token=token)
    graphql(sandbox, "{ broken", token=token)
    requests.get(sandbox.url + GRAPHQL_PATH, timeout=10)

    assert sandbox.requests == [
        RequestRecord("POST", TOKEN_PATH, 200, "token"),
        RequestRecord("POST", GRAPHQL_PATH, 200, "doreload"),
        RequestRecord("POST", GRAPHQL_PATH, 400, None),
        RequestRecord("GET", GRAPHQL_PATH, 401, None),
    ]


def test_serves_loopback_only(sandbox: SandboxServer) -> None:
    assert sandbox.url.startswith("http://127.0.0.1:")
    assert not sandbox.url.endswith("/")


def test_serve_forever_stops_on_interrupt(tmp_path: Path) -> None:
    statuses: list[int] = []

    def on_ready(server: SandboxServer) -> None:
        response = requests.post(
            server.url + TOKEN_PATH,
            data={"grant_type": "client_credentials"},
            auth=(server.client_id, server.client_secret),
            timeout=10,
        )
        statuses.append(response.status_code)
        raise KeyboardInterrupt

    serve_forever(
        tmp_path / "pbx.sqlite3",
        freepbx_version=16,
        port=0,
        reload_seconds=1.0,
        on_ready=on_ready,
    )

    assert statuses == [200]


def test_unsupported_version_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="freepbx_version 15"):
        SandboxServer(tmp_path / "pbx.sqlite3", freepbx_version=15)


def test_introspection_matches_recording(sandbox: SandboxServer) -> None:
    recorded = json.loads(
        (Path(__file__).parent / "data/recorded-freepbx16-exchanges.json").read_text(
            encoding="utf-8"
        )
    )
    query = recorded[-1]["request"]["body"]["query"]
    introspection = Path(__file__).parent.parent / (
        "reconciler/sandbox/introspection-freepbx16.json"
    )
    response = graphql(sandbox, query)

    assert response.json() == json.loads(introspection.read_text(encoding="utf-8"))


def test_introspection_pruned_by_scope(sandbox: SandboxServer) -> None:
    query = "{ __schema { mutationType { name } queryType { fields { name } } } }"
    response = graphql(sandbox, query, token=access_token(sandbox, "gql:core:read"))
    schema = response.json()["data"]["__schema"]
    names = {field["name"] for field in schema["queryType"]["fields"]}

    assert schema["mutationType"] is None
    assert "fetchAllExtensions" in names
    assert "node" in names
    assert "fetchApiStatus" not in names
