"""The FreePBX client against the sandbox: tokens, renewal and error shapes."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import operations, run_cli

from reconciler import pbx as freepbx
from reconciler.client import FreePBXClient
from reconciler.errors import ApiError, PbxUnreachable, TokenError
from reconciler.models import DesiredExtension
from reconciler.sandbox.server import SandboxServer
from reconciler.settings import ConnectionSettings

EXAMPLE = Path(__file__).parent.parent / "extensions.yaml"


def settings_for(server: SandboxServer, **overrides: str) -> ConnectionSettings:
    values = {
        "url": server.url,
        "client_id": server.client_id,
        "client_secret": server.client_secret,
    }
    values.update(overrides)
    return ConnectionSettings(**values)


def test_wrong_secret_one_clear_line(
    pbx_env: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FREEPBX_CLIENT_SECRET", "not-the-secret-0123456789")
    result = run_cli("plan", "-f", str(EXAMPLE), "--allow-http")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] + "\n" == (
        f"Error: token request to {pbx_env.url}/admin/api/api/token failed: "
        "invalid_client (HTTP 401); check FREEPBX_CLIENT_ID and FREEPBX_CLIENT_SECRET "
        "against the machine-to-machine application in FreePBX's API admin page\n"
    )
    assert "not-the-secret-0123456789" not in result.stdout + result.stderr


def test_unknown_scope_names_scope(pbx_env: SandboxServer) -> None:
    result = run_cli(
        "plan", "-f", str(EXAMPLE), "--allow-http", "--scope", "gql:nonexistent"
    )
    assert result.exit_code == 1
    assert "invalid_scope (HTTP 400) for scope 'gql:nonexistent'" in result.stderr


def test_token_endpoint_not_oauth(tmp_path: Path, pbx: SandboxServer) -> None:
    # A URL that points at the wrong path answers 404 without an OAuth body.
    settings = settings_for(pbx, url=pbx.url + "/nothing-here")
    with FreePBXClient(settings) as client, pytest.raises(TokenError) as caught:
        client.fetch_token()
    assert "without an OAuth2 answer" in str(caught.value)
    assert "/nothing-here/admin/api/api/token" in str(caught.value)


def test_rejected_token_renewed_once(pbx: SandboxServer) -> None:
    with FreePBXClient(settings_for(pbx)) as client:
        client.fetch_token()
        client._auth.token = "garbage.token.value"
        state = read(client)
    assert state == ()
    assert operations(pbx) == [
        "token",
        "fetchAllExtensions",
        "token",
        "fetchAllExtensions",
    ]


def read(client: FreePBXClient) -> tuple[object, ...]:
    return freepbx.read_live_state(client).extensions


def test_expired_token_renewed(pbx: SandboxServer) -> None:
    expired = pbx.issue_token(
        pbx.client_id, ["gql:core", "gql:framework"], expired=True
    )
    with FreePBXClient(settings_for(pbx)) as client:
        client._auth.token = expired
        assert read(client) == ()
    assert operations(pbx) == ["fetchAllExtensions", "token", "fetchAllExtensions"]


def test_duplicate_add_is_api_error(pbx: SandboxServer) -> None:
    extension = DesiredExtension(
        extension="101",
        name="Ann",
        email="ann@example.com",
        voicemail=False,
        user_manager=False,
    )
    secrets = pbx_secrets()
    with FreePBXClient(settings_for(pbx)) as client:
        freepbx.add_extension(client, extension, secrets)
        with pytest.raises(ApiError) as caught:
            freepbx.add_extension(client, extension, secrets)
    assert caught.value.server_message == "This device id is already in use"
    assert caught.value.http_status == 400


def pbx_secrets() -> freepbx.ExtensionSecrets:
    return freepbx.ExtensionSecrets(voicemail_pin=None, user_manager_password=None)


def test_freepbx17_errors_with_http_200(tmp_path: Path) -> None:
    with (
        SandboxServer(tmp_path / "pbx.sqlite3", freepbx_version=17) as server,
        FreePBXClient(settings_for(server)) as client,
        pytest.raises(ApiError) as caught,
    ):
        client.query("noSuchField", "query { noSuchField }", {})
    assert caught.value.http_status == 200
    assert 'Cannot query field "noSuchField" on type "Query".' in str(caught.value)


def test_missing_core_scope_is_not_empty_pbx(pbx: SandboxServer) -> None:
    client_id, secret = pbx.add_application("gql:framework")
    settings = settings_for(
        pbx, client_id=client_id, client_secret=secret, scope="gql:framework"
    )
    with FreePBXClient(settings) as client, pytest.raises(ApiError) as caught:
        freepbx.read_live_state(client)
    assert 'Cannot query field "fetchAllExtensions" on type "Query".' in str(
        caught.value
    )


def test_connection_refused(tmp_path: Path) -> None:
    with SandboxServer(tmp_path / "pbx.sqlite3") as server:
        settings = settings_for(server)
    with FreePBXClient(settings) as client, pytest.raises(PbxUnreachable) as caught:
        client.fetch_token()
    assert "connection refused" in str(caught.value)
