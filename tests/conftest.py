"""Fixtures: the sandbox PBX over real HTTP on 127.0.0.1, and the real CLI."""

from __future__ import annotations

import shutil
import subprocess
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


@dataclass(frozen=True)
class TlsFiles:
    """A private CA and a server certificate for 127.0.0.1 that it signed."""

    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    directory = tmp_path_factory.mktemp("tls")
    ec_key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    (directory / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n",
        encoding="utf-8",
    )
    commands = [
        f"req -x509 {ec_key} -keyout ca.key -out ca.pem -days 2"
        " -subj /CN=reconciler-test-CA"
        " -addext basicConstraints=critical,CA:TRUE"
        " -addext keyUsage=critical,keyCertSign,cRLSign",
        f"req {ec_key} -keyout server.key -out server.csr -subj /CN=127.0.0.1",
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
        " -out server.pem -days 2 -extfile server.ext",
    ]
    for command in commands:
        subprocess.run(
            [openssl, *command.split()], cwd=directory, check=True, capture_output=True
        )
    return TlsFiles(
        directory / "ca.pem", directory / "server.pem", directory / "server.key"
    )


@pytest.fixture
def https_pbx(
    tmp_path: Path, tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SandboxServer]:
    """A sandbox served over HTTPS, its URL and credentials in the environment."""
    from reconciler.sandbox.server import SandboxServer

    with SandboxServer(
        tmp_path / "pbx.sqlite3", tls_cert=tls_files.cert, tls_key=tls_files.key
    ) as server:
        monkeypatch.setenv("FREEPBX_URL", server.url)
        monkeypatch.setenv("FREEPBX_CLIENT_ID", server.client_id)
        monkeypatch.setenv("FREEPBX_CLIENT_SECRET", server.client_secret)
        yield server
