"""Email drift: plan reads User Manager emails over REST when the token may."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from conftest import CliResult, operations, run_cli, write_yaml

from reconciler.client import FreePBXClient
from reconciler.planner import same_email
from reconciler.sandbox.faults import Faults, Selector
from reconciler.sandbox.server import SandboxServer
from reconciler.settings import ConnectionSettings
from reconciler.userman import EmailState, UsermanUser, read_email_state

REST_SCOPE = "gql:core gql:framework rest:userman:read"
USERS_PATH = "/admin/api/api/rest/userman/users"
NOT_CHECKED = (
    "Email not checked: the access token has none of the scopes "
    "rest:userman:read, rest:userman, rest; add rest:userman:read to --scope "
    "(FREEPBX_SCOPE) and use a FreePBX API application that allows it."
)

CREATED = """version: 1
extensions:
  - {extension: "4001", name: Ann Lee, email: ann@example.com}
  - {extension: "4002", name: Bob Ray, email: bob@example.com}
  - {extension: "4003", name: Desk, email: desk@example.com, user_manager: false}
"""
CHANGED = """version: 1
extensions:
  - {extension: "4001", name: Ann Lee, email: ann.lee@example.com}
  - {extension: "4002", name: Bob Ray, email: bob@EXAMPLE.com}
  - {extension: "4003", name: Desk, email: front@example.com, user_manager: false}
