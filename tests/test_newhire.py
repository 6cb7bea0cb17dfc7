"""reconciler add and several-file validate, through the real CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import operations, run_cli, write_yaml

import reconciler.cli as cli_module
from reconciler.sandbox.server import SandboxServer

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "extensions.yaml"

# Comments before, between and after the entries, a flow mapping after the
# list, and a trailing comment on the last entry's last line.
COMMENTED = """# yaml-language-server: $schema=schema/extensions.schema.json
# Berlin office.
version: 1
numbering:
  range: 4000-4009   # desk phones

extensions:
  # management
  - extension: "4000"
    name: Ann
    email: ann@example.com

  # sales
  - extension: "4001"
    name: Bob
    email: bob@example.com
    voicemail: false     # shared phone
  # - extension: "4002"  (leaving in May)
defaults: {tech: pjsip}
# end
"""


def add(path: Path, *extra: str) -> tuple[int, str, str]:
    result = run_cli("add", "-f", str(path), "--allow-http", *extra)
    return result.exit_code, result.stdout, result.stderr


def without_lines(text: str, added: list[str]) -> str:
    """Return ``text`` with the first run of the ``added`` lines taken out."""
    lines = text.splitlines(keepends=True)
    for start in range(len(lines)):
        if [line.rstrip("\r\n") for line in lines[start : start + len(added)]] == added:
            return "".join(lines[:start] + lines[start + len(added) :])
    raise AssertionError(f"lines {added} not found in:\n{text}")


def test_add_takes_lowest_free_number(pbx_env: SandboxServer, tmp_path: Path) -> None:
    # 4000 and 4001 are in the file; 4002 and 4004 exist on the PBX only.
    pbx_file = write_yaml(
        tmp_path,
        """version: 1
extensions:
  - {extension: "4002", name: Old, email: old@example.com}
  - {extension: "4004", name: Older, email: older@example.com}
