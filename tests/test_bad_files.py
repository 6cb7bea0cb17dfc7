"""The bad-input catalogue: each file under bad_files/ and the exact stderr it gets.

Each `NAME.yaml` is one malformed or suspicious desired-state file and
`NAME.expected` contains the lines `reconciler validate` must write to stderr,
with `{path}` standing for the file's path. plan and apply run the same
validation first, so they must report the same lines and send no request.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli, write_yaml

from reconciler.desired import MAX_FILE_BYTES

BAD_FILES = Path(__file__).parent / "bad_files"
CASES = sorted(BAD_FILES.glob("*.yaml"))

try:
    import reconciler.sandbox.server  # noqa: F401

    SANDBOX_MISSING = ""
except ImportError as error:
    SANDBOX_MISSING = f"the sandbox PBX (reconciler.sandbox.server) is missing: {error}"

if not SANDBOX_MISSING:
    from reconciler.sandbox.server import SandboxServer


def expected_lines(case: Path) -> list[str]:
    text = case.with_suffix(".expected").read_text(encoding="utf-8")
    return text.replace("{path}", str(case)).splitlines()


def test_catalogue_is_complete() -> None:
    assert len(CASES) >= 40
    for case in CASES:
        assert case.with_suffix(".expected").is_file(), f"{case.name} has no .expected"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.stem)
def test_validate_rejects(case: Path) -> None:
    result = run_cli("validate", "-f", str(case))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == expected_lines(case)


@pytest.mark.skipif(bool(SANDBOX_MISSING), reason=SANDBOX_MISSING or "unused")
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.stem)
def test_plan_and_apply_send_nothing(case: Path, pbx_env: SandboxServer) -> None:
    plan = run_cli("plan", "-f", str(case), "--allow-http")
    assert plan.exit_code == 1
    assert plan.stderr.splitlines() == expected_lines(case)

    apply = run_cli("apply", "-f", str(case), "--yes", "--allow-http")
    assert apply.exit_code == 1
    assert apply.stderr.splitlines() == expected_lines(case)

    assert pbx_env.requests == []


def test_literal_secrets_not_echoed() -> None:
    pin_result = run_cli("validate", "-f", str(BAD_FILES / "literal_pin.yaml"))
    assert "1234" not in pin_result.stderr
    assert "0123" not in pin_result.stderr
    assert "83" not in pin_result.stderr  # 0123 read as octal

    password_case = BAD_FILES / "literal_password.yaml"
    password_result = run_cli("validate", "-f", str(password_case))
    assert "hunter2" not in password_result.stderr


def test_huge_file_rejected_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as file:
        file.write(b"version: 1\nextensions: []\n")
        # A sparse file: the size check must not need megabytes on disk.
        file.truncate(MAX_FILE_BYTES + 1)
    result = run_cli("validate", "-f", str(path))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}:1:1: the file is larger than the limit of {MAX_FILE_BYTES:,} "
        "bytes; check that it is the right file",
        "1 problem found; nothing was sent to the PBX.",
    ]


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero here")
def test_endless_device_rejected() -> None:
    result = run_cli("validate", "-f", "/dev/zero")
    assert result.exit_code == 1
    assert "larger than the limit" in result.stderr


def test_byte_order_mark_accepted(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        '\ufeffversion: 1\nextensions:\n  - {extension: "4001", name: A, '
        "email: a@x.io}\n",
    )
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    result = run_cli("validate", "-f", str(path))
    assert result.exit_code == 0, result.stderr
    assert "valid, 1 extension" in result.stdout


def test_byte_order_mark_keeps_columns(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "\ufeffversion: 2\nextensions: []\n")
    result = run_cli("validate", "-f", str(path))
    assert result.stderr.splitlines()[0] == (
        f"{path}:1:10: version: must be 1, got 2; this reconciler reads format "
        "version 1 only"
    )


def test_default_max_contacts_skips_sip(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        """version: 1
defaults:
  max_contacts: 3
extensions:
  - {extension: "4001", name: Ann, email: ann@example.com}
  - {extension: "4002", name: Bob, email: bob@example.com, tech: sip}
""",
    )
    result = run_cli("validate", "-f", str(path))
    assert result.exit_code == 0, result.stderr


def test_safe_loader_runs_no_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = write_yaml(
        tmp_path,
        "version: 1\nextensions:\n"
        f"  - !!python/object/apply:os.system ['touch {marker}']\n",
    )
    result = run_cli("validate", "-f", str(path))
    assert result.exit_code == 1
    assert "the tag !!python/object/apply:os.system is not allowed" in result.stderr
    assert not marker.exists()
