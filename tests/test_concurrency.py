"""Two applies at once, and a reload that another client started first."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import operations, run_cli, write_yaml

from reconciler import pbx as freepbx
from reconciler.client import FreePBXClient
from reconciler.models import LiveState
from reconciler.sandbox.faults import Faults
from reconciler.sandbox.server import SandboxServer
from reconciler.settings import ConnectionSettings

ROOT = Path(__file__).parent.parent

FOUR = """version: 1
extensions:
  - {extension: "4001", name: Ann Arbor, email: ann@example.com}
  - {extension: "4002", name: Bob Baker, email: bob@example.com}
  - {extension: "4003", name: Cid Cole, email: cid@example.com}
  - {extension: "4004", name: Dee Dunn, email: dee@example.com}
"""
SUMMARY = re.compile(
    r"^Apply: (\d+) created, (\d+) already present, (\d+) failed", re.M
)


def run_two_applies(server: SandboxServer, path: Path) -> list[tuple[int, str]]:
    """Start two applies of one file at the same moment; return (exit code, stdout)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "FREEPBX_URL": server.url,
        "FREEPBX_CLIENT_ID": server.client_id,
        "FREEPBX_CLIENT_SECRET": server.client_secret,
    }
    command = [sys.executable, "-m", "reconciler", "apply", "-f", str(path)]
    command += ["--allow-http", "--yes", "--reload-timeout", "30"]
    children = [
        subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=path.parent,
        )
        for _ in range(2)
    ]
    results = []
    for child in children:
        stdout, stderr = child.communicate(timeout=60)
        results.append((child.returncode, stdout + stderr))
    return results


def read_live(server: SandboxServer) -> LiveState:
    settings = ConnectionSettings(server.url, server.client_id, server.client_secret)
    with FreePBXClient(settings) as client:
        return freepbx.read_live_state(client)


def summary_counts(output: str) -> tuple[int, int, int]:
    match = SUMMARY.search(output)
    assert match is not None, output
    created, present, failed = (int(group) for group in match.groups())
    return created, present, failed


def test_two_applies_create_each_once(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, FOUR)
    with SandboxServer(
        tmp_path / "pbx.sqlite3", reload_seconds=0.3, faults=Faults(latency_ms=50)
    ) as server:
        results = run_two_applies(server, path)
        live = read_live(server)
        succeeded_adds = [
            record
            for record in server.requests
            if record.operation == "addExtension" and record.status == 200
        ]

    for code, output in results:
        assert code == 0, output
        assert "0 not converged." in output
    counts = [summary_counts(output) for _, output in results]
    assert sum(created for created, _, _ in counts) == 4
    assert all(failed == 0 for _, _, failed in counts)
    assert len(succeeded_adds) == 4
    assert sorted(e.extension for e in live.extensions) == [
        "4001",
        "4002",
        "4003",
        "4004",
    ]
    assert live.duplicates == ()


def test_race_leaves_duplicates_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_yaml(
        tmp_path,
        'version: 1\nextensions:\n  - {extension: "4001", name: Ann Arbor, '
        "email: ann@example.com}\n",
    )
    # Both applies start together, so their adds of 4001 fall into one window.
    faults = Faults(race_window_seconds=1.5)
    with SandboxServer(
        tmp_path / "pbx.sqlite3", reload_seconds=0.3, faults=faults
    ) as server:
        results = run_two_applies(server, path)
        live = read_live(server)

        monkeypatch.setenv("FREEPBX_URL", server.url)
        monkeypatch.setenv("FREEPBX_CLIENT_ID", server.client_id)
        monkeypatch.setenv("FREEPBX_CLIENT_SECRET", server.client_secret)
        server.faults = Faults()
        plan = run_cli("plan", "-f", str(path), "--allow-http", "--detailed-exitcode")
        markdown = run_cli(
            "plan", "-f", str(path), "--allow-http", "--format", "markdown"
        )

    assert [e.extension for e in live.extensions] == ["4001", "4001"]
    assert live.duplicates == ("4001",)
    outputs = sorted(output for _, output in results)
    for code, output in results:
        assert code == 1, output
        assert "  ! 4001  Ann Arbor: listed twice by FreePBX (concurrent add)" in (
            output
        )
        assert "; 1 not converged." in output
    statuses = sorted(summary_counts(output)[:2] for output in outputs)
    assert statuses == [(0, 1), (1, 0)]
    assert any(
        "[1/1] 4001 Ann Arbor: already present (SQLSTATE[23000]: Integrity "
        "constraint violation: 1062 Duplicate entry '4001-sipdriver' for key "
        "'PRIMARY'; a re-read lists the extension" in output
        for output in outputs
    )
    # A duplicate needs a person to repair it, so it counts as a change.
    assert plan.exit_code == 2
    assert "Warning: FreePBX lists these extensions more than once: 4001." in (
        plan.stdout
    )
    assert "Plan: 0 to create, 0 drifted, 0 unmanaged, 1 in sync, 1 listed twice." in (
        plan.stdout
    )
    assert markdown.stdout.startswith(
        "#### reconciler plan: 0 to create, 0 drifted, 0 unmanaged, 1 in sync, "
        "1 listed twice\n"
    )


def test_apply_waits_for_running_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_yaml(tmp_path, FOUR)
    with SandboxServer(tmp_path / "pbx.sqlite3", reload_seconds=1.0) as server:
        monkeypatch.setenv("FREEPBX_URL", server.url)
        monkeypatch.setenv("FREEPBX_CLIENT_ID", server.client_id)
        monkeypatch.setenv("FREEPBX_CLIENT_SECRET", server.client_secret)
        settings = ConnectionSettings(
            server.url, server.client_id, server.client_secret
        )
        # Another client's apply config holds FreePBX's reload lock for 1 s.
        with FreePBXClient(settings) as other:
            freepbx.start_reload(other)
        result = run_cli("apply", "-f", str(path), "--allow-http", "--yes")
        ops = operations(server)

    assert result.exit_code == 0, result.stdout
    assert "another apply config is running, so transaction 2 could not start;" in (
        result.stdout
    )
    assert "Apply config: started (transaction 2)" not in result.stdout
    assert "Apply config: started (transaction " in result.stdout
    assert "Apply: 4 created, 0 already present, 0 failed, 0 not attempted; " in (
        result.stdout
    )
    assert "apply config executed; 0 not converged." in result.stdout
    assert ops.count("doreload") >= 3
