"""reconciler export through the real CLI against the sandbox PBX over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from conftest import operations, run_cli, write_yaml

from reconciler.sandbox.server import SandboxServer

# Names that YAML or FreePBX treat specially: quotes, &, <b>, emoji, accents,
# YAML keywords and indicators, and a number with a leading zero.
SPECIAL = """version: 1
extensions:
  - {extension: "0212", name: 'Night "Service"', email: n@example.com, voicemail: false}
  - {extension: "212", name: "- dash, {brace} [x] *star &amp", email: d@example.com}
  - extension: "4001"
    name: Tom & Jerry
    email: tom@example.com
    outbound_cid: '"T&J" <+4930123>'
  - {extension: "4002", name: "<b>Bold</b>", email: b@example.com,
     emergency_cid: "+4930112"}
  - {extension: "4003", name: "Zoë 🎉 Ørsted", email: zoe@example.com}
  - {extension: "4004", name: "yes", email: y@example.com}
  - {extension: "4005", name: "O'Brien: #1", email: o@example.com}
  - {extension: "4006", name: "José Álvarez", email: a@example.com, tech: sip}
"""
SPECIAL_NAMES = {
    "0212": 'Night "Service"',
    "212": "- dash, {brace} [x] *star &amp",
    "4001": "Tom & Jerry",
    "4002": "<b>Bold</b>",
    "4003": "Zoë 🎉 Ørsted",
    "4004": "yes",
    "4005": "O'Brien: #1",
    "4006": "José Álvarez",
}
EMAIL_COMMENT = (
    "    # email unknown: FreePBX shows it only to a token with rest:userman:read"
)


@pytest.fixture
def pbx17(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    """A sandbox FreePBX 17, its URL and credentials in the environment."""
    with SandboxServer(
        tmp_path / "pbx17.sqlite3", freepbx_version=17, reload_seconds=0.2
    ) as server:
        monkeypatch.setenv("FREEPBX_URL", server.url)
        monkeypatch.setenv("FREEPBX_CLIENT_ID", server.client_id)
        monkeypatch.setenv("FREEPBX_CLIENT_SECRET", server.client_secret)
        yield server


def apply(path: Path) -> None:
    result = run_cli("apply", "-f", str(path), "--allow-http", "--yes")
    assert result.exit_code == 0, result.stdout + result.stderr


def export(*extra: str) -> tuple[int, str, str]:
    result = run_cli("export", "--allow-http", *extra)
    return result.exit_code, result.stdout, result.stderr


def plan(path: Path) -> tuple[int, str, str]:
    result = run_cli("plan", "-f", str(path), "--allow-http", "--detailed-exitcode")
    return result.exit_code, result.stdout, result.stderr


def exported_names(path: Path) -> dict[str, str]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {entry["extension"]: entry["name"] for entry in document["extensions"]}


def test_export_round_trip_special_characters(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    apply(write_yaml(tmp_path, SPECIAL))
    target = tmp_path / "exported.yaml"

    code, out, err = export("-o", str(target))
    assert code == 0, err
    assert out == ""
    assert "Wrote 8 extensions to" in err
    assert exported_names(target) == SPECIAL_NAMES

    code, out, err = plan(target)
    assert code == 0, out + err
    assert "Plan: 0 to create, 0 drifted, 0 unmanaged, 8 in sync." in out


def test_export_keeps_readable_fields(pbx_env: SandboxServer, tmp_path: Path) -> None:
    apply(write_yaml(tmp_path, SPECIAL))
    target = tmp_path / "exported.yaml"
    export("-o", str(target))
    entries = {
        entry["extension"]: entry
        for entry in yaml.safe_load(target.read_text(encoding="utf-8"))["extensions"]
    }
    assert entries["0212"] == {
        "extension": "0212",
        "name": 'Night "Service"',
        "voicemail": False,
    }
    assert entries["4001"]["outbound_cid"] == '"T&J" <+4930123>'
    assert entries["4002"]["emergency_cid"] == "+4930112"
    assert entries["4006"]["tech"] == "sip"
    assert "tech" not in entries["4001"]
    assert entries["4001"]["voicemail"] is True


def test_export_writes_utf8_text_not_escapes(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    apply(write_yaml(tmp_path, SPECIAL))
    code, out, _ = export()
    assert code == 0
    assert '  - extension: "0212"\n' in out
    assert "    name: Zoë 🎉 Ørsted\n" in out
    assert "\\u" not in out
    assert "\\U" not in out


def test_export_numeric_order(pbx_env: SandboxServer, tmp_path: Path) -> None:
    apply(write_yaml(tmp_path, SPECIAL))
    _, out, _ = export()
    numbers = [
        line.split('"')[1] for line in out.splitlines() if "- extension:" in line
    ]
    assert numbers == ["0212", "212", "4001", "4002", "4003", "4004", "4005", "4006"]


def test_export_header_and_email_comment(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    apply(write_yaml(tmp_path, SPECIAL))
    before = len(pbx_env.requests)
    code, out, _ = export()
    lines = out.splitlines()
    assert code == 0
    assert lines[0].startswith("# FreePBX extensions, written by `reconciler export`")
    assert f"# PBX:      {pbx_env.url}" in lines
    assert any(line.startswith("# Exported: ") for line in lines)
    modeline = lines.index(
        "# yaml-language-server: $schema=schema/extensions.schema.json"
    )
    assert lines[modeline + 1] == "version: 1"
    assert lines.count(EMAIL_COMMENT) == 8
    assert operations(pbx_env)[before:] == ["token", "fetchAllExtensions"]


def test_export_freepbx17_decodes_names(pbx17: SandboxServer, tmp_path: Path) -> None:
    # FreePBX 17 rejects tech sip when Asterisk runs chan_pjsip.
    without_sip = SPECIAL.replace(", tech: sip", "")
    apply(write_yaml(tmp_path, without_sip))
    target = tmp_path / "exported.yaml"

    code, _, err = export("-o", str(target))
    assert code == 0, err
    assert exported_names(target) == SPECIAL_NAMES
    assert "&amp;" not in target.read_text(encoding="utf-8")

    code, out, err = plan(target)
    assert code == 0, out + err
    assert "Plan: 0 to create, 0 drifted, 0 unmanaged, 8 in sync." in out


def test_export_empty_pbx(pbx_env: SandboxServer, tmp_path: Path) -> None:
    target = tmp_path / "exported.yaml"
    code, _, err = export("-o", str(target))
    assert code == 0, err
    assert target.read_text(encoding="utf-8").endswith("\nextensions: []\n")
    result = run_cli("validate", "-f", str(target))
    assert result.exit_code == 0
    assert "valid, 0 extensions" in result.stdout


def test_export_rejects_existing_file(pbx_env: SandboxServer, tmp_path: Path) -> None:
    target = tmp_path / "extensions.yaml"
    target.write_text("keep me\n", encoding="utf-8")

    code, _, err = export("-o", str(target))
    assert code == 1
    assert f"{target} already exists; pass --force to overwrite it" in err
    assert target.read_text(encoding="utf-8") == "keep me\n"
    assert pbx_env.requests == []


def test_export_force_overwrites_keeping_mode(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    target = tmp_path / "extensions.yaml"
    target.write_text("old\n", encoding="utf-8")
    target.chmod(0o640)

    code, _, err = export("-o", str(target), "--force")
    assert code == 0, err
    assert "version: 1" in target.read_text(encoding="utf-8")
    assert target.stat().st_mode & 0o777 == 0o640
    assert list(tmp_path.glob(".extensions.yaml.*")) == []


def test_export_leaves_out_unrepresentable(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    # tech iax2 exists on FreePBX, but the file takes pjsip and sip only.
    add_raw(pbx_env, extensionId="5000", name="Fax", tech="iax2")
    add_raw(pbx_env, extensionId="5001", name="Desk")
    target = tmp_path / "exported.yaml"

    code, _, err = export("-o", str(target))
    assert code == 0, err
    assert 'Warning: left out extension "5000": tech "iax2" is not one' in err
    text = target.read_text(encoding="utf-8")
    assert '#   extension "5000": tech "iax2"' in text
    assert exported_names(target) == {"5001": "Desk"}

    code, out, _ = plan(target)
    assert code == 0
    assert "Plan: 0 to create, 0 drifted, 1 unmanaged, 1 in sync." in out


def add_raw(server: SandboxServer, **fields: Any) -> None:
    """Create an extension the way another FreePBX client would, over HTTP."""
    token = requests.post(
        server.url + "/admin/api/api/token",
        data={"grant_type": "client_credentials", "scope": "gql:core"},
        auth=(server.client_id, server.client_secret),
        timeout=10,
    ).json()["access_token"]
    response = requests.post(
        server.url + "/admin/api/api/gql",
        json={
            "query": "mutation ($input: addExtensionInput!) "
            "{ addExtension(input: $input) { status message } }",
            "variables": {"input": {"email": "x@example.com", **fields}},
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.json()["data"]["addExtension"]["status"] is True, response.text


def test_export_with_userman_scope_writes_emails(
    pbx_env: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scope = "gql:core gql:framework rest:userman:read"
    client_id, client_secret = pbx_env.add_application(scope)
    monkeypatch.setenv("FREEPBX_CLIENT_ID", client_id)
    monkeypatch.setenv("FREEPBX_CLIENT_SECRET", client_secret)
    monkeypatch.setenv("FREEPBX_SCOPE", scope)
    desired = write_yaml(
        tmp_path,
        """version: 1
extensions:
  - {extension: "4001", name: Zoë Ørsted, email: zoe@example.com}
  - {extension: "4002", name: Lobby, email: lobby@example.com, user_manager: false}
""",
    )
    apply(desired)
    target = tmp_path / "exported.yaml"
    code, _, err = export("-o", str(target))
    assert code == 0, err
    entries = yaml.safe_load(target.read_text(encoding="utf-8"))["extensions"]
    assert entries[0]["email"] == "zoe@example.com"
    assert entries[1]["user_manager"] is False
    assert "email" not in entries[1]
    code, out, _ = plan(target)
    assert code == 0, out
    assert "Email not checked" not in out
    assert "0 drifted" in out
