"""`reconciler validate`: check desired-state files without contacting a PBX."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reconciler.errors import InvalidDesiredState

DEFAULT_FILE = Path("extensions.yaml")


def run_validate(
    paths: list[Path],
    write_out: Callable[[str], None],
    write_err: Callable[[str], None],
) -> int:
    """Validate each file, even after an invalid one; return the exit code."""
    from reconciler.desired import load_desired_state

    invalid = 0
    for path in paths or [DEFAULT_FILE]:
        try:
            state = load_desired_state(path)
        except InvalidDesiredState as error:
            invalid += 1
            for problem in error.problems:
                write_err(str(problem))
            count = _plural(len(error.problems), "problem")
            write_err(f"{count} found; nothing was sent to the PBX.")
            continue
        write_out(f"{path}: valid, {_plural(len(state.extensions), 'extension')}.")
    return 1 if invalid else 0


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
