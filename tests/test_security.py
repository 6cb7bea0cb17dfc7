"""TLS verification, plain HTTP, secrets in output, and hostile names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import CliResult, TlsFiles, operations, run_cli, write_yaml

from reconciler import pbx as freepbx
from reconciler.client import FreePBXClient
from reconciler.errors import ReconcilerError
from reconciler.models import LiveState
from reconciler.sandbox.faults import Faults, Selector
from reconciler.sandbox.server import SandboxServer
from reconciler.settings import ConnectionSettings

THREE = """version: 1
extensions:
  - {extension: "4001", name: Ann Arbor, email: ann@example.com}
  - {extension: "4002", name: Bob Baker, email: bob@example.com}
  - extension: "4003"
    name: Cid Cole
    email: cid@example.com
    voicemail: {pin: {env: RECONCILER_SECRET_PIN_4003}}
    user_manager: {password: {env: RECONCILER_SECRET_PASSWORD_4003}}
"""
ENV_PIN = "7391648"
ENV_PASSWORD = "Zq8unique4003Passwd"


def plan(path: Path, *extra: str) -> CliResult:
    return run_cli("plan", "-f", str(path), "--allow-http", *extra)


def apply(path: Path, *extra: str) -> CliResult:
    return run_cli("apply", "-f", str(path), "--allow-http", "--yes", *extra)


def read_live(server: SandboxServer) -> LiveState:
    settings = ConnectionSettings(server.url, server.client_id, server.client_secret)
    with FreePBXClient(settings) as client:
        return freepbx.read_live_state(client)


# --- TLS and plain HTTP ---------------------------------------------------------


def test_tls_verified_by_default(https_pbx: SandboxServer, tmp_path: Path) -> None:
    assert https_pbx.url.startswith("https://127.0.0.1:")
    result = run_cli("plan", "-f", str(write_yaml(tmp_path, THREE)))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: token request to {https_pbx.url}/admin/api/api/token failed: TLS "
        "certificate verification failed (pass --ca-bundle for a private CA)"
    )
    # The handshake failed, so no HTTP request reached the sandbox.
    assert https_pbx.requests == []


def test_tls_host_name_mismatch_reported(
    https_pbx: SandboxServer, tmp_path: Path, tls_files: TlsFiles
) -> None:
    # The certificate names 127.0.0.1 only, so "localhost" does not match it.
    url = https_pbx.url.replace("127.0.0.1", "localhost")
    path = write_yaml(tmp_path, THREE)
    result = run_cli(
        "plan", "-f", str(path), "--url", url, "--ca-bundle", str(tls_files.ca)
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: token request to {url}/admin/api/api/token failed: TLS certificate "
        "does not match the host name of the URL; use the name or address the "
        "certificate was issued for"
    )


def test_https_to_plain_server_reported(pbx_env: SandboxServer, tmp_path: Path) -> None:
    url = pbx_env.url.replace("http://", "https://")
    result = run_cli("plan", "-f", str(write_yaml(tmp_path, THREE)), "--url", url)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: token request to {url}/admin/api/api/token failed: the server "
        "closed the connection during the TLS handshake; check that it serves "
        "HTTPS on this port, or use http:// with --allow-http if it serves plain "
        "HTTP"
    )


def test_ca_bundle_not_pem_reported(https_pbx: SandboxServer, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.txt"
    bundle.write_text("not a certificate\n", encoding="utf-8")
    path = write_yaml(tmp_path, THREE)
    result = run_cli("plan", "-f", str(path), "--ca-bundle", str(bundle), "--debug")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].endswith(
        "failed: the CA bundle (--ca-bundle, FREEPBX_CA_BUNDLE) holds no usable "
        "certificate; give a PEM file of CA certificates"
    )
    # --debug shows the library's own reason.
    assert "cannot connect: SSLError: " in result.stderr
    assert "NO_CERTIFICATE_OR_CRL_FOUND" in result.stderr


def test_ca_bundle_trusts_private_ca(
    https_pbx: SandboxServer, tmp_path: Path, tls_files: TlsFiles
) -> None:
    path = write_yaml(tmp_path, THREE)
    result = run_cli("plan", "-f", str(path), "--ca-bundle", str(tls_files.ca))
    assert result.exit_code == 0, result.stderr
    assert "Plan: 3 to create" in result.stdout
    assert "WARNING" not in result.stderr
    assert operations(https_pbx) == ["token", "fetchAllExtensions"]


def test_ca_bundle_from_environment(
    https_pbx: SandboxServer,
    tmp_path: Path,
    tls_files: TlsFiles,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FREEPBX_CA_BUNDLE", str(tls_files.ca))
    result = run_cli("plan", "-f", str(write_yaml(tmp_path, THREE)))
    assert result.exit_code == 0, result.stderr


def test_plain_http_needs_flag(pbx_env: SandboxServer, tmp_path: Path) -> None:
    path = write_yaml(tmp_path, THREE)
    refused = run_cli("plan", "-f", str(path))
    assert refused.exit_code == 1
    assert "refusing plain http:// URL" in refused.stderr
    assert pbx_env.requests == []

    allowed = plan(path)
    assert allowed.exit_code == 0
    assert (
        "WARNING reconciler: using plain http://: the client secret and token are "
        "not encrypted"
    ) in allowed.stderr


# --- secrets --------------------------------------------------------------------


def test_no_secret_in_any_output(
    pbx_env: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILER_SECRET_PIN_4003", ENV_PIN)
    monkeypatch.setenv("RECONCILER_SECRET_PASSWORD_4003", ENV_PASSWORD)
    monkeypatch.setattr("reconciler.client.READ_BACKOFF_SECONDS", 0.01)
    path = write_yaml(tmp_path, THREE)
    texts: list[tuple[str, str]] = []

    def keep(label: str, result: CliResult) -> CliResult:
        texts.append((f"{label} stdout", result.stdout))
        texts.append((f"{label} stderr", result.stderr))
        return result

    keep("validate", run_cli("validate", "-f", str(path)))
    for output_format in ("text", "json", "markdown"):
        keep(output_format, plan(path, "--format", output_format, "--debug"))
    plan_file = tmp_path / "saved-plan.json"
    keep("plan --out", plan(path, "--out", str(plan_file), "--debug"))
    texts.append(("plan file", plan_file.read_text(encoding="utf-8")))

    # An apply through faults: a lost response, a truncated one, a short token.
    pbx_env.faults = Faults(
        reset_after_on=(Selector.parse("addExtension:2"),),
        truncate_on=(Selector.parse("addExtension:3"),),
        token_lifetime_seconds=0.3,
        latency_ms=60,
    )
    credentials = tmp_path / "new-hires.csv"
    applied = keep(
        "apply",
        apply(path, "--credentials-out", str(credentials), "--debug"),
    )
    assert applied.exit_code == 0, applied.stdout + applied.stderr
    pbx_env.faults = Faults()

    if run_cli("export", "--help").exit_code == 0:
        keep("export", run_cli("export", "--allow-http", "--debug"))
    keep("plan after", plan(path, "--debug"))
    keep("faulted plan", _faulted_plan(pbx_env, path))

    wrong_secret = "wrong-secret-0123456789abcdef"
    monkeypatch.setenv("FREEPBX_CLIENT_SECRET", wrong_secret)
    wrong = keep("wrong secret", plan(path, "--debug"))
    assert wrong.exit_code == 1
    texts += _exception_texts(pbx_env, wrong_secret)

    secrets = _secrets(pbx_env, credentials, wrong_secret)
    assert len(pbx_env.issued_tokens) >= 8
    leaks = [
        (kind, label)
        for kind, secret in secrets
        for label, text in texts
        if secret in text
    ]
    assert leaks == []


def _faulted_plan(server: SandboxServer, path: Path) -> CliResult:
    server.faults = Faults(token_lifetime_seconds=0)
    try:
        result = plan(path, "--debug")
    finally:
        server.faults = Faults()
    assert result.exit_code == 1
    return result


def _exception_texts(server: SandboxServer, wrong_secret: str) -> list[tuple[str, str]]:
    texts = []
    settings = ConnectionSettings(server.url, server.client_id, wrong_secret)
    with FreePBXClient(settings) as client:
        try:
            client.fetch_token()
        except ReconcilerError as error:
            texts.append(("token exception", f"{error!s} {error!r}"))
    good = ConnectionSettings(server.url, server.client_id, server.client_secret)
    texts.append(("settings repr", repr(good)))
    with FreePBXClient(good) as client:
        try:
            client.query("noSuchField", "query { noSuchField }", {})
        except ReconcilerError as error:
            texts.append(("query exception", f"{error!s} {error!r}"))
    assert len(texts) == 3
    return texts


def _secrets(
    server: SandboxServer, credentials: Path, wrong_secret: str
) -> list[tuple[str, str]]:
    secrets = [
        ("client secret", server.client_secret),
        ("wrong client secret", wrong_secret),
        ("PIN from the environment", ENV_PIN),
        ("password from the environment", ENV_PASSWORD),
    ]
    secrets += [("access token", token) for token in server.issued_tokens]
    rows = credentials.read_text(encoding="utf-8").splitlines()[1:]
    assert len(rows) == 3
    for row in rows:
        fields = row.split(",")
        secrets.append((f"PIN of {fields[0]}", fields[3]))
        secrets.append((f"password of {fields[0]}", fields[5]))
    assert all(secret for _, secret in secrets)
    return secrets


def test_credentials_file_not_through_symlink(
    pbx_env: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A planted link must not make apply write the secrets somewhere else.
    monkeypatch.setenv("RECONCILER_SECRET_PIN_4003", ENV_PIN)
    monkeypatch.setenv("RECONCILER_SECRET_PASSWORD_4003", ENV_PASSWORD)
    target = tmp_path / "elsewhere.csv"
    link = tmp_path / "new-hires.csv"
    link.symlink_to(target)
    result = apply(write_yaml(tmp_path, THREE), "--credentials-out", str(link))
    assert result.exit_code == 1
    assert f"credentials file {link} already exists" in result.stderr
    assert not target.exists()
    assert "addExtension" not in operations(pbx_env)


# --- hostile names --------------------------------------------------------------

HOSTILE_NAMES = {
    "5001": 'Quote "Q" Name',
    "5002": "Brace {x} }{ {{name}}",
    "5003": "Back\\slash \\n \\u0041 \\",
    "5004": '"}) { x',
    "5005": "Emoji 🎉 Zoë 🇩🇪",
    "5006": "O'Brien $var #1 %s ${HOME}",
    "5007": 'mutation { deleteExtension(input: {id: "1"}) }',
}


def test_hostile_names_stored_byte_exact(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    entries = [
        f"  - {{extension: {json.dumps(number)}, name: "
        f"{json.dumps(name, ensure_ascii=False)}, email: n{number}@example.com}}"
        for number, name in HOSTILE_NAMES.items()
    ]
    path = write_yaml(tmp_path, "version: 1\nextensions:\n" + "\n".join(entries))
    result = apply(path)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "Apply: 7 created" in result.stdout

    live = read_live(pbx_env).by_number()
    for number, name in HOSTILE_NAMES.items():
        assert live[number].name == name
        assert live[number].description == name
    again = plan(path, "--detailed-exitcode")
    assert again.exit_code == 0, again.stdout
