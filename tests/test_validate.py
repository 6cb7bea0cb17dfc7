"""`reconciler validate`: every problem at once, each at FILE:LINE:COLUMN."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import run_cli, write_yaml

EXAMPLE = Path(__file__).parent.parent / "extensions.yaml"


def test_example_file_is_valid() -> None:
    result = run_cli("validate", "-f", str(EXAMPLE))
    assert result.exit_code == 0
    assert "valid, 13 extensions" in result.stdout


def test_every_problem_reported_at_once(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        """version: 1
extensions:
  - extension: 0212
    name: yes
    email: bob@example
    emial: x
  - extension: "4001"
    name: Alice
    email: a@b.co
    email: c@d.co
  - extension: 12.5
    name: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
""",
    )
    result = run_cli("validate", "-f", str(path))
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines == [
        f"{path}:3:16: extensions[0].extension: YAML reads 0212 as an octal number "
        '138; quote it to keep the digits: "0212"',
        f"{path}:4:11: extensions[0].name: YAML reads yes as the boolean true; "
        'quote it: "yes"',
        f"{path}:5:12: extensions[0].email: 'bob@example' is not a valid email address",
        f"{path}:6:5: extensions[0]: unknown key 'emial'; did you mean 'email'?",
        f"{path}:10:5: duplicate key 'email': it is already given on line 9 of this "
        "mapping",
        f"{path}:11:16: extensions[2].extension: YAML reads 12.5 as the decimal "
        "number 12.5; write digits only, in quotes",
        f"{path}:12:11: extensions[2].name: is 68 characters long; FreePBX stores at "
        "most 50",
        "7 problems found; nothing was sent to the PBX.",
    ]


def test_duplicate_extension_number(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        """version: 1
extensions:
  - {extension: "4001", name: Ann, email: ann@example.com}
  - {extension: "4002", name: Bob, email: bob@example.com}
  - {extension: "4001", name: Cid, email: cid@example.com}
""",
    )
    result = run_cli("validate", "-f", str(path))
    assert result.exit_code == 1
    assert (
        f"{path}:5:17: extension 4001 is listed twice (first on line 3)"
        in result.stderr
    )


def test_unquoted_plain_number_accepted(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        "version: 1\nextensions:\n  - {extension: 4001, name: Ann, email: a@x.io}\n",
    )
    result = run_cli("validate", "-f", str(path))
    assert result.exit_code == 0


def test_yaml_syntax_error_position(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "version: 1\nextensions:\n\t- extension: '1'\n")
    result = run_cli("validate", "-f", str(path))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}:3:1: invalid YAML")
    assert "tab" in result.stderr


def test_missing_file(tmp_path: Path) -> None:
    result = run_cli("validate", "-f", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 1
    assert "nope.yaml:1:1: file not found" in result.stderr


def test_template_placeholder_unknown(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        """version: 1
defaults:
  outbound_cid: "{nme} <123>"
extensions:
  - {extension: "4001", name: Ann, email: ann@example.com}
""",
    )
    result = run_cli("validate", "-f", str(path))
    assert result.exit_code == 1
    assert (
        f"{path}:3:17: defaults.outbound_cid: unknown placeholder {{nme}}; use "
        "{name} or {extension}" in result.stderr
    )


def test_template_expansion_too_long(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        """version: 1
defaults:
  outbound_cid: '"{name}" <+4930123456789{extension}>'
extensions:
  - {extension: "4001", name: Maximilian Alexander von Habsburg, email: m@x.io}
""",
    )
    result = run_cli("validate", "-f", str(path))
    assert result.exit_code == 1
    assert "extensions[0].outbound_cid:" in result.stderr
    assert "FreePBX stores at most 50" in result.stderr


def test_control_character_rejected(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        'version: 1\nextensions:\n  - {extension: "1", name: "A\\u0007B", '
        "email: a@x.io}\n",
    )
    result = run_cli("validate", "-f", str(path))
    assert result.exit_code == 1
    assert "contains the control character U+0007" in result.stderr


def test_alias_bomb_rejected(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        previous = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([previous] * 10)}]")
    lines += ["version: 1", "extensions: []"]
    path = write_yaml(tmp_path, "\n".join(lines) + "\n")
    result = run_cli("validate", "-f", str(path))
    assert result.exit_code == 1
    assert "expands to more than" in result.stderr


def test_fast_path_matches_full_cli(tmp_path: Path) -> None:
    # `python -m reconciler validate` skips the CLI framework for speed; its
    # output and exit code must stay those of the full command.
    bad = write_yaml(tmp_path, "version: 1\nextensions:\n  - {extension: 0212}\n")
    for arguments in (
        ["-f", str(EXAMPLE)],
        [str(bad), str(EXAMPLE)],
        ["--file", str(bad)],
    ):
        fast = subprocess.run(
            [sys.executable, "-m", "reconciler", "validate", *arguments],
            capture_output=True,
            text=True,
            check=False,
        )
        full = run_cli("validate", *arguments)
        assert fast.returncode == full.exit_code
        assert fast.stdout == full.stdout
        assert fast.stderr == full.stderr


def test_long_template_expanding_short_valid(tmp_path: Path) -> None:
    # 59 characters of template, 24 once expanded.
    path = write_yaml(
        tmp_path,
        """version: 1
defaults:
  outbound_cid: '{extension} {extension} {extension} {extension} {extension}'
extensions:
  - {extension: "4001", name: Ann, email: ann@example.com}
""",
    )
    result = run_cli("validate", "-f", str(path))
    assert result.exit_code == 0, result.stderr
