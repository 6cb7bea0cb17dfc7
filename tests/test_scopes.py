"""plan and apply with an access token that lacks a scope they need."""

from __future__ import annotations

from pathlib import Path

from conftest import operations, run_cli, write_yaml

from reconciler.sandbox.server import SandboxServer

TWO = """version: 1
extensions:
  - {extension: "4001", name: Ann Arbor, email: ann@example.com}
  - {extension: "4002", name: Bob Baker, email: bob@example.com}
"""


def test_apply_without_framework_scope_refused(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    path = write_yaml(tmp_path, TWO)
    result = run_cli(
        "apply", "-f", str(path), "--allow-http", "--yes", "--scope", "gql:core"
    )
    assert result.exit_code == 1
    last = result.stderr.splitlines()[-1]
    assert last.startswith(
        "Error: the access token has none of the scopes gql, gql:framework, "
        "gql:framework:read, gql:framework:read:modules, which doreload and "
        "fetchApiStatus (apply config) needs (it has: gql:core); add "
        "gql:framework to --scope (FREEPBX_SCOPE)"
    )
    assert last.endswith("Nothing was created")
    assert "addExtension" not in operations(pbx_env)


def test_apply_without_core_scope_refused(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    path = write_yaml(tmp_path, TWO)
    result = run_cli(
        "apply", "-f", str(path), "--allow-http", "--yes", "--scope", "gql:framework"
    )
    assert result.exit_code == 1
    assert "none of the scopes gql, gql:core, gql:core:read" in result.stderr
    assert "add gql:core to --scope (FREEPBX_SCOPE)" in result.stderr
    assert "addExtension" not in operations(pbx_env)


def test_plan_names_missing_core_scope(pbx_env: SandboxServer, tmp_path: Path) -> None:
    path = write_yaml(tmp_path, TWO)
    result = run_cli(
        "plan", "-f", str(path), "--allow-http", "--scope", "gql:framework"
    )
    assert result.exit_code == 1
    last = result.stderr.splitlines()[-1]
    assert last.startswith(
        "Error: fetchAllExtensions failed (HTTP 400): the access token has none of "
        "the scopes gql, gql:core, gql:core:read, which fetchAllExtensions needs "
        "(it has: gql:framework); add gql:core to --scope (FREEPBX_SCOPE)"
    )
    # FreePBX's own message stays, for a case the check misreads.
    assert 'Cannot query field "fetchAllExtensions" on type "Query".' in last


def test_apply_with_both_scopes_runs(pbx_env: SandboxServer, tmp_path: Path) -> None:
    path = write_yaml(tmp_path, TWO)
    result = run_cli(
        "apply",
        "-f",
        str(path),
        "--allow-http",
        "--yes",
        "--scope",
        "gql:core:write gql:core:read gql:framework:read:modules",
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "Apply: 2 created" in result.stdout
