"""plan and apply through the real CLI against the sandbox PBX over HTTP."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import operations, run_cli, write_yaml

from reconciler.sandbox.server import SandboxServer

EXAMPLE = Path(__file__).parent.parent / "extensions.yaml"
SCHEMA_DIR = Path(__file__).parent.parent / "schema"

TWO = """version: 1
extensions:
  - {extension: "4001", name: Zoë Ørsted, email: zoe@example.com}
  - {extension: "4002", name: Bob <Builder>, email: bob@example.com, voicemail: false}
"""


def plan(path: Path, *extra: str) -> tuple[int, str, str]:
    result = run_cli("plan", "-f", str(path), "--allow-http", *extra)
    return result.exit_code, result.stdout, result.stderr


def apply(path: Path, *extra: str) -> tuple[int, str, str]:
    result = run_cli("apply", "-f", str(path), "--allow-http", "--yes", *extra)
    return result.exit_code, result.stdout, result.stderr


def test_plan_lists_creates_on_empty_pbx(pbx_env: SandboxServer) -> None:
    code, out, err = plan(EXAMPLE, "--detailed-exitcode")
    assert code == 2, err
    assert "Create (13):" in out
    assert "  + 4001  Zoë Ørsted" in out
    assert "      email: zoe.orsted@nordlicht.example" in out
    assert "      voicemail: on, PIN random" in out
    assert out.count("Not compared:") == 1
    assert out.rstrip().endswith(
        "Plan: 13 to create, 0 drifted, 0 unmanaged, 0 in sync."
    )
    assert operations(pbx_env) == ["token", "fetchAllExtensions"]


def test_plan_creates_in_number_order(pbx_env: SandboxServer) -> None:
    _, out, _ = plan(EXAMPLE)
    numbers = [line.split()[1] for line in out.splitlines() if line.startswith("  + ")]
    assert numbers == ["0212", *[str(n) for n in range(4001, 4013)]]


def test_apply_creates_then_nothing_to_do(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    code, out, err = apply(EXAMPLE)
    assert code == 0, out + err
    assert "Apply: 13 created, 0 already present, 0 failed, 0 not attempted; " in out
    assert "apply config executed" in out
    ops = operations(pbx_env)
    assert ops.count("token") == 1
    assert ops.count("addExtension") == 13
    assert ops.count("doreload") == 1
    assert ops.count("fetchAllExtensions") == 2  # the read before and the verification

    code, out, _ = plan(EXAMPLE, "--detailed-exitcode")
    assert code == 0
    assert "Nothing to create" in out
    assert "Plan: 0 to create, 0 drifted, 0 unmanaged, 13 in sync." in out


def test_second_apply_sends_no_write(pbx_env: SandboxServer) -> None:
    apply(EXAMPLE)
    before = len(pbx_env.requests)
    code, out, _ = apply(EXAMPLE)
    later = operations(pbx_env)[before:]
    assert code == 0
    assert "Nothing to create; apply config not needed." in out
    # fetchNeedReload tells whether an earlier run left apply config to do.
    assert later == ["token", "fetchAllExtensions", "fetchNeedReload"]


def test_plan_reports_drift_and_unmanaged(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    apply(write_yaml(tmp_path, TWO))
    changed = write_yaml(
        tmp_path,
        """version: 1
extensions:
  - {extension: "4001", name: Zoë Orsted, email: zoe@example.com, voicemail: false}
""",
        name="changed.yaml",
    )
    code, out, _ = plan(changed, "--detailed-exitcode")
    assert code == 2
    assert "Drift (1):" in out
    assert "  ~ 4001  Zoë Orsted" in out
    assert '      name: live "Zoë Ørsted", file "Zoë Orsted"' in out
    assert "      voicemail: live on, file off" in out
    assert "Drift is reported only" in out
    assert "Unmanaged (1, on the PBX but not in the file; left alone):" in out
    assert "  ? 4002  Bob (Builder)" in out
    assert "Plan: 0 to create, 1 drifted, 1 unmanaged, 0 in sync." in out


def test_angle_brackets_in_name_not_drift(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    path = write_yaml(tmp_path, TWO)
    apply(path)
    code, out, _ = plan(path, "--detailed-exitcode")
    assert code == 0, out


def test_apply_without_yes_needs_terminal(pbx_env: SandboxServer) -> None:
    result = run_cli("apply", "-f", str(EXAMPLE), "--allow-http")
    assert result.exit_code == 1
    assert "apply needs --yes" in result.stderr
    assert pbx_env.requests == []


def test_invalid_file_sends_nothing(pbx_env: SandboxServer, tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "version: 1\nextensions:\n  - {extension: 0212}\n")
    for command in (["plan"], ["apply", "--yes"]):
        result = run_cli(*command, "-f", str(path), "--allow-http")
        assert result.exit_code == 1
        assert "reads 0212 as an octal number 138" in result.stderr
        assert (
            f"{path}:3:5: extensions[0]: missing required key 'name'" in result.stderr
        )
    assert pbx_env.requests == []


def test_http_url_refused_without_flag(pbx_env: SandboxServer) -> None:
    result = run_cli("plan", "-f", str(EXAMPLE))
    assert result.exit_code == 1
    assert "refusing plain http:// URL" in result.stderr
    assert "--allow-http" in result.stderr
    assert pbx_env.requests == []


def test_failed_item_does_not_stop_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FreePBX 17 rejects tech sip when Asterisk runs chan_pjsip.
    with SandboxServer(
        tmp_path / "pbx.sqlite3", freepbx_version=17, reload_seconds=0.2
    ) as server:
        monkeypatch.setenv("FREEPBX_URL", server.url)
        monkeypatch.setenv("FREEPBX_CLIENT_ID", server.client_id)
        monkeypatch.setenv("FREEPBX_CLIENT_SECRET", server.client_secret)
        path = write_yaml(
            tmp_path,
            """version: 1
