"""reconciler add and several-file validate, through the real CLI."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from conftest import run_cli, write_yaml

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