""",
        name="pbx.yaml",
    )
    applied = run_cli("apply", "-f", str(pbx_file), "--allow-http", "--yes")
    assert applied.exit_code == 0, applied.stdout + applied.stderr
    before = len(pbx_env.requests)
    path = write_yaml(tmp_path, COMMENTED)

    code, out, err = add(path, "--name", "Cid", "--email", "cid@example.com")
    assert code == 0, err
    assert out == f"Added extension 4003 (Cid) to {path}.\n"
    assert operations(pbx_env)[before:] == ["token", "fetchAllExtensions"]
    entries = yaml.safe_load(path.read_text(encoding="utf-8"))["extensions"]
    assert entries[-1] == {
        "extension": "4003",
        "name": "Cid",
        "email": "cid@example.com",
    }


def test_add_offline_reads_file_only(pbx_env: SandboxServer, tmp_path: Path) -> None:
    path = write_yaml(tmp_path, COMMENTED)
    code, out, err = add(
        path, "--offline", "--name", "Cid", "--email", "cid@example.com"
    )
    assert code == 0, err
    assert "Added extension 4002 (Cid)" in out
    assert pbx_env.requests == []


def test_add_keeps_comments_byte_for_byte(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, COMMENTED)
    code, _, err = add(
        path, "--offline", "--name", "Zoë <Ørsted> & Co", "--email", "z@example.com"
    )
    assert code == 0, err
    after = path.read_text(encoding="utf-8")
    added = [
        "",
        '  - extension: "4002"',
        "    name: Zoë <Ørsted> & Co",
        "    email: z@example.com",
    ]
    assert without_lines(after, added) == COMMENTED
    # The entry sits right after the last entry, before the comments after it.
    assert '    voicemail: false     # shared phone\n\n  - extension: "4002"' in after


def test_add_to_example_file(tmp_path: Path) -> None:
    original = EXAMPLE.read_bytes()
    path = tmp_path / "extensions.yaml"
    path.write_bytes(original)
    code, out, err = add(
        path, "--offline", "--name", "Ada Lovelace", "--email", "ada@example.com"
    )
    assert code == 0, err
    assert "Added extension 4000 (Ada Lovelace)" in out
    assert path.read_bytes() == original + (
        b'\n  - extension: "4000"\n    name: Ada Lovelace\n    email: ada@example.com\n'
    )


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param(
            "version: 1\nnumbering: {range: 100-199}\nextensions: []\n",
            "version: 1\nnumbering: {range: 100-199}\nextensions:\n"
            '  - extension: "100"\n    name: New Hire\n    email: new@example.com\n',
            id="empty",
        ),
        pytest.param(
            "version: 1\nnumbering: {range: 100-199}\nextensions: []  # none yet\n"
            "defaults: {tech: pjsip}\n",
            "version: 1\nnumbering: {range: 100-199}\nextensions:   # none yet\n"
            '  - extension: "100"\n    name: New Hire\n    email: new@example.com\n'
            "defaults: {tech: pjsip}\n",
            id="empty-with-comment",
        ),
        pytest.param(
            "version: 1\nnumbering: {range: 0200-0299}\nextensions:\n"
            '  - {extension: "0200", name: A, email: a@example.com}  # a\n# end\n',
            "version: 1\nnumbering: {range: 0200-0299}\nextensions:\n"
            '  - {extension: "0200", name: A, email: a@example.com}  # a\n'
            '  - {extension: "0201", name: New Hire, email: new@example.com}\n'
            "# end\n",
            id="flow-items-leading-zero",
        ),
        pytest.param(
            "version: 1\r\nnumbering: {range: 100-199}\r\nextensions:\r\n"
            "- extension: '100'\r\n  name: A\r\n  email: a@example.com",
            "version: 1\r\nnumbering: {range: 100-199}\r\nextensions:\r\n"
            "- extension: '100'\r\n  name: A\r\n  email: a@example.com\r\n"
            "- extension: '101'\r\n  name: New Hire\r\n  email: new@example.com\r\n",
            id="crlf-indentless-no-final-newline",
        ),
        pytest.param(
            "version: 1\nnumbering: {range: 100-199}\nextensions: [\n"
            '  {extension: "100", name: A, email: a@example.com},\n]\n',
            "version: 1\nnumbering: {range: 100-199}\nextensions: [\n"
            '  {extension: "100", name: A, email: a@example.com},\n'
            '  {extension: "101", name: New Hire, email: new@example.com},\n]\n',
            id="flow-sequence",
        ),
        pytest.param(
            "{version: 1, numbering: {range: 100-199}, extensions: []}\n",
            "{version: 1, numbering: {range: 100-199}, extensions: "
            '[{extension: "100", name: New Hire, email: new@example.com}]}\n',
            id="flow-document",
        ),
    ],
)
def test_add_layouts(tmp_path: Path, before: str, after: str) -> None:
    path = tmp_path / "extensions.yaml"
    path.write_bytes(before.encode("utf-8"))
    code, _, err = add(
        path, "--offline", "--name", "New Hire", "--email", "new@example.com"
    )
    assert code == 0, err
    assert path.read_bytes().decode("utf-8") == after


def test_add_quotes_special_name(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, COMMENTED)
    for name, email in [("yes", "y@example.com"), ("O'Brien: #1", "o@example.com")]:
        code, _, err = add(path, "--offline", "--name", name, "--email", email)
        assert code == 0, err
    text = path.read_text(encoding="utf-8")
    assert "    name: 'yes'\n" in text
    assert "    name: 'O''Brien: #1'\n" in text
    names = [e["name"] for e in yaml.safe_load(text)["extensions"]]
    assert names == ["Ann", "Bob", "yes", "O'Brien: #1"]


def test_add_rejects_number_in_file(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, COMMENTED)
    code, _, err = add(
        path, "--offline", "--extension", "4001", "--name", "C", "--email", "c@x.io"
    )
    assert code == 1
    assert f"Error: extension 4001 is already in {path} (line 14, Bob)" in err
    assert path.read_text(encoding="utf-8") == COMMENTED


def test_add_rejects_email_in_file(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, COMMENTED)
    code, _, err = add(
        path, "--offline", "--name", "Bobby", "--email", "BOB@example.com"
    )
    assert code == 1
    assert (
        f"Error: email BOB@example.com is already used in {path} by extension 4001"
        in err
    )
    assert path.read_text(encoding="utf-8") == COMMENTED


def test_add_rejects_number_on_pbx(pbx_env: SandboxServer, tmp_path: Path) -> None:
    other = write_yaml(
        tmp_path,
        'version: 1\nextensions:\n  - {extension: "4005", name: X, email: x@x.io}\n',
        name="other.yaml",
    )
    assert run_cli("apply", "-f", str(other), "--allow-http", "--yes").exit_code == 0
    path = write_yaml(tmp_path, COMMENTED)

    code, _, err = add(path, "--extension", "4005", "--name", "C", "--email", "c@x.io")
    assert code == 1
    assert "Error: extension 4005 already exists on the PBX" in err
    assert path.read_text(encoding="utf-8") == COMMENTED

    code, _, err = add(
        path,
        "--offline",
        "--extension",
        "4005",
        "--name",
        "C",
        "--email",
        "c@x.io",
    )
    assert code == 0, err


def test_add_rejects_invalid_result(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, COMMENTED)
    code, _, err = add(
        path, "--offline", "--name", "Cid ", "--email", "cid@example.com"
    )
    assert code == 1
    assert f"Error: the new entry would make {path} invalid" in err
    assert "has leading or trailing spaces" in err
    assert path.read_text(encoding="utf-8") == COMMENTED
    assert list(tmp_path.glob(".extensions.yaml.*")) == []


def test_add_without_range_needs_extension(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    path = write_yaml(
        tmp_path,
        'version: 1\nextensions:\n  - {extension: "1", name: A, email: a@x.io}\n',
    )
    code, _, err = add(path, "--name", "B", "--email", "b@x.io")
    assert code == 1
    assert "declares no numbering range" in err
    assert "pass --extension N, or add to the file: numbering:" in err
    assert pbx_env.requests == []


def test_add_full_range(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        "version: 1\nnumbering: {range: 1-1}\n"
        'extensions:\n  - {extension: "1", name: A, email: a@x.io}\n',
    )
    code, _, err = add(path, "--offline", "--name", "B", "--email", "b@x.io")
    assert code == 1
    assert "every number of the range 1-1 is used" in err


def test_add_keeps_file_mode(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, COMMENTED)
    path.chmod(0o640)
    code, _, err = add(path, "--offline", "--name", "Cid", "--email", "c@x.io")
    assert code == 0, err
    assert path.stat().st_mode & 0o777 == 0o640


def test_add_then_validate_and_plan(pbx_env: SandboxServer, tmp_path: Path) -> None:
    path = write_yaml(tmp_path, COMMENTED)
    code, _, err = add(path, "--name", "Zoë 🎉", "--email", "zoe@example.com")
    assert code == 0, err

    result = run_cli("validate", "-f", str(path))
    assert result.exit_code == 0
    assert "valid, 3 extensions" in result.stdout

    result = run_cli("plan", "-f", str(path), "--allow-http")
    assert "  + 4002  Zoë 🎉" in result.stdout


def test_validate_several_files(tmp_path: Path) -> None:
    good = write_yaml(tmp_path, COMMENTED, name="extensions-berlin.yaml")
    bad = write_yaml(
        tmp_path, "version: 1\nextensions:\n  - {extension: 0212}\n", name="bad.yaml"
    )
    other = write_yaml(tmp_path, EXAMPLE.read_text(encoding="utf-8"), name="b.yml")

    result = run_cli("validate", str(good), str(bad), str(other))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{good}: valid, 2 extensions.",
        f"{other}: valid, 13 extensions.",
    ]
    assert f"{bad}:3:5: extensions[0]: missing required key 'name'" in result.stderr

    result = run_cli("validate", str(good), str(other))
    assert result.exit_code == 0


def test_validate_file_option_still_works(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, COMMENTED)
    result = run_cli("validate", "-f", str(path))
    assert result.exit_code == 0
    assert result.stdout == f"{path}: valid, 2 extensions.\n"


def test_pre_commit_hook_definition() -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert len(hooks) == 1
    hook = hooks[0]
    assert hook["id"] == "reconciler-validate"
    assert hook["entry"] == "reconciler validate"
    assert hook["language"] == "python"
    assert hook["pass_filenames"] is True
    pattern = re.compile(hook["files"])
    for name in ("extensions.yaml", "office/extensions-berlin.yml"):
        assert pattern.search(name), name
    for name in ("schema/extensions.schema.json", "other.yaml", "extensions.yaml.bak"):
        assert not pattern.search(name), name


def test_add_rejects_file_changed_meanwhile(
    pbx_env: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another writer appends an entry while add reads the PBX.
    path = write_yaml(
        tmp_path,
        "version: 1\nnumbering: {range: 4000-4999}\nextensions:\n"
        '  - {extension: "4000", name: Ann, email: ann@example.com}\n',
    )
    manual = '  - {extension: "4050", name: Manual, email: m@example.com}\n'
    real_read = cli_module._read_live_state

    def read_then_edit(settings: object) -> object:
        live = real_read(settings)  # type: ignore[arg-type]
        with path.open("a", encoding="utf-8") as file:
            file.write(manual)
        return live

    monkeypatch.setattr(cli_module, "_read_live_state", read_then_edit)
    result = run_cli(
        "add", "-f", str(path), "--allow-http", "--name", "Bob", "--email", "b@x.io"
    )
    assert result.exit_code == 1
    assert "changed while add ran" in result.stderr
    assert path.read_text(encoding="utf-8").endswith(manual)
