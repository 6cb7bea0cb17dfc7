"""plan and apply reject creating an extension whose entry has no email."""

from __future__ import annotations

from pathlib import Path

from conftest import operations, run_cli, write_yaml

from reconciler.sandbox.server import SandboxServer


def plan(path: Path) -> tuple[int, str, str]:
    result = run_cli("plan", "-f", str(path), "--allow-http", "--detailed-exitcode")
    return result.exit_code, result.stdout, result.stderr


def test_plan_rejects_create_without_email(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    path = write_yaml(
        tmp_path,
        """version: 1
extensions:
  - extension: "4001"
    name: Ann
""",
    )
    code, out, err = plan(path)
    assert code == 1
    assert "      email: missing (add email: to the entry)" in out
    assert (
        f"Error: cannot create extension 4001 (line 3) of {path}: a new extension "
        "needs an email" in err
    )

    result = run_cli("apply", "-f", str(path), "--allow-http", "--yes")
    assert result.exit_code == 1
    assert "cannot create extension 4001 (line 3)" in result.stderr
    assert "addExtension" not in operations(pbx_env)


def test_plan_out_not_saved_without_email(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    path = write_yaml(
        tmp_path, 'version: 1\nextensions:\n  - {extension: "7", name: A}\n'
    )
    saved = tmp_path / "plan.json"
    result = run_cli("plan", "-f", str(path), "--allow-http", "--out", str(saved))
    assert result.exit_code == 1
    assert not saved.exists()


def test_entry_without_email_in_sync(pbx_env: SandboxServer, tmp_path: Path) -> None:
    created = write_yaml(
        tmp_path,
        """version: 1
extensions:
  - {extension: "4003", name: "Zoë 🎉 Ørsted", email: zoe@example.com}
  - {extension: "4004", name: Ann, email: ann@example.com}
""",
        name="created.yaml",
    )
    applied = run_cli("apply", "-f", str(created), "--allow-http", "--yes")
    assert applied.exit_code == 0, applied.stdout + applied.stderr
    path = write_yaml(
        tmp_path,
        'version: 1\nextensions:\n  - {extension: "4003", name: "Zoë 🎉 Ørsted"}\n',
    )

    code, out, err = plan(path)
    assert code == 0, out + err
    assert "Plan: 0 to create, 0 drifted, 1 unmanaged, 1 in sync." in out

    result = run_cli("validate", "-f", str(path))
    assert result.exit_code == 0
