"""Fixtures: the sandbox PBX over real HTTP on 127.0.0.1, and the real CLI."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from reconciler.cli import app

if TYPE_CHECKING:
    from reconciler.sandbox.server import SandboxServer

DATA = Path(__file__).parent / "data"


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def pbx(tmp_path: Path) -> Iterator[SandboxServer]:
    """A fresh sandbox FreePBX 16 with a fast apply config."""
    from reconciler.sandbox.server import SandboxServer

    with SandboxServer(tmp_path / "pbx.sqlite3", reload_seconds=0.2) as server:
        yield server


@pytest.fixture
def pbx_env(pbx: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    """The sandbox's URL and credentials in the environment, as a user sets them."""
    monkeypatch.setenv("FREEPBX_URL", pbx.url)
    monkeypatch.setenv("FREEPBX_CLIENT_ID", pbx.client_id)
    monkeypatch.setenv("FREEPBX_CLIENT_SECRET", pbx.client_secret)
    return pbx


def run_cli(*args: str, input: str | None = None) -> CliResult:
    """Run the real CLI in-process and capture stdout and stderr apart."""
    runner = CliRunner()
    result = runner.invoke(app, list(args), input=input, catch_exceptions=False)
    return CliResult(result.exit_code, result.stdout, result.stderr)


def write_yaml(directory: Path, text: str, name: str = "extensions.yaml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def operations(server: SandboxServer) -> list[str]:
    """Return the operation of every request the sandbox served, in order."""
    return [str(record.operation) for record in server.requests]
