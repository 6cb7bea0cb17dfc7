"""Replay every exchange recorded from a real FreePBX 16 against the sandbox.

The exchanges run in recorded order against one sandbox, because later ones
depend on earlier ones (tokens, extensions 101/102/104, reload transactions).
Placeholders in the recording stand for credentials and tokens; they are
replaced with the sandbox's. Access tokens and transaction ids differ per run,
so they are checked for shape and then set aside.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from reconciler.sandbox.server import SandboxServer

DATA = Path(__file__).parent / "data"
EXCHANGES: list[dict[str, Any]] = json.loads(
    (DATA / "recorded-freepbx16-exchanges.json").read_text(encoding="utf-8")
)
INTROSPECTION = (
    Path(__file__).parent.parent / "reconciler/sandbox/introspection-freepbx16.json"
)

# Long enough for the status poll and the second doreload to happen while the
# first reload runs. The replay then waits for that reload to end.
RELOAD_SECONDS = 2.0
FULL_SCOPES = ["gql:core", "gql:framework"]
# A transaction id inside a JSON-encoded query: txnId: \"20\"
TRANSACTION_ID = re.compile(r'txnId: \\"(\d+)\\"')
REVOKED_IN_DATABASE = "api_access_tokens.expiry was set to the past"
RELOAD_FINISHED = "for the first doreload transaction after it finished"


@dataclass
class Replay:
    """The sandbox of one replay and the values that placeholders stand for."""

    sandbox: SandboxServer
    framework_client: tuple[str, str]
    tokens: dict[str, str] = field(default_factory=dict)
    transaction_ids: dict[str, str] = field(default_factory=dict)
    reload_started_at: float = 0.0
    sent: int = 0


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replay]:
    state_file = tmp_path_factory.mktemp("replay") / "pbx.sqlite3"
    with SandboxServer(state_file, reload_seconds=RELOAD_SECONDS) as sandbox:
        # The recording's second application may only request gql:framework.
        yield Replay(sandbox, sandbox.add_application("gql:framework"))


def exchange_id(exchange: dict[str, Any]) -> str:
    return f"{EXCHANGES.index(exchange):02d}-{exchange['description'][:60]}"


@pytest.mark.parametrize("exchange", EXCHANGES, ids=exchange_id)
def test_recorded_exchange(replay: Replay, exchange: dict[str, Any]) -> None:
    index = EXCHANGES.index(exchange)
    # Exchanges depend on the ones before, so send any that were skipped (-k).
    while replay.sent < index:
        send(replay, EXCHANGES[replay.sent])
    response = send(replay, exchange)
    recorded = exchange["response"]

    assert response.status_code == recorded["status"]
    for name, value in recorded["headers"].items():
        if name.lower() != "content-length":
            assert response.headers.get(name) == value, name
    body, volatile = comparable_body(replay, exchange, response)
    assert body == expected_body(exchange)
    if not volatile:
        length = recorded["headers"]["Content-Length"]
        assert response.headers["Content-Length"] == length


def send(replay: Replay, exchange: dict[str, Any]) -> requests.Response:
    request = exchange["request"]
    if RELOAD_FINISHED in exchange["description"]:
        # The recorded poll came after the reload ended.
        time.sleep(max(0.0, replay.reload_started_at + RELOAD_SECONDS - time.time()))
    headers = {
        name: substitute_header(replay, exchange, value)
        for name, value in request["headers"].items()
    }
    response = requests.request(
        request["method"],
        replay.sandbox.url + request["path"],
        data=substitute_body(replay, request["body"]),
        headers=headers,
        timeout=10,
    )
    remember(replay, exchange, response)
    replay.sent += 1
    return response


def substitute_header(replay: Replay, exchange: dict[str, Any], value: str) -> str:
    sandbox = replay.sandbox
    framework_id, framework_secret = replay.framework_client
    basic = {
        "<BASIC_CLIENT_ID:CLIENT_SECRET>": (sandbox.client_id, sandbox.client_secret),
        "<BASIC_CLIENT_ID:wrongsecret>": (sandbox.client_id, "wrongsecret"),
        "<BASIC_CLIENT_ID_FRAMEWORK_ONLY:CLIENT_SECRET_FRAMEWORK_ONLY>": (
            framework_id,
            framework_secret,
        ),
    }
    for placeholder, (client_id, secret) in basic.items():
        credentials = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        value = value.replace(placeholder, credentials)
    return substitute_token(replay, exchange, value)


def substitute_token(replay: Replay, exchange: dict[str, Any], value: str) -> str:
    sandbox = replay.sandbox
    if REVOKED_IN_DATABASE in exchange["description"]:
        revoked = sandbox.issue_token(sandbox.client_id, FULL_SCOPES, revoked=True)
        return value.replace("<ACCESS_TOKEN>", revoked)
    if "<EXPIRED_ACCESS_TOKEN>" in value:
        expired = sandbox.issue_token(sandbox.client_id, FULL_SCOPES, expired=True)
        return value.replace("<EXPIRED_ACCESS_TOKEN>", expired)
    if "<ACCESS_TOKEN_WITH_SIGNATURE_REPLACED_BY_AAAA>" in value:
        unsigned = replay.tokens["<ACCESS_TOKEN>"].rsplit(".", 1)[0]
        return value.replace(
            "<ACCESS_TOKEN_WITH_SIGNATURE_REPLACED_BY_AAAA>", unsigned + ".AAAA"
        )
    for placeholder, token in replay.tokens.items():
        value = value.replace(placeholder, token)
    return value


def substitute_body(replay: Replay, body: Any) -> str | None:
    if body is None:
        return None
    text = body if isinstance(body, str) else json.dumps(body)
    text = text.replace("<CLIENT_ID>", replay.sandbox.client_id)
    text = text.replace("<CLIENT_SECRET>", replay.sandbox.client_secret)
    return TRANSACTION_ID.sub(
        lambda match: match[0].replace(
            match[1], replay.transaction_ids.get(match[1], match[1])
        ),
        text,
    )


def remember(
    replay: Replay, exchange: dict[str, Any], response: requests.Response
) -> None:
    recorded = exchange["response"]["body"]
    if not isinstance(recorded, dict) or response.status_code != 200:
        return
    if "access_token" in recorded:
        replay.tokens[recorded["access_token"]] = response.json()["access_token"]
    doreload = recorded.get("data", {}).get("doreload")
    if doreload is not None:
        actual = response.json()["data"]["doreload"]["transaction_id"]
        replay.transaction_ids.setdefault(doreload["transaction_id"], actual)
        if not replay.reload_started_at:
            replay.reload_started_at = time.time()


def comparable_body(
    replay: Replay, exchange: dict[str, Any], response: requests.Response
) -> tuple[Any, bool]:
    """Return the response body with volatile values replaced by the recorded ones.

    The flag is true when a volatile value was replaced, which changes the
    body's length.
    """
    if "json" not in response.headers.get("Content-Type", ""):
        return response.text, False
    body = response.json()
    recorded = exchange["response"]["body"]
    if isinstance(body, dict) and "access_token" in body:
        check_token(replay, exchange, body["access_token"])
        return {**body, "access_token": recorded["access_token"]}, True
    doreload = body.get("data", {}).get("doreload") if isinstance(body, dict) else None
    if doreload is not None:
        assert doreload["transaction_id"].isdigit()
        doreload["transaction_id"] = recorded["data"]["doreload"]["transaction_id"]
        return body, True
    return body, False


def check_token(replay: Replay, exchange: dict[str, Any], token: str) -> None:
    _header, payload, _signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["sub"] == ""
    notes = exchange.get("notes", {})
    scopes = notes.get("decoded_jwt_payload_scopes")
    if "decoded_jwt_payload" in notes:
        scopes = notes["decoded_jwt_payload"]["scopes"]
        assert claims["aud"] == replay.sandbox.client_id
    if scopes is not None:
        assert claims["scopes"] == scopes


def expected_body(exchange: dict[str, Any]) -> Any:
    body = exchange["response"]["body"]
    if body == "<see real-introspection.json>":
        return json.loads(INTROSPECTION.read_text(encoding="utf-8"))
    return body


def test_replay_counts_requests(replay: Replay) -> None:
    while replay.sent < len(EXCHANGES):
        send(replay, EXCHANGES[replay.sent])
    records = replay.sandbox.requests
    operations = [record.operation for record in records]

    assert len(records) == len(EXCHANGES)
    assert operations.count("token") == 12
    assert operations.count("doreload") == 3
    assert operations.count("fetchApiStatus") == 4
    assert records[36].method == "GET"
    assert records[36].path == "/admin/api/api/gql"
    assert records[36].status == 405
