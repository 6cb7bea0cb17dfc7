"""The FreePBX client against the sandbox: tokens, renewal and error shapes."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import operations, run_cli

from reconciler import pbx as freepbx
from reconciler.client import FreePBXClient
from reconciler.errors import ApiError, OutcomeUnknown, PbxUnreachable, TokenError
from reconciler.models import DesiredExtension
from reconciler.operations import FETCH_NEED_RELOAD
from reconciler.sandbox.exchange import HttpRequest, HttpResponse
from reconciler.sandbox.server import SandboxServer
from reconciler.settings import GRAPHQL_PATH, TOKEN_PATH, ConnectionSettings

EXAMPLE = Path(__file__).parent.parent / "extensions.yaml"
JSON = (("Content-Type", "application/json"),)
HTML = (("Content-Type", "text/html"),)


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
        client._token = "garbage.token.value"
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
        client._token = expired
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


class CannedSandbox(SandboxServer):
    """The sandbox, responding to GraphQL requests with `canned` when it is set."""

    canned: HttpResponse | None = None

    def _route(self, request: HttpRequest) -> HttpResponse:
        if request.path == GRAPHQL_PATH and self.canned is not None:
            return self.canned
        return super()._route(request)


@pytest.fixture
def canned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CannedSandbox]:
    monkeypatch.setattr("reconciler.client.READ_BACKOFF_SECONDS", 0.01)
    with CannedSandbox(tmp_path / "pbx.sqlite3") as server:
        yield server


def graphql_paths(server: SandboxServer) -> list[str]:
    return [
        record.path
        for record in server.requests
        if record.path != "/admin/api/api/token"
    ]


@pytest.mark.parametrize(
    ("status", "headers", "body", "message", "attempts"),
    [
        (200, JSON, b'{"extensions": {}}', "the answer is not a GraphQL response", 3),
        (200, JSON, b'{"data": null}', "the answer is not a GraphQL response", 3),
        (200, JSON, b"[]", "the answer is not a GraphQL response", 3),
        (200, JSON, b"", "the answer is not a GraphQL response", 3),
        (404, HTML, b"<h1>Not Found</h1>", "unexpected HTTP 404", 1),
        (403, JSON, b'{"message": "Forbidden"}', "unexpected HTTP 403", 1),
        (502, HTML, b"<h1>Bad Gateway</h1>", "server error HTTP 502", 3),
        (
            500,
            JSON,
            b'{"error": {"message": "Division by zero"}}',
            "server error HTTP 500",
            3,
        ),
        (
            500,
            JSON,
            b'{"error": {"type": "ErrorException", "message": "Invalid access '
            b'token for the OAuth provider of a trunk"}}',
            "server error HTTP 500",
            3,
        ),
    ],
)
def test_response_without_data_or_errors(
    canned: CannedSandbox,
    status: int,
    headers: tuple[tuple[str, str], ...],
    body: bytes,
    message: str,
    attempts: int,
) -> None:
    canned.canned = HttpResponse(status, headers, body)
    with (
        FreePBXClient(settings_for(canned)) as client,
        pytest.raises(ApiError) as caught,
    ):
        client.query("fetchNeedReload", FETCH_NEED_RELOAD, {})
    assert str(caught.value) == f"fetchNeedReload failed (HTTP {status}): {message}"
    assert graphql_paths(canned) == [GRAPHQL_PATH] * attempts


@pytest.mark.parametrize("status", [200, 400, 500])
def test_errors_are_api_error_at_any_status(canned: CannedSandbox, status: int) -> None:
    body = b'{"errors": [{"message": "first"}, {"message": "second"}], "data": null}'
    canned.canned = HttpResponse(status, JSON, body)
    with (
        FreePBXClient(settings_for(canned)) as client,
        pytest.raises(ApiError) as caught,
    ):
        client.query("fetchNeedReload", FETCH_NEED_RELOAD, {})
    assert caught.value.server_message == "first"
    assert caught.value.http_status == status
    assert graphql_paths(canned) == [GRAPHQL_PATH]


def test_empty_errors_list_returns_data(canned: CannedSandbox) -> None:
    canned.canned = HttpResponse(200, JSON, b'{"data": {"a": 1}, "errors": []}')
    with FreePBXClient(settings_for(canned)) as client:
        data = client.query("fetchNeedReload", FETCH_NEED_RELOAD, {})
    assert data == {"a": 1}


def test_body_decoded_as_utf8_without_charset(canned: CannedSandbox) -> None:
    body = '{"data": {"name": "José Álvarez"}}'.encode()
    canned.canned = HttpResponse(200, (), body)
    with FreePBXClient(settings_for(canned)) as client:
        data = client.query("fetchNeedReload", FETCH_NEED_RELOAD, {})
    assert data == {"name": "José Álvarez"}


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=ISO-8859-1",
        "application/json; charset=windows-1252",
        'application/json; charset="latin1"',
    ],
)
def test_body_decoded_with_declared_charset(
    canned: CannedSandbox, content_type: str
) -> None:
    body = '{"data": {"name": "José Álvarez"}}'.encode("latin-1")
    canned.canned = HttpResponse(200, (("Content-Type", content_type),), body)
    with FreePBXClient(settings_for(canned)) as client:
        data = client.query("fetchNeedReload", FETCH_NEED_RELOAD, {})
    assert data == {"name": "José Álvarez"}


def test_body_with_unknown_charset_read_as_utf8(canned: CannedSandbox) -> None:
    body = '{"data": {"name": "José Álvarez"}}'.encode()
    headers = (("Content-Type", "application/json; charset=x-unknown"),)
    canned.canned = HttpResponse(200, headers, body)
    with FreePBXClient(settings_for(canned)) as client:
        data = client.query("fetchNeedReload", FETCH_NEED_RELOAD, {})
    assert data == {"name": "José Álvarez"}


def test_redirect_not_followed(canned: CannedSandbox) -> None:
    location = (("Location", "/elsewhere/admin/api/api/gql"),)
    canned.canned = HttpResponse(302, location + HTML, b"<h1>Found</h1>")
    with (
        FreePBXClient(settings_for(canned)) as client,
        pytest.raises(ApiError) as caught,
    ):
        client.query("fetchNeedReload", FETCH_NEED_RELOAD, {})
    assert str(caught.value) == (
        f"fetchNeedReload failed (HTTP 302): the request was redirected to "
        f"{canned.url}/elsewhere/admin/api/api/gql and not resent; set FREEPBX_URL "
        "to the base URL of that address"
    )
    assert graphql_paths(canned) == [GRAPHQL_PATH]


class TokenSandbox(SandboxServer):
    """The sandbox, issuing `access_token` from its token endpoint."""

    access_token = ""

    def _route(self, request: HttpRequest) -> HttpResponse:
        if request.path == TOKEN_PATH:
            body = {"access_token": self.access_token, "token_type": "Bearer"}
            return HttpResponse(200, JSON, json.dumps(body).encode())
        return super()._route(request)


@pytest.mark.parametrize(
    "token", ["token-1234\r\nX-Injected: yes", "token-1234 abc", "token-€-1234"]
)
def test_invalid_access_token_is_token_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    with TokenSandbox(tmp_path / "pbx.sqlite3") as server:
        server.access_token = token
        monkeypatch.setenv("FREEPBX_URL", server.url)
        monkeypatch.setenv("FREEPBX_CLIENT_ID", server.client_id)
        monkeypatch.setenv("FREEPBX_CLIENT_SECRET", server.client_secret)
        result = run_cli("plan", "-f", str(EXAMPLE), "--allow-http")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: token request to {server.url}{TOKEN_PATH} failed: the access "
        "token is invalid, because it contains characters that a bearer token "
        "cannot contain; check the FreePBX API module and its logs"
    )
    assert "token-1234" not in result.stdout + result.stderr
    assert [record.path for record in server.requests] == [TOKEN_PATH]


def test_echoed_secret_masked_in_debug_traceback(
    canned: CannedSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = f"invalid request from {canned.client_secret}"
    body = {"errors": [{"message": message}], "data": None}
    canned.canned = HttpResponse(200, JSON, json.dumps(body).encode())
    monkeypatch.setenv("FREEPBX_URL", canned.url)
    monkeypatch.setenv("FREEPBX_CLIENT_ID", canned.client_id)
    monkeypatch.setenv("FREEPBX_CLIENT_SECRET", canned.client_secret)
    result = run_cli("plan", "-f", str(EXAMPLE), "--allow-http", "--debug")
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "invalid request from ***" in result.stderr
    assert canned.client_secret not in result.stdout + result.stderr


class TokenRedirectSandbox(SandboxServer):
    """The sandbox, redirecting every token request to `location`."""

    location = TOKEN_PATH

    def _route(self, request: HttpRequest) -> HttpResponse:
        if request.path == TOKEN_PATH:
            return HttpResponse(307, (("Location", self.location),), b"")
        return super()._route(request)


def failed_token_request(server: SandboxServer) -> tuple[str, list[str]]:
    """Request a token that fails; return the error and the paths requested."""
    with (
        FreePBXClient(settings_for(server)) as client,
        pytest.raises(TokenError) as caught,
    ):
        client.fetch_token()
    return str(caught.value), [record.path for record in server.requests]


def test_token_redirect_not_followed(tmp_path: Path) -> None:
    with TokenRedirectSandbox(tmp_path / "pbx.sqlite3") as server:
        server.location = "https://pbx.example/admin/api/api/token"
        message, paths = failed_token_request(server)
    assert message == (
        f"token request to {server.url}{TOKEN_PATH} failed: the request was "
        "redirected to https://pbx.example/admin/api/api/token and not resent; "
        "set FREEPBX_URL to the base URL of that address"
    )
    assert paths == [TOKEN_PATH]


@pytest.mark.parametrize(
    "location", ["http://[::1/x", "http://127.0.0.1:99999/x", "/x\x1b[31m"]
)
def test_redirect_to_invalid_address(canned: CannedSandbox, location: str) -> None:
    canned.canned = HttpResponse(302, (("Location", location), *HTML), b"")
    with (
        FreePBXClient(settings_for(canned)) as client,
        pytest.raises(ApiError) as caught,
    ):
        client.query("fetchNeedReload", FETCH_NEED_RELOAD, {})
    assert str(caught.value) == (
        "fetchNeedReload failed (HTTP 302): the answer redirects to an "
        "invalid address; set FREEPBX_URL to the base URL that the PBX serves "
        "without redirecting"
    )
    assert graphql_paths(canned) == [GRAPHQL_PATH]


def test_token_redirect_to_invalid_address(tmp_path: Path) -> None:
    with TokenRedirectSandbox(tmp_path / "pbx.sqlite3") as server:
        server.location = "http://[::1/x"
        message, paths = failed_token_request(server)
    assert message == (
        f"token request to {server.url}{TOKEN_PATH} failed: the answer redirects "
        "to an invalid address; set FREEPBX_URL to the base URL that the PBX "
        "serves without redirecting"
    )
    assert paths == [TOKEN_PATH]


@pytest.mark.parametrize(
    ("variable", "value", "name"),
    [
        ("FREEPBX_CLIENT_ID", "cl€nt", "FREEPBX_CLIENT_ID (--client-id)"),
        ("FREEPBX_CLIENT_ID", "client:1", "FREEPBX_CLIENT_ID (--client-id)"),
        ("FREEPBX_CLIENT_SECRET", "secret\nline", "FREEPBX_CLIENT_SECRET"),
        ("FREEPBX_CLIENT_SECRET", "secret value", "FREEPBX_CLIENT_SECRET"),
    ],
)
def test_unusable_client_credential_rejected(
    pbx_env: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    name: str,
) -> None:
    monkeypatch.setenv(variable, value)
    result = run_cli("plan", "-f", str(EXAMPLE), "--allow-http")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith(
        f"Error: {name} contains a space, a control character or a character "
        "outside ASCII; it takes letters, digits and ASCII punctuation"
    )
    assert value not in result.stdout + result.stderr
    assert pbx_env.requests == []


def test_gzip_body_decoded(canned: CannedSandbox) -> None:
    body = gzip.compress(b'{"data": {"status": true}}')
    canned.canned = HttpResponse(200, (*JSON, ("Content-Encoding", "gzip")), body)
    with FreePBXClient(settings_for(canned)) as client:
        data = client.query("fetchNeedReload", FETCH_NEED_RELOAD, {})
    assert data == {"status": True}


def test_corrupt_gzip_body_is_no_answer(canned: CannedSandbox) -> None:
    body = gzip.compress(b'{"data": {"status": true}}')[:-12]
    canned.canned = HttpResponse(200, (*JSON, ("Content-Encoding", "gzip")), body)
    with (
        FreePBXClient(settings_for(canned)) as client,
        pytest.raises(OutcomeUnknown) as caught,
    ):
        client.query("fetchNeedReload", FETCH_NEED_RELOAD, {})
    assert str(caught.value) == (
        f"fetchNeedReload: no answer from {canned.url}{GRAPHQL_PATH}: the "
        "answer's gzip encoding is corrupt"
    )
    assert graphql_paths(canned) == [GRAPHQL_PATH] * 3


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_body_over_maximum_not_read(
    canned: CannedSandbox, monkeypatch: pytest.MonkeyPatch, encoding: str
) -> None:
    monkeypatch.setattr("reconciler.transport.MAX_BODY_BYTES", 1000)
    body = json.dumps({"data": {"names": ["x" * 100] * 20}}).encode()
    headers: tuple[tuple[str, str], ...] = JSON
    if encoding == "gzip":
        body = gzip.compress(body)
        headers = (*JSON, ("Content-Encoding", "gzip"))
        assert len(body) < 1000
    canned.canned = HttpResponse(200, headers, body)
    with (
        FreePBXClient(settings_for(canned)) as client,
        pytest.raises(OutcomeUnknown) as caught,
    ):
        client.mutate("doreload", "mutation { doreload }", {})
    assert str(caught.value) == (
        f"doreload: no answer from {canned.url}{GRAPHQL_PATH}: the answer is "
        "larger than 1,000 bytes, the maximum read"
    )


class CookieSandbox(SandboxServer):
    """The sandbox behind a load balancer that sets a cookie on each response."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cookies_received: list[str | None] = []

    def handle(self, request: HttpRequest) -> HttpResponse:
        self.cookies_received.append(request.header("Cookie"))
        response = super().handle(request)
        cookie = ("Set-Cookie", "balancer=node-2; Path=/; HttpOnly")
        return replace(response, headers=(*response.headers, cookie))


def test_cookies_sent_back(tmp_path: Path) -> None:
    with (
        CookieSandbox(tmp_path / "pbx.sqlite3") as server,
        FreePBXClient(settings_for(server)) as client,
    ):
        client.query("fetchNeedReload", FETCH_NEED_RELOAD, {})
        client.query("fetchNeedReload", FETCH_NEED_RELOAD, {})
    assert server.cookies_received == [None, "balancer=node-2", "balancer=node-2"]