"""


@pytest.fixture
def rest_env(pbx: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    """The sandbox with an API application that allows rest:userman:read."""
    client_id, client_secret = pbx.add_application(REST_SCOPE)
    monkeypatch.setenv("FREEPBX_URL", pbx.url)
    monkeypatch.setenv("FREEPBX_CLIENT_ID", client_id)
    monkeypatch.setenv("FREEPBX_CLIENT_SECRET", client_secret)
    monkeypatch.setenv("FREEPBX_SCOPE", REST_SCOPE)
    return pbx


def plan(path: Path, *extra: str) -> CliResult:
    return run_cli("plan", "-f", str(path), "--allow-http", *extra)


def create(tmp_path: Path) -> Path:
    result = run_cli(
        "apply", "-f", str(write_yaml(tmp_path, CREATED)), "--allow-http", "--yes"
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    return write_yaml(tmp_path, CHANGED, name="changed.yaml")


def use_scope(
    monkeypatch: pytest.MonkeyPatch, pbx: SandboxServer, allowed: str
) -> None:
    client_id, client_secret = pbx.add_application(allowed)
    monkeypatch.setenv("FREEPBX_CLIENT_ID", client_id)
    monkeypatch.setenv("FREEPBX_CLIENT_SECRET", client_secret)
    monkeypatch.setenv("FREEPBX_SCOPE", allowed)


def test_email_drift_shown_with_scope(rest_env: SandboxServer, tmp_path: Path) -> None:
    changed = create(tmp_path)
    before = len(rest_env.requests)
    result = plan(changed, "--detailed-exitcode")

    assert result.exit_code == 2, result.stderr
    assert "Drift (1):" in result.stdout
    assert "  ~ 4001  Ann Lee" in result.stdout
    assert '      email: live "ann@example.com", file "ann.lee@example.com"' in (
        result.stdout
    )
    assert "Email not checked" not in result.stdout
    assert "Plan: 0 to create, 1 drifted, 0 unmanaged, 2 in sync." in result.stdout
    assert operations(rest_env)[before:] == [
        "token",
        "fetchAllExtensions",
        "rest userman/users",
    ]


def test_email_in_sync_after_apply(rest_env: SandboxServer, tmp_path: Path) -> None:
    create(tmp_path)
    result = plan(tmp_path / "extensions.yaml", "--detailed-exitcode")

    assert result.exit_code == 0, result.stdout
    assert "Plan: 0 to create, 0 drifted, 0 unmanaged, 3 in sync." in result.stdout


def test_email_not_checked_without_scope(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    changed = create(tmp_path)
    before = len(pbx_env.requests)
    result = plan(changed, "--detailed-exitcode")

    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("Email not checked") == 1
    assert NOT_CHECKED in result.stdout
    assert "Plan: 0 to create, 0 drifted, 0 unmanaged, 3 in sync." in result.stdout
    assert operations(pbx_env)[before:] == ["token", "fetchAllExtensions"]


def test_no_email_note_when_all_new(pbx_env: SandboxServer, tmp_path: Path) -> None:
    result = plan(write_yaml(tmp_path, CREATED))

    assert "Email not checked" not in result.stdout
    assert "Not compared: email, user manager groups" in result.stdout


def test_not_compared_drops_email_when_checked(
    rest_env: SandboxServer, tmp_path: Path
) -> None:
    create(tmp_path)
    extra = CHANGED + '  - {extension: "4004", name: Cy, email: cy@example.com}\n'
    result = plan(write_yaml(tmp_path, extra, name="more.yaml"))

    assert "Not compared: user manager groups, voicemail PIN" in result.stdout
    assert "Not compared: email" not in result.stdout


def test_json_plan_with_email_checked(rest_env: SandboxServer, tmp_path: Path) -> None:
    changed = create(tmp_path)
    document = json.loads(plan(changed, "--format", "json").stdout)

    assert document["format_version"] == 1
    assert document["email_checked"] is True
    assert document["email_unchecked_reason"] is None
    assert "email" not in document["not_compared"]
    assert document["drift"] == [
        {
            "extension": "4001",
            "name": "Ann Lee",
            "fields": [
                {
                    "field": "email",
                    "live": "ann@example.com",
                    "desired": "ann.lee@example.com",
                }
            ],
        }
    ]


def test_json_plan_without_email_scope(pbx_env: SandboxServer, tmp_path: Path) -> None:
    changed = create(tmp_path)
    document = json.loads(plan(changed, "--format", "json").stdout)

    assert document["email_checked"] is False
    assert document["email_unchecked_reason"].startswith(
        "the access token has none of the scopes rest:userman:read"
    )
    assert document["not_compared"][0] == "email"
    assert document["drift"] == []


def test_markdown_plan_shows_email_drift(
    rest_env: SandboxServer, tmp_path: Path
) -> None:
    changed = create(tmp_path)
    text = plan(changed, "--format", "markdown").stdout

    assert (
        '| drift | 4001 | Ann Lee | email: "ann@example.com" → "ann.lee@example.com" |'
        in (text)
    )
    assert "Email not checked" not in text


def test_markdown_plan_says_email_unchecked(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    changed = create(tmp_path)
    text = plan(changed, "--format", "markdown").stdout

    assert NOT_CHECKED in text


def test_no_password_hash_in_output(rest_env: SandboxServer, tmp_path: Path) -> None:
    changed = create(tmp_path)
    token = rest_env.issue_token(rest_env.client_id, ["rest:userman:read"])
    users = requests.get(
        rest_env.url + USERS_PATH,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()
    hashes = [user["password"] for user in users]
    assert len(hashes) == 2

    for output_format in ("text", "json", "markdown"):
        result = plan(changed, "--debug", "--format", output_format)
        output = result.stdout + result.stderr
        assert "GET /admin/api/api/rest/userman/users: HTTP 200" in result.stderr
        for password_hash in hashes:
            assert password_hash not in output
            assert password_hash.replace("/", "\\/") not in output
        assert "$2a$08$" not in output
        assert "Autogenerated user on new device creation" not in output
        assert '"assigned"' not in output


def test_rest_read_failure_names_route_only(
    rest_env: SandboxServer, tmp_path: Path
) -> None:
    changed = create(tmp_path)
    # Requests 3 to 5 of the plan: the users read and both of its retries.
    rest_env.faults = Faults(http_500_on=tuple(Selector(None, n) for n in (3, 4, 5)))
    result = plan(changed)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip().endswith(
        "Error: GET /admin/api/api/rest/userman/users failed (HTTP 500): "
        "server error HTTP 500"
    )
    assert "Internal Server Error" not in result.stderr


def test_rest_read_retried_after_500(rest_env: SandboxServer, tmp_path: Path) -> None:
    changed = create(tmp_path)
    rest_env.faults = Faults(http_500_on=(Selector(None, 3),))
    result = plan(changed, "--detailed-exitcode")

    assert result.exit_code == 2, result.stderr
    assert 'email: live "ann@example.com"' in result.stdout


def test_unallowed_rest_scope_rejected(
    pbx_env: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sandbox's default application allows only gql:core gql:framework.
    monkeypatch.setenv("FREEPBX_SCOPE", REST_SCOPE)
    result = plan(write_yaml(tmp_path, CREATED))

    assert result.exit_code == 1
    assert "failed: invalid_scope (HTTP 400) for scope" in result.stderr
    assert "rest:userman:read" in result.stderr
    assert operations(pbx_env) == ["token"]


@pytest.mark.parametrize(
    ("scope", "checked"),
    [
        ("gql:core gql:framework rest:userman:write", False),
        ("gql:core gql:framework rest:userman", True),
        ("gql:core gql:framework rest", True),
    ],
)
def test_scope_decides_email_check(
    pbx: SandboxServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    scope: str,
    checked: bool,
) -> None:
    monkeypatch.setenv("FREEPBX_URL", pbx.url)
    use_scope(monkeypatch, pbx, scope)
    changed = create(tmp_path)
    document = json.loads(plan(changed, "--format", "json").stdout)

    assert document["email_checked"] is checked
    assert len(document["drift"]) == (1 if checked else 0)


def test_apply_plan_compares_email(rest_env: SandboxServer, tmp_path: Path) -> None:
    changed = create(tmp_path)
    result = run_cli("apply", "-f", str(changed), "--allow-http", "--yes")

    assert result.exit_code == 0, result.stderr
    assert '      email: live "ann@example.com", file "ann.lee@example.com"' in (
        result.stdout
    )
    assert "Nothing to create" in result.stdout


def test_route_rejection_means_not_checked(pbx: SandboxServer) -> None:
    class ClaimsReadScope(FreePBXClient):
        """A client that believes its token may read userman, which it may not."""

        def granted_scopes(self) -> frozenset[str]:
            return frozenset({"rest:userman:read"})

    settings = ConnectionSettings(pbx.url, pbx.client_id, pbx.client_secret)
    with ClaimsReadScope(settings) as client:
        state = read_email_state(client)

    assert state.checked is False
    assert state.unchecked_reason == (
        f"FreePBX refused GET {USERS_PATH} (HTTP 401) although the token has the "
        "scope rest:userman:read; check the API application's scopes"
    )
    assert [record.status for record in pbx.requests] == [200, 401]


def test_missing_route_means_not_checked(pbx: SandboxServer) -> None:
    client_id, secret = pbx.add_application(REST_SCOPE)
    settings = ConnectionSettings(pbx.url, client_id, secret, scope=REST_SCOPE)
    with FreePBXClient(settings) as client:
        client.fetch_token()
        # A base URL under which FreePBX has no userman route.
        client.settings = ConnectionSettings(
            pbx.url + "/other", client_id, secret, scope=REST_SCOPE
        )
        state = read_email_state(client)

    assert state.checked is False
    assert state.unchecked_reason.startswith(
        "FreePBX has no route /admin/api/api/rest/userman/users (HTTP 404)"
    )


def test_user_found_by_default_extension() -> None:
    state = EmailState(
        users=(
            UsermanUser(1, "4001", "none", "old@example.com"),
            UsermanUser(3, "alice", "4001", "alice@example.com"),
            UsermanUser(2, "ann", "4001", "ann@example.com"),
            UsermanUser(4, "4002", "4002", "bob@example.com"),
            UsermanUser(5, "4003", "", "desk@example.com"),
        )
    )

    assert state.user_for("4001") == UsermanUser(2, "ann", "4001", "ann@example.com")
    assert state.user_for("4002") == UsermanUser(4, "4002", "4002", "bob@example.com")
    assert state.user_for("4003") == UsermanUser(5, "4003", "", "desk@example.com")
    assert state.user_for("4004") is None


@pytest.mark.parametrize(
    ("live", "desired", "equal"),
    [
        ("ann@example.com", "ann@example.com", True),
        (" ann@example.com ", "ann@example.com", True),
        ("ann@Example.COM", "ann@example.com", True),
        ("Ann@example.com", "ann@example.com", False),
        ("ann@example.com", "ann.lee@example.com", False),
        ("", "ann@example.com", False),
        ("not-an-email", "NOT-AN-EMAIL", False),
        ('"a@b"@example.com', '"a@b"@EXAMPLE.com', True),
    ],
)
def test_same_email(live: str, desired: str, equal: bool) -> None:
    assert same_email(live, desired) is equal
