"""Entry outbound_cid templates, environment secret sources and the CSV hand-over."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import run_cli, write_yaml

from reconciler.sandbox.server import SandboxServer

TEMPLATED = """version: 1
extensions:
  - extension: "4001"
    name: Ann Lee
    email: ann@example.com
    outbound_cid: '"{name}" <+49{extension}>'
  - extension: "4002"
    name: Bob
    email: bob@example.com
    outbound_cid: 'Desk {{2}}'
"""


def plan(path: Path, *extra: str) -> tuple[int, str, str]:
    result = run_cli("plan", "-f", str(path), "--allow-http", *extra)
    return result.exit_code, result.stdout, result.stderr


def apply(path: Path, *extra: str) -> tuple[int, str, str]:
    result = run_cli("apply", "-f", str(path), "--allow-http", "--yes", *extra)
    return result.exit_code, result.stdout, result.stderr


# --- outbound_cid of an entry -------------------------------------------------------


def test_entry_cid_template_expanded(pbx_env: SandboxServer, tmp_path: Path) -> None:
    path = write_yaml(tmp_path, TEMPLATED)

    code, out, err = plan(path, "--format", "json")
    creates = {c["extension"]: c for c in json.loads(out)["creates"]}
    assert code == 0, err
    assert creates["4001"]["outbound_cid"] == '"Ann Lee" <+494001>'
    assert creates["4002"]["outbound_cid"] == "Desk {2}"

    code, _, err = apply(path)
    assert code == 0, err
    exported = run_cli("export", "--allow-http")
    assert "outbound_cid: '\"Ann Lee\" <+494001>'" in exported.stdout
    # Export doubles the braces, so that the file reads the same caller ID.
    assert "outbound_cid: Desk {{2}}" in exported.stdout

    code, out, err = plan(path, "--detailed-exitcode")
    assert code == 0, out + err
    assert "2 in sync" in out


@pytest.mark.parametrize(
    ("cid", "message"),
    [
        (
            '"{nam}" <{extension}>',
            "extensions[0].outbound_cid: unknown placeholder {nam}; use {name} or "
            "{extension}",
        ),
        (
            '"{name}" <+4930123456789{extension}>',
            "extensions[0].outbound_cid: expands to '\"Christopher Alexander "
            "Smithers\" <+49301234567894001>', which is 53 characters long; "
            "FreePBX stores at most 50, so shorten it",
        ),
        ("{name!r}", "the placeholder {name} takes no format spec or conversion"),
    ],
)
def test_entry_cid_template_checked(tmp_path: Path, cid: str, message: str) -> None:
    path = write_yaml(
        tmp_path,
        f"""version: 1
extensions:
  - extension: "4001"
    name: Christopher Alexander Smithers
    email: chris@example.com
    outbound_cid: '{cid.replace("'", "''")}'
""",
    )
    result = run_cli("validate", str(path))

    assert result.exit_code == 1
    assert f"{path}:6:19: " in result.stderr
    assert message in result.stderr


# --- environment secret sources ---------------------------------------------------


def test_env_source_needs_prefix(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        """version: 1
extensions:
  - extension: "4001"
    name: Ann
    email: ann@example.com
    user_manager: {password: {env: DEPLOY_DB_PASSWORD}}
""",
    )
    result = run_cli("validate", str(path))

    assert result.exit_code == 1
    assert (
        f"{path}:6:36: extensions[0].user_manager.password.env: "
        "'DEPLOY_DB_PASSWORD' does not start with RECONCILER_SECRET_"
    ) in result.stderr
    assert "rename it, for example to RECONCILER_SECRET_DEPLOY_DB_PASSWORD" in (
        result.stderr
    )


def test_plan_warns_about_env_sources(
    pbx_env: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RECONCILER_SECRET_ANN_PIN", raising=False)
    monkeypatch.setenv("RECONCILER_SECRET_BOB_PIN", "12ab")
    path = write_yaml(
        tmp_path,
        """version: 1
extensions:
  - extension: "4001"
    name: Ann
    email: ann@example.com
    voicemail: {pin: {env: RECONCILER_SECRET_ANN_PIN}}
  - extension: "4002"
    name: Bob
    email: bob@example.com
    voicemail: {pin: {env: RECONCILER_SECRET_BOB_PIN}}
""",
    )
    code, out, err = plan(path)

    assert code == 0, err
    assert (
        "Warning: extension 4001: the voicemail PIN comes from "
        "$RECONCILER_SECRET_ANN_PIN, which is not set; apply stops before "
        "creating anything"
    ) in err
    assert (
        "Warning: extension 4002: $RECONCILER_SECRET_BOB_PIN must hold digits only"
        in err
    )
    assert "12ab" not in out + err


# --- credentials CSV --------------------------------------------------------------


def test_credentials_csv_defuses_formulas(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    path = write_yaml(
        tmp_path,
        """version: 1
extensions:
  - extension: "4001"
    name: '=HYPERLINK("http://x")'
    email: ann@example.com
  - extension: "4002"
    name: -Bob
    email: bob@example.com
  - extension: "4003"
    name: Cid
    email: cid@example.com
""",
    )
    target = tmp_path / "new-hires.csv"
    code, _, err = apply(path, "--credentials-out", str(target))
    with target.open(encoding="utf-8", newline="") as file:
        names = {row["extension"]: row["name"] for row in csv.DictReader(file)}

    assert code == 0, err
    assert names["4001"] == '\'=HYPERLINK("http://x")'
    assert names["4002"] == "'-Bob"
    assert names["4003"] == "Cid"


# --- plan errors ------------------------------------------------------------------


def test_plan_error_not_claiming_creation(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    path = write_yaml(
        tmp_path, 'version: 1\nextensions:\n  - {extension: "4001", name: Ann}\n'
    )
    code, _, err = plan(path)

    assert code == 1
    assert "add email: to the entry" in err
    assert "Nothing was created" not in err
