"""doreload transactions, the reload-needed flag, and state kept across restarts."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from reconciler.sandbox.server import SandboxServer

TOKEN_PATH = "/admin/api/api/token"
GRAPHQL_PATH = "/admin/api/api/gql"
DORELOAD = "mutation { doreload(input: {}) { status message transaction_id } }"
STATUS = """query ($id: ID!) {
  fetchApiStatus(txnId: $id) { id status message details event_output }
}"""
NEED_RELOAD = "query { fetchNeedReload { status message } }"
ADD = """mutation ($input: addExtensionInput!) {
  addExtension(input: $input) { status }
}"""


def access_token(sandbox: SandboxServer) -> str:
    response = requests.post(
        sandbox.url + TOKEN_PATH,
        data={"grant_type": "client_credentials"},
        auth=(sandbox.client_id, sandbox.client_secret),
        timeout=10,
    )
    token: str = response.json()["access_token"]
    return token


def graphql(
    sandbox: SandboxServer,
    token: str,
    query: str,
    variables: dict[str, Any] | None = None,
) -> dict[str, Any]:
    response = requests.post(
        sandbox.url + GRAPHQL_PATH,
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    body: dict[str, Any] = response.json()
    return body


def doreload(sandbox: SandboxServer, token: str) -> str:
    payload = graphql(sandbox, token, DORELOAD)["data"]["doreload"]
    transaction_id: str = payload["transaction_id"]
    return transaction_id


def api_status(
    sandbox: SandboxServer, token: str, transaction_id: str
) -> dict[str, Any]:
    status: dict[str, Any] = graphql(sandbox, token, STATUS, {"id": transaction_id})[
        "data"
    ]["fetchApiStatus"]
    return status


def need_reload(sandbox: SandboxServer, token: str) -> str:
    message: str = graphql(sandbox, token, NEED_RELOAD)["data"]["fetchNeedReload"][
        "message"
    ]
    return message


def wait_for_reload(sandbox: SandboxServer, token: str, transaction_id: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        message: str = api_status(sandbox, token, transaction_id)["message"]
        if message != "Processing":
            return message
        time.sleep(0.05)
    raise AssertionError(f"transaction {transaction_id} still Processing after 10 s")


def test_doreload_runs_then_executes(tmp_path: Path) -> None:
    with SandboxServer(tmp_path / "pbx.sqlite3", reload_seconds=0.3) as sandbox:
        token = access_token(sandbox)
        response = graphql(sandbox, token, DORELOAD)["data"]["doreload"]
        running = api_status(sandbox, token, response["transaction_id"])
        final = wait_for_reload(sandbox, token, response["transaction_id"])
        done = api_status(sandbox, token, response["transaction_id"])

    assert response["status"] is True
    assert response["message"] == (
        "Doreload/apply config has been initiated. Please check the status using"
        " fetchApiStatus api with the returned transaction id"
    )
    assert running == {
        "id": "bW9kdWxlOg==",
        "status": True,
        "message": "Processing",
        "details": "",
        "event_output": "",
    }
    assert final == "Executed"
    assert done["details"] == "Successfully reloaded"


def test_doreload_while_running_fails(tmp_path: Path) -> None:
    with SandboxServer(tmp_path / "pbx.sqlite3", reload_seconds=30) as sandbox:
        token = access_token(sandbox)
        first = doreload(sandbox, token)
        second = doreload(sandbox, token)
        first_status = api_status(sandbox, token, first)
        second_status = api_status(sandbox, token, second)

    assert second != first
    assert first_status["message"] == "Processing"
    assert second_status["status"] is True
    assert second_status["message"] == "Failed"
    assert second_status["details"] == "Process is already running."
    assert second_status["event_output"] == ""


def test_concurrent_doreloads_run_once(tmp_path: Path) -> None:
    with SandboxServer(tmp_path / "pbx.sqlite3", reload_seconds=30) as sandbox:
        token = access_token(sandbox)
        with ThreadPoolExecutor(max_workers=8) as pool:
            ids = list(pool.map(lambda _: doreload(sandbox, token), range(8)))
        statuses = [api_status(sandbox, token, txn)["message"] for txn in ids]

    assert len(set(ids)) == 8
    assert statuses.count("Processing") == 1
    assert statuses.count("Failed") == 7


def test_unknown_transaction(tmp_path: Path) -> None:
    with SandboxServer(tmp_path / "pbx.sqlite3") as sandbox:
        token = access_token(sandbox)
        status = api_status(sandbox, token, "999999")

    assert status["status"] is True
    assert status["message"] == "Sorry unable to fetch the status"
    assert status["details"] is None


def test_need_reload_follows_changes(tmp_path: Path) -> None:
    with SandboxServer(tmp_path / "pbx.sqlite3", reload_seconds=0.1) as sandbox:
        token = access_token(sandbox)
        initially = need_reload(sandbox, token)
        variables = {"input": {"extensionId": "101", "name": "N", "email": "e"}}
        graphql(sandbox, token, ADD, variables)
        after_add = need_reload(sandbox, token)
        wait_for_reload(sandbox, token, doreload(sandbox, token))
        after_reload = need_reload(sandbox, token)

    assert initially == "Doreload is not required"
    assert after_add == "Doreload is required"
    assert after_reload == "Doreload is not required"


def test_restart_keeps_state(tmp_path: Path) -> None:
    state_file = tmp_path / "pbx.sqlite3"
    with SandboxServer(state_file, reload_seconds=0.5) as first:
        token = access_token(first)
        variables = {"input": {"extensionId": "101", "name": "Alice", "email": "e"}}
        graphql(first, token, ADD, variables)
        transaction_id = doreload(first, token)
        framework_app = first.add_application("gql:framework")
        credentials = (first.client_id, first.client_secret)
    time.sleep(0.5)

    with SandboxServer(state_file, reload_seconds=0.5) as second:
        listed = graphql(
            second,
            token,
            "query { fetchAllExtensions { extension { extensionId user { name } } } }",
        )
        status = api_status(second, token, transaction_id)
        framework = requests.post(
            second.url + TOKEN_PATH,
            data={"grant_type": "client_credentials", "scope": "gql:framework"},
            auth=framework_app,
            timeout=10,
        )
        restarted_credentials = (second.client_id, second.client_secret)

    # The token from before the restart still passes its signature check.
    assert listed["data"]["fetchAllExtensions"]["extension"] == [
        {"extensionId": "101", "user": {"name": "Alice"}}
    ]
    assert status["message"] == "Executed"
    assert framework.status_code == 200
    assert restarted_credentials == credentials


def test_restart_keeps_running_reload(tmp_path: Path) -> None:
    state_file = tmp_path / "pbx.sqlite3"
    with SandboxServer(state_file, reload_seconds=30) as first:
        token = access_token(first)
        transaction_id = doreload(first, token)

    with SandboxServer(state_file, reload_seconds=0) as second:
        status = api_status(second, token, transaction_id)
        blocked = api_status(second, token, doreload(second, token))

    assert status["message"] == "Processing"
    assert blocked["message"] == "Failed"


def test_state_file_keeps_secret_hash(tmp_path: Path) -> None:
    state_file = tmp_path / "pbx.sqlite3"
    with SandboxServer(state_file) as sandbox:
        client_id = sandbox.client_id
        client_secret = sandbox.client_secret
    with sqlite3.connect(state_file) as database:
        row = database.execute(
            "SELECT client_secret_sha256 FROM applications WHERE client_id = ?",
            (client_id,),
        ).fetchone()

    assert re.fullmatch(r"[0-9a-f]{64}", client_id)
    assert re.fullmatch(r"[0-9a-f]{32}", client_secret)
    assert row[0] == hashlib.sha256(client_secret.encode()).hexdigest()
    assert state_file.stat().st_mode & 0o077 == 0
