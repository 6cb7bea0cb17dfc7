"""The console script's entry point, with a fast path for `validate`.

A pre-commit hook runs `reconciler validate` on every commit. Loading the
command-line framework takes about as long as validating a small file, so a
plain `validate [-f FILE] [FILE...]` skips it; anything else (--help, another
command, an unknown option) goes to the full CLI.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    """Run `reconciler` with the arguments of this process."""
    arguments = sys.argv[1:]
    paths = _plain_validate_paths(arguments)
    if paths is not None:
        from reconciler.validate_command import run_validate

        sys.exit(run_validate(paths, _print_out, _print_err))

    from reconciler.cli import main as cli_main

    cli_main()


def _plain_validate_paths(arguments: list[str]) -> list[Path] | None:
    """Return the files of a plain validate command line, or None for any other."""
    if arguments[:1] != ["validate"]:
        return None
    positional: list[Path] = []
    option: list[Path] = []
    rest = iter(arguments[1:])
    for argument in rest:
        if argument in ("-f", "--file"):
            value = next(rest, None)
            if value is None or option:
                return None
            option.append(Path(value))
        elif argument.startswith("--file="):
            if option:
                return None
            option.append(Path(argument.removeprefix("--file=")))
        elif argument.startswith("-"):
            return None
        else:
            positional.append(Path(argument))
    return positional + option


def _print_out(text: str) -> None:
    print(text)


def _print_err(text: str) -> None:
    print(text, file=sys.stderr)
