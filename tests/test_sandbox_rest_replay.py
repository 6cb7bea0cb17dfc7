"""Replay the userman REST exchanges recorded from a real FreePBX 16 on the sandbox.

The exchanges run in recorded order against one sandbox, because later ones
depend on earlier ones (tokens, the extensions 3701 to 3706 and their userman
users). The recording's application allows "gql:core gql:framework
rest:userman:read"; the replay adds one like it. Volatile values are checked
for shape and then set aside:

- access tokens differ per run;
- userman ids: the recorded PBX was at 80 where the sandbox starts at 1, so
  one fixed offset must map every sandbox id onto the recorded one;
- password hashes are placeholders in the recording, and the sandbox's must
  look like bcrypt. Real hashes contain "/", which PHP writes as "\\/", so the
  length of an answer with hashes is checked against PHP's encoding instead;
- the 404 page links to the host and port the request came to.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from reconciler.sandbox.php import json_encode
from reconciler.sandbox.server import SandboxServer

DATA = Path(__file__).parent / "data"
EXCHANGES: list[dict[str, Any]] = json.loads(
    (DATA / "recorded-freepbx16-rest-exchanges.json").read_text(encoding="utf-8")
)
APPLICATION_SCOPES = "gql:core gql:framework rest:userman:read"
BCRYPT_HASH = re.compile(r"\$2a\$08\$[./A-Za-z0-9]{53}")
PASSWORD_PLACEHOLDER = "<PASSWORD_HASH>"
RECORDED_HOME = "http://127.0.0.1:8088/"


@dataclass
class Replay:
    """The sandbox of one replay and the values that placeholders stand for."""

    sandbox: SandboxServer
    client: tuple[str, str]
    tokens: dict[str, str] = field(default_factory=dict)
    id_offset: int | None = None
    sent: int = 0

    @property
    def home(self) -> str:
        return self.sandbox.url + "/"


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replay]:
    state_file = tmp_path_factory.mktemp("rest-replay") / "pbx.sqlite3"
    with SandboxServer(state_file) as sandbox:
        yield Replay(sandbox, sandbox.add_application(APPLICATION_SCOPES))


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
    if "json" in response.headers["Content-Type"]:
        check_json(replay, exchange, response)
    else:
        text = response.text.replace(replay.home, RECORDED_HOME)
        assert text == recorded["body"]
        assert len(text.encode()) == int(recorded["headers"]["Content-Length"])


def check_json(
    replay: Replay, exchange: dict[str, Any], response: requests.Response
) -> None:
    recorded = exchange["response"]
    body = response.json()
    if isinstance(body, dict) and "access_token" in body:
        check_token(replay, exchange, body["access_token"])
        body["access_token"] = recorded["body"]["access_token"]
        assert ordered(body) == ordered(recorded["body"])
        return

    hashes = set_hashes_aside(body)
    id_digits = map_ids(replay, body, recorded["body"])
    assert ordered(body) == ordered(recorded["body"])
    if hashes:
        # PHP's encoding: "/" as "\/", non-ASCII as \uXXXX, no blanks.
        assert response.content == json_encode(response.json())
    else:
        length = int(recorded["headers"]["Content-Length"]) - id_digits
        assert len(response.content) == length


def send(replay: Replay, exchange: dict[str, Any]) -> requests.Response:
    request = exchange["request"]
    headers = {
        name: substitute(replay, value) for name, value in request["headers"].items()
    }
    body = request["body"]
    if body is not None and not isinstance(body, str):
        body = json.dumps(body)
    response = requests.request(
        request["method"],
        replay.sandbox.url + substitute(replay, request["path"]),
        data=body,
        headers=headers,
        timeout=10,
    )
    recorded = exchange["response"]["body"]
    issued = response.status_code == 200
    if issued and isinstance(recorded, dict) and "access_token" in recorded:
        replay.tokens[recorded["access_token"]] = response.json()["access_token"]
    replay.sent += 1
    return response


def substitute(replay: Replay, value: str) -> str:
    client_id, secret = replay.client
    credentials = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    value = value.replace("<BASIC_CLIENT_ID:CLIENT_SECRET>", credentials)
    # Longest first, so <ACCESS_TOKEN> does not eat <ACCESS_TOKEN_REST_ONLY>.
    for placeholder in sorted(replay.tokens, key=len, reverse=True):
        value = value.replace(placeholder, replay.tokens[placeholder])
    return value


def check_token(replay: Replay, exchange: dict[str, Any], token: str) -> None:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    expected = exchange["notes"]["decoded_jwt_payload"]
    assert claims["aud"] == replay.client[0]
    assert claims["scopes"] == expected["scopes"]
    assert claims["exp"] - claims["iat"] == 3600


def set_hashes_aside(body: Any) -> list[str]:
    """Replace each user's password hash by the recording's placeholder."""
    hashes = []
    for user in user_objects(body):
        if "password" not in user:
            continue  # an entry of the extensions map
        assert BCRYPT_HASH.fullmatch(user["password"]), user["password"]
        hashes.append(user["password"])
        user["password"] = PASSWORD_PLACEHOLDER
    return hashes


def map_ids(replay: Replay, body: Any, recorded: Any) -> int:
    """Replace the sandbox's userman ids by the recorded ones.

    Returns how many more digits the recorded ids have than the sandbox's.
    """
    actual_users = user_objects(body)
    recorded_users = user_objects(recorded)
    assert len(actual_users) == len(recorded_users)
    digits = 0
    for actual, expected in zip(actual_users, recorded_users, strict=True):
        if replay.id_offset is None:
            replay.id_offset = expected["id"] - actual["id"]
        assert actual["id"] + replay.id_offset == expected["id"]
        digits += len(str(expected["id"])) - len(str(actual["id"]))
        actual["id"] = expected["id"]
    return digits


def user_objects(body: Any) -> list[dict[str, Any]]:
    """Return the objects with a userman id: users and extension map entries."""
    if isinstance(body, list):
        return [item for item in body if isinstance(item, dict) and "username" in item]
    if not isinstance(body, dict):
        return []
    if "username" in body:
        return [body]
    return [item for item in body.values() if isinstance(item, dict) and "id" in item]


def ordered(value: Any) -> Any:
    """Turn every object into a list of pairs, so field order counts."""
    if isinstance(value, dict):
        return [(key, ordered(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [ordered(item) for item in value]
    return value


def test_replay_counts_requests(replay: Replay) -> None:
    while replay.sent < len(EXCHANGES):
        send(replay, EXCHANGES[replay.sent])
    records = replay.sandbox.requests
    operations = [record.operation for record in records]

    assert len(records) == len(EXCHANGES)
    assert operations.count("token") == 8
    # The 405 answers to POST and DELETE count for their route.
    assert operations.count("rest userman/users") == 12
    assert operations.count("rest userman/users/{username}") == 16
    assert operations.count("rest userman/extensions") == 5
    assert operations.count("rest userman/extensions/{extension}") == 12
    # No route: nosuchroute (three times), users/, users/3701/extra, the root.
    assert operations.count(None) == 6
