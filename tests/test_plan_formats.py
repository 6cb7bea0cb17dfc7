"""plan --format json|markdown, and saved plans applied with apply PLAN_FILE."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import operations, run_cli, write_yaml

from reconciler.sandbox.server import SandboxServer

FILE = """version: 1
extensions:
  - {extension: "4001", name: Zoë Ørsted, email: zoe@example.com}
  - {extension: "4002", name: "Pipe | Star *", email: p@example.com, voicemail: false}
"""


def test_json_plan_structure(pbx_env: SandboxServer, tmp_path: Path) -> None:
    path = write_yaml(tmp_path, FILE)
    result = run_cli("plan", "-f", str(path), "--allow-http", "--format", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["format_version"] == 1
    assert document["summary"] == {
        "create": 2,
        "drift": 0,
        "unmanaged": 0,
        "in_sync": 0,
        "duplicates": 0,
    }
    first = document["creates"][0]
    assert first["extension"] == "4001"
    assert first["name"] == "Zoë Ørsted"
    assert first["voicemail"] == {"enabled": True, "pin": "random"}
    assert first["user_manager"] == {
        "enabled": True,
        "groups": [],
        "password": "random",
    }
    assert document["drift"] == []
    assert "email" in document["not_compared"]


def test_json_plan_drift_values(pbx_env: SandboxServer, tmp_path: Path) -> None:
    path = write_yaml(tmp_path, FILE)
    run_cli("apply", "-f", str(path), "--allow-http", "--yes")
    renamed = write_yaml(tmp_path, FILE.replace("Zoë Ørsted", "Zoe Orsted"), "b.yaml")
    result = run_cli("plan", "-f", str(renamed), "--allow-http", "--format", "json")
    document = json.loads(result.stdout)
    assert document["drift"] == [
        {
            "extension": "4001",
            "name": "Zoe Orsted",
            "fields": [
                {"field": "name", "live": "Zoë Ørsted", "desired": "Zoe Orsted"}
            ],
        }
    ]
    assert document["summary"]["in_sync"] == 1


def test_markdown_plan_table(pbx_env: SandboxServer, tmp_path: Path) -> None:
    path = write_yaml(tmp_path, FILE)
    result = run_cli("plan", "-f", str(path), "--allow-http", "--format", "markdown")
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "#### reconciler plan: 2 to create, 0 drifted, 0 unmanaged, 0 in sync"
    )
    assert "| action | extension | name | details |" in lines
    assert (
        "| create | 4001 | Zoë Ørsted | zoe@example.com, pjsip, voicemail on, "
        "user manager on |" in lines
    )
    assert any(
        line.startswith("| create | 4002 | Pipe \\| Star \\* |") for line in lines
    )


def test_text_plan_has_no_colour_off_terminal(pbx_env: SandboxServer) -> None:
    result = run_cli(
        "plan",
        "--allow-http",
        "-f",
        str(Path(__file__).parent.parent / "extensions.yaml"),
    )
    assert "\x1b[" not in result.stdout


def test_invalid_format_rejected(pbx_env: SandboxServer, tmp_path: Path) -> None:
    result = run_cli("plan", "-f", str(write_yaml(tmp_path, FILE)), "--format", "xml")
    assert result.exit_code == 1
    assert "invalid --format 'xml'; use text, json or markdown" in result.stderr
    assert pbx_env.requests == []


def test_saved_plan_applies(pbx_env: SandboxServer, tmp_path: Path) -> None:
    path = write_yaml(tmp_path, FILE)
    saved = tmp_path / "plan.json"
    made = run_cli("plan", "-f", str(path), "--allow-http", "--out", str(saved))
    assert made.exit_code == 0
    assert f"apply it with: reconciler apply {saved}" in made.stderr
    result = run_cli("apply", str(saved), "--allow-http", "--yes")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert operations(pbx_env).count("addExtension") == 2


def test_saved_plan_stale_file(pbx_env: SandboxServer, tmp_path: Path) -> None:
    path = write_yaml(tmp_path, FILE)
    saved = tmp_path / "plan.json"
    run_cli("plan", "-f", str(path), "--allow-http", "--out", str(saved))
    path.write_text(FILE + '  - {extension: "4003", name: Eve, email: e@example.com}\n')
    before = len(pbx_env.requests)
    result = run_cli("apply", str(saved), "--allow-http", "--yes")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: saved plan {saved} is stale: {path} changed since the plan was made; "
        "run reconciler plan --out again and have the new plan reviewed. "
        "Nothing was created"
    )
    assert len(pbx_env.requests) == before


def test_saved_plan_stale_pbx(pbx_env: SandboxServer, tmp_path: Path) -> None:
    path = write_yaml(tmp_path, FILE)
    saved = tmp_path / "plan.json"
    run_cli("plan", "-f", str(path), "--allow-http", "--out", str(saved))
    other = write_yaml(
        tmp_path,
        'version: 1\nextensions:\n  - {extension: "9", name: X, email: x@y.io}\n',
        "o.yaml",
    )
    run_cli("apply", "-f", str(other), "--allow-http", "--yes")
    result = run_cli("apply", str(saved), "--allow-http", "--yes")
    assert result.exit_code == 1
    assert "is stale: the extensions on" in result.stderr
    assert operations(pbx_env).count("addExtension") == 1


def test_saved_plan_not_a_plan(tmp_path: Path) -> None:
    bogus = tmp_path / "plan.json"
    bogus.write_text('{"hello": 1}', encoding="utf-8")
    result = run_cli("apply", str(bogus), "--yes")
    assert result.exit_code == 1
    assert f"{bogus} is not a saved plan" in result.stderr


def test_saved_plan_deeply_nested(tmp_path: Path) -> None:
    bogus = tmp_path / "plan.json"
    bogus.write_text("[" * 100_000, encoding="utf-8")
    result = run_cli("apply", str(bogus), "--yes")
    assert result.exit_code == 1
    assert f"cannot read saved plan {bogus}: its JSON nests too deeply" in result.stderr


def test_reload_timeout_not_a_number(pbx_env: SandboxServer, tmp_path: Path) -> None:
    path = write_yaml(tmp_path, FILE)
    for value in ("nan", "inf"):
        result = run_cli(
            "apply", "-f", str(path), "--allow-http", "--yes", "--reload-timeout", value
        )
        assert result.exit_code == 1
        assert "invalid --reload-timeout" in result.stderr
    assert pbx_env.requests == []


def test_sandbox_warns_about_ignored_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = write_yaml(tmp_path, FILE)
    result = run_cli(
        "plan", "--sandbox", "-f", str(path), "--url", "https://pbx.invalid"
    )
    assert result.exit_code == 0
    assert "--sandbox: ignoring the PBX URL https://pbx.invalid" in result.stderr


def test_saved_plan_fields_of_wrong_type(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    path = write_yaml(tmp_path, FILE)
    saved = tmp_path / "plan.json"
    run_cli("plan", "-f", str(path), "--allow-http", "--out", str(saved))
    good = json.loads(saved.read_text(encoding="utf-8"))
    cases = [
        ({"format_version": "1"}, 'has plan format "1"'),
        ({"format_version": True}, "has plan format true"),
        ({"desired_path": None}, "is incomplete or was edited"),
        ({"fingerprints": "x"}, "is incomplete or was edited"),
    ]
    for change, message in cases:
        saved.write_text(json.dumps({**good, **change}), encoding="utf-8")
        result = run_cli("apply", str(saved), "--allow-http", "--yes")
        assert result.exit_code == 1
        assert message in result.stderr
    assert "addExtension" not in operations(pbx_env)