extensions:
  - {extension: "101", name: Ann, email: ann@example.com}
  - {extension: "102", name: Old Phone, email: old@example.com, tech: sip}
  - {extension: "103", name: Cid, email: cid@example.com}
""",
        )
        code, out, _ = apply(path)
        ops = operations(server)
    assert code == 1
    assert (
        "[2/3] 102 Old Phone: failed (The installed version of Asterisk does not "
        "support chan_sip. Please use pjsip instead)" in out
    )
    assert "[3/3] 103 Cid: created" in out
    assert "Failed (1):" in out
    assert "Apply: 2 created, 0 already present, 1 failed, 0 not attempted;" in out
    assert ops.count("addExtension") == 3
    assert ops.count("doreload") == 1


def test_credentials_file_mode_and_content(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    target = tmp_path / "new-hires.csv"
    code, out, err = apply(write_yaml(tmp_path, TWO), "--credentials-out", str(target))
    assert code == 0, out + err
    assert target.stat().st_mode & 0o777 == 0o600
    rows = target.read_text(encoding="utf-8").splitlines()
    assert rows[0] == (
        "extension,name,email,voicemail_pin,user_manager_username,"
        "user_manager_password,status"
    )
    assert len(rows) == 3
    fields = rows[1].split(",")
    assert fields[0] == "4001"
    assert fields[6] == "created"
    assert fields[3].isdigit()
    assert len(fields[3]) == 6
    assert len(fields[5]) == 20
    assert fields[3] not in out + err
    assert fields[5] not in out + err


def test_credentials_file_never_overwritten(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    target = tmp_path / "new-hires.csv"
    target.write_text("keep me\n", encoding="utf-8")
    code, _, err = apply(write_yaml(tmp_path, TWO), "--credentials-out", str(target))
    assert code == 1
    assert "already exists" in err
    assert target.read_text(encoding="utf-8") == "keep me\n"
    assert "addExtension" not in operations(pbx_env)


def test_max_creates_guard(pbx_env: SandboxServer) -> None:
    code, _, err = apply(EXAMPLE, "--max-creates", "5")
    assert code == 1
    assert "the plan creates 13 extensions, more than 5 (--max-creates)" in err
    assert "addExtension" not in operations(pbx_env)


def test_env_secret_missing_stops_before_writes(
    pbx_env: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RECONCILER_SECRET_PIN_4001", raising=False)
    path = write_yaml(
        tmp_path,
        """version: 1
extensions:
  - extension: "4001"
    name: Ann
    email: ann@example.com
    voicemail: {pin: {env: RECONCILER_SECRET_PIN_4001}}
""",
    )
    code, _, err = apply(path)
    assert code == 1
    assert (
        "extension 4001: the voicemail PIN comes from $RECONCILER_SECRET_PIN_4001, "
        "which is not set" in err
    )
    assert "addExtension" not in operations(pbx_env)


def test_sandbox_flag_runs_in_working_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(EXAMPLE, tmp_path / "extensions.yaml")
    shutil.copytree(SCHEMA_DIR, tmp_path / "schema")
    monkeypatch.chdir(tmp_path)
    first = run_cli("apply", "--sandbox", "--yes")
    assert first.exit_code == 0, first.stdout + first.stderr
    second = run_cli("plan", "--sandbox", "--detailed-exitcode")
    assert second.exit_code == 0
    assert "13 in sync" in second.stdout
    assert (tmp_path / ".reconciler-sandbox.sqlite3").exists()


def test_live_control_characters_escaped(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    # A name edited in FreePBX's web interface must not forge lines in a CI log.
    from reconciler import pbx as freepbx
    from reconciler.client import FreePBXClient
    from reconciler.models import DesiredExtension
    from reconciler.settings import ConnectionSettings

    settings = ConnectionSettings(
        url=pbx_env.url,
        client_id=pbx_env.client_id,
        client_secret=pbx_env.client_secret,
    )
    hostile = DesiredExtension(
        extension="9000",
        name="Evil\x1b]0;pwned\x07\nPlan: 0 to create",
        email="e@example.com",
        voicemail=False,
        user_manager=False,
    )
    secrets = freepbx.ExtensionSecrets(voicemail_pin=None, user_manager_password=None)
    with FreePBXClient(settings) as client:
        freepbx.add_extension(client, hostile, secrets)
    for output_format in ("text", "markdown"):
        result = run_cli(
            "plan", "-f", str(EXAMPLE), "--allow-http", "--format", output_format
        )
        assert "\x1b" not in result.stdout
        assert "\x07" not in result.stdout
        assert "\nPlan: 0 to create" not in result.stdout
    text = run_cli("plan", "-f", str(EXAMPLE), "--allow-http").stdout
    assert "  ? 9000  Evil\\u001b]0;pwned\\u0007\\u000aPlan: 0 to create" in text
