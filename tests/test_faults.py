"""plan and apply against a sandbox that injects network and FreePBX faults."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult, operations, run_cli, write_yaml

from reconciler import pbx as freepbx
from reconciler.client import FreePBXClient
from reconciler.sandbox.faults import (
    Faults,
    InvalidFault,
    InvalidSelector,
    Selector,
    faults_from_options,
)
from reconciler.sandbox.server import SandboxServer
from reconciler.settings import ConnectionSettings

ROOT = Path(__file__).parent.parent

THREE = """version: 1
extensions:
  - {extension: "4001", name: Ann Arbor, email: ann@example.com}
  - {extension: "4002", name: Bob Baker, email: bob@example.com}
  - {extension: "4003", name: Cid Cole, email: cid@example.com}
"""


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the read back-off short, so that a test of three attempts stays quick."""
    monkeypatch.setattr("reconciler.client.READ_BACKOFF_SECONDS", 0.01)


def plan(path: Path, *extra: str) -> CliResult:
    return run_cli("plan", "-f", str(path), "--allow-http", *extra)


def apply(path: Path, *extra: str) -> CliResult:
    return run_cli("apply", "-f", str(path), "--allow-http", "--yes", *extra)


def selectors(*texts: str) -> tuple[Selector, ...]:
    return tuple(Selector.parse(text) for text in texts)


def listed_numbers(server: SandboxServer) -> list[str]:
    settings = ConnectionSettings(server.url, server.client_id, server.client_secret)
    with FreePBXClient(settings) as client:
        live = freepbx.read_live_state(client)
    return [extension.extension for extension in live.extensions]


def use_sandbox(server: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FREEPBX_URL", server.url)
    monkeypatch.setenv("FREEPBX_CLIENT_ID", server.client_id)
    monkeypatch.setenv("FREEPBX_CLIENT_SECRET", server.client_secret)


# --- the fault options ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", Selector(None, 3)),
        ("addExtension", Selector("addExtension", None)),
        ("addExtension:2", Selector("addExtension", 2)),
        ("token:1", Selector("token", 1)),
    ],
)
def test_selector_forms(text: str, expected: Selector) -> None:
    assert Selector.parse(text) == expected


@pytest.mark.parametrize("text", ["0", "addExtension:0", "add-extension", ":2", ""])
def test_selector_invalid(text: str) -> None:
    with pytest.raises(InvalidSelector):
        Selector.parse(text)


def test_fault_options_build_faults() -> None:
    faults = faults_from_options(
        [
            "latency-ms=250",
            "http-500=addExtension:2",
            "http-500=7",
            "reset-after=addExtension:1",
            "token-lifetime=5",
            "reload=hang",
            "race-window=1.5",
        ]
    )
    assert faults.latency_ms == 250
    assert faults.http_500_on == selectors("addExtension:2", "7")
    assert faults.reset_after_on == selectors("addExtension:1")
    assert faults.token_lifetime_seconds == 5
    assert faults.reload == "hang"
    assert faults.race_window_seconds == 1.5


@pytest.mark.parametrize(
    "option", ["latency-ms=-1", "reload=sometimes", "http-500=add-ext", "speed=9"]
)
def test_fault_option_invalid(option: str) -> None:
    with pytest.raises(InvalidFault):
        faults_from_options([option])


def test_sandbox_command_rejects_bad_fault() -> None:
    result = run_cli("sandbox", "--port", "0", "--fault", "reload=sometimes")
    assert result.exit_code == 1
    assert "Error: invalid fault 'reload=sometimes'; use one of:" in result.stderr


def plan_against_sandbox_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: list[str], *args: str
) -> tuple[list[str], dict[str, str], CliResult]:
    """Run plan on the example against `reconciler sandbox OPTIONS`.

    Returns the first six lines the sandbox printed, the settings of its
    export lines, which plan got from the environment, and plan's result.
    """
    command = [sys.executable, "-m", "reconciler", "sandbox", "--port", "0"]
    command += ["--state-file", str(tmp_path / "pbx.sqlite3"), *options]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, env=_child_env(), cwd=ROOT
    ) as child:
        try:
            assert child.stdout is not None
            banner = [child.stdout.readline() for _ in range(6)]
            exports = [line for line in banner if line.startswith("export ")]
            settings = dict(line.split()[1].split("=", 1) for line in exports)
            for name, value in settings.items():
                monkeypatch.setenv(name, value)
            result = run_cli("plan", "-f", str(ROOT / "extensions.yaml"), *args)
        finally:
            _stop(child)
    return banner, settings, result


def test_sandbox_command_serves_faults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = ["--fault", "http-500=token"]
    banner, _, result = plan_against_sandbox_command(
        tmp_path, monkeypatch, options, "--allow-http"
    )
    assert banner[5] == "Fault: http-500=token\n"
    assert result.exit_code == 1
    assert "server error HTTP 500" in result.stderr


# --- reads ----------------------------------------------------------------------


def test_read_retried_after_http_500(pbx_env: SandboxServer, tmp_path: Path) -> None:
    pbx_env.faults = Faults(http_500_on=selectors("fetchAllExtensions:1"))
    result = plan(write_yaml(tmp_path, THREE))
    assert result.exit_code == 0, result.stderr
    assert "Plan: 3 to create" in result.stdout
    assert "fetchAllExtensions failed (server error HTTP 500); retrying" in (
        result.stderr
    )
    assert operations(pbx_env) == ["token", "fetchAllExtensions", "fetchAllExtensions"]


def test_read_retries_are_bounded(pbx_env: SandboxServer, tmp_path: Path) -> None:
    pbx_env.faults = Faults(http_500_on=selectors("fetchAllExtensions"))
    result = plan(write_yaml(tmp_path, THREE))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: fetchAllExtensions failed (HTTP 500): server error HTTP 500"
    )
    assert operations(pbx_env).count("fetchAllExtensions") == 3


def test_truncated_read_retried(pbx_env: SandboxServer, tmp_path: Path) -> None:
    pbx_env.faults = Faults(truncate_on=selectors("fetchAllExtensions:1"))
    result = plan(write_yaml(tmp_path, THREE))
    assert result.exit_code == 0, result.stderr
    assert (
        "fetchAllExtensions failed (the answer is not a GraphQL response); retrying"
        in result.stderr
    )


def test_token_request_retried_after_http_500(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    pbx_env.faults = Faults(http_500_on=selectors("token:1"))
    result = plan(write_yaml(tmp_path, THREE))
    assert result.exit_code == 0, result.stderr
    assert operations(pbx_env) == ["token", "token", "fetchAllExtensions"]


# --- addExtension without a usable response ----------------------------------


def test_reset_after_add_settled_by_reread(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    pbx_env.faults = Faults(reset_after_on=selectors("addExtension:2"))
    target = tmp_path / "new-hires.csv"
    result = apply(write_yaml(tmp_path, THREE), "--credentials-out", str(target))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "[2/3] 4002 Bob Baker: created" in result.stdout
    assert "addExtension: no answer from" in result.stderr
    assert "connection reset; reading the PBX to learn the outcome" in result.stderr
    assert "Apply: 3 created, 0 already present, 0 failed, 0 not attempted;" in (
        result.stdout
    )
    ops = operations(pbx_env)
    assert ops.count("addExtension") == 3  # never resent
    assert ops.count("fetchAllExtensions") == 3  # plan, re-read, verification
    rows = target.read_text(encoding="utf-8").splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["4001", "4002", "4003"]


def test_truncated_add_settled_by_reread(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    pbx_env.faults = Faults(truncate_on=selectors("addExtension:1"))
    result = apply(write_yaml(tmp_path, THREE))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "[1/3] 4001 Ann Arbor: created" in result.stdout
    assert "addExtension: the answer is not a GraphQL response" in result.stderr


def test_http_500_on_add_stays_unknown(pbx_env: SandboxServer, tmp_path: Path) -> None:
    path = write_yaml(tmp_path, THREE)
    pbx_env.faults = Faults(http_500_on=selectors("addExtension:1"))
    target = tmp_path / "new-hires.csv"
    result = apply(path, "--credentials-out", str(target))
    assert result.exit_code == 1
    assert (
        "[1/3] 4001 Ann Arbor: outcome unknown (addExtension: server error HTTP "
        "500; a re-read does not list it yet)"
    ) in result.stdout
    # A lost response never proves that FreePBX did not run the request.
    assert (
        "Outcome unknown (1, run reconciler plan to see whether FreePBX has them):"
    ) in result.stdout
    assert (
        "  ? 4001  Ann Arbor: addExtension: server error HTTP 500; a re-read does "
        "not list it yet; the verification read does not list it"
    ) in result.stdout
    assert "not created" not in result.stdout
    assert (
        "Apply: 2 created, 0 already present, 0 failed, 1 outcome unknown, 0 not "
        "attempted;"
    ) in result.stdout
    rows = target.read_text(encoding="utf-8").splitlines()
    assert rows[0].endswith(",status")
    statuses = {row.split(",")[0]: row.split(",")[-1] for row in rows[1:]}
    assert statuses == {"4001": "unconfirmed", "4002": "created", "4003": "created"}
    assert operations(pbx_env).count("addExtension") == 3
    assert listed_numbers(pbx_env) == ["4002", "4003"]

    rerun = apply(path)
    assert rerun.exit_code == 0, rerun.stdout
    assert "Apply: 1 created, 0 already present, 0 failed" in rerun.stdout


def test_late_add_settled_by_verification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first addExtension runs at 0.6 s, after the client gave up at 0.2 s.
    # So the re-read comes too early, but the verification read follows a 1 s
    # apply config and lists the extension.
    faults = Faults(latency_ms=600, latency_on=selectors("addExtension:1"))
    target = tmp_path / "new-hires.csv"
    with SandboxServer(
        tmp_path / "pbx.sqlite3", reload_seconds=1.0, faults=faults
    ) as server:
        use_sandbox(server, monkeypatch)
        result = apply(
            write_yaml(tmp_path, THREE),
            "--read-timeout",
            "0.2",
            "--credentials-out",
            str(target),
        )
        ops = operations(server)

    assert "[1/3] 4001 Ann Arbor: outcome unknown (addExtension: no answer" in (
        result.stdout
    )
    assert "timed out waiting for the answer; a re-read does not list it yet" in (
        result.stdout
    )
    assert "Apply: 3 created, 0 already present, 0 failed, 0 not attempted;" in (
        result.stdout
    )
    assert result.exit_code == 0, result.stdout
    assert ops.count("addExtension") == 3
    rows = target.read_text(encoding="utf-8").splitlines()
    assert sorted(row.split(",")[0] for row in rows[1:]) == ["4001", "4002", "4003"]


# --- tokens ---------------------------------------------------------------------


def test_expired_token_renewed_mid_apply(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    pbx_env.faults = Faults(token_lifetime_seconds=0.4, latency_ms=100)
    result = apply(write_yaml(tmp_path, THREE))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "Apply: 3 created" in result.stdout
    ops = operations(pbx_env)
    assert ops.count("token") >= 2
    rejected_adds = [
        record
        for record in pbx_env.requests
        if record.status == 401 and record.operation == "addExtension"
    ]
    # FreePBX checks the token before it runs a request, so the resend is safe.
    assert ops.count("addExtension") == 3 + len(rejected_adds)
    # Each rejected request is followed by one new token and the same request.
    for index, record in enumerate(pbx_env.requests):
        if record.status == 401:
            assert ops[index + 1 : index + 3] == ["token", record.operation]


def test_expired_token_renewed_on_freepbx17(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = Faults(token_lifetime_seconds=0.4, latency_ms=100)
    with SandboxServer(
        tmp_path / "pbx17.sqlite3",
        freepbx_version=17,
        reload_seconds=0.2,
        faults=faults,
    ) as server:
        monkeypatch.setenv("FREEPBX_URL", server.url)
        monkeypatch.setenv("FREEPBX_CLIENT_ID", server.client_id)
        monkeypatch.setenv("FREEPBX_CLIENT_SECRET", server.client_secret)
        result = apply(write_yaml(tmp_path, THREE))

    assert result.exit_code == 0, result.stdout + result.stderr
    assert "Apply: 3 created" in result.stdout
    rejected = [record for record in server.requests if record.status == 500]
    assert rejected, "no request outlived its token"
    ops = operations(server)
    for index, record in enumerate(server.requests):
        if record.status == 500:
            assert ops[index + 1 : index + 3] == ["token", record.operation]


def test_token_rejected_twice_fails_cleanly(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    pbx_env.faults = Faults(token_lifetime_seconds=0)
    result = plan(write_yaml(tmp_path, THREE))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: fetchAllExtensions failed (HTTP 401): access token rejected: The "
        "resource owner or authorization server denied the request. (Access token "
        "is invalid)"
    )
    assert operations(pbx_env) == [
        "token",
        "fetchAllExtensions",
        "token",
        "fetchAllExtensions",
    ]


def test_token_renewal_failure_stops_apply(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    # The first token expires after 0.3 s and every later token request fails.
    pbx_env.faults = Faults(
        token_lifetime_seconds=0.3,
        latency_ms=100,
        http_500_on=selectors("token:2", "token:3", "token:4"),
    )
    result = apply(write_yaml(tmp_path, THREE))
    assert result.exit_code == 1
    assert "Stopped: token request to " in result.stdout
    assert "failed: server error HTTP 500" in result.stdout
    assert "Not attempted (" in result.stdout
    created = listed_numbers(pbx_env)
    assert f"Apply: {len(created)} created, 0 already present, 1 failed" in (
        result.stdout
    )


# --- apply config ---------------------------------------------------------------


def test_reload_that_hangs_times_out(pbx_env: SandboxServer, tmp_path: Path) -> None:
    path = write_yaml(tmp_path, THREE)
    pbx_env.faults = Faults(reload="hang")
    result = apply(path, "--reload-timeout", "1")
    assert result.exit_code == 1
    waited = re.search(
        r"Apply config: timed out \(transaction 1\) after (\S+) s", result.stdout
    )
    assert waited is not None, result.stdout
    assert float(waited.group(1)) >= 1.0
    assert "raise --reload-timeout or check the reload in the FreePBX web" in (
        result.stdout
    )
    assert "apply config timed out; 0 not converged." in result.stdout

    # While the first reload hangs, another one cannot start, and the output
    # never claims that it did.
    rerun = apply(path, "--reload-timeout", "4")
    assert rerun.exit_code == 1
    assert "FreePBX has changes that no apply config has applied yet" in rerun.stdout
    assert (
        "another apply config is running, so transaction 2 could not start; trying "
        "again in 0.5 s"
    ) in rerun.stdout
    assert "Apply config: started" not in rerun.stdout
    gave_up = re.search(
        r"Apply config: timed out \(transaction \d+\) after (\S+) s: another apply "
        r"config was still running, so ours could not start; raise --reload-timeout",
        rerun.stdout,
    )
    assert gave_up is not None, rerun.stdout
    # The last try comes at the deadline, not one wait before it.
    assert float(gave_up.group(1)) >= 4.0

    pbx_env.faults = Faults()
    final = apply(path)
    assert final.exit_code == 0, final.stdout
    assert "Apply config: executed" in final.stdout


def test_reload_failure_reported_with_details(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    path = write_yaml(tmp_path, THREE)
    pbx_env.faults = Faults(reload="fail")
    result = apply(path)
    assert result.exit_code == 1
    assert "Apply config: failed (transaction 1) after " in result.stdout
    assert ": Failed to restart asterisk." in result.stdout
    assert "Apply: 3 created, 0 already present, 0 failed, 0 not attempted; " in (
        result.stdout
    )

    pbx_env.faults = Faults()
    rerun = apply(path)
    assert rerun.exit_code == 0, rerun.stdout
    assert "Apply config: executed (transaction 2)" in rerun.stdout
    reload_requests = operations(pbx_env)[-4:-1]
    assert reload_requests == ["fetchNeedReload", "doreload", "fetchApiStatus"]


def test_lost_doreload_response_not_resent(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    pbx_env.faults = Faults(reset_after_on=selectors("doreload"))
    result = apply(write_yaml(tmp_path, THREE))
    assert result.exit_code == 1
    assert "Apply config: not confirmed" in result.stdout
    assert "FreePBX may be applying the configuration, so check Apply Config" in (
        result.stdout
    )
    assert operations(pbx_env).count("doreload") == 1


# --- unreachable PBX ------------------------------------------------------------


def test_connection_refused_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FREEPBX_CLIENT_SECRET", "unused-secret")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    result = plan(write_yaml(tmp_path, THREE), "--url", url, "--client-id", "x")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: token request to {url}/admin/api/api/token failed: connection refused"
    )


def test_read_timeout_reported(pbx_env: SandboxServer, tmp_path: Path) -> None:
    pbx_env.faults = Faults(latency_ms=500)
    result = plan(write_yaml(tmp_path, THREE), "--read-timeout", "0.1")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: token request to {pbx_env.url}/admin/api/api/token failed: timed "
        "out waiting for the answer"
    )


def test_dns_failure_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The resolver is faked: a real lookup of a .invalid name would still send
    # a query to the configured DNS server.
    looked_up: list[str] = []

    def no_such_host(host: str, *args: object, **kwargs: object) -> object:
        looked_up.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    monkeypatch.setenv("FREEPBX_CLIENT_SECRET", "unused-secret")
    result = run_cli(
        "plan",
        "-f",
        str(write_yaml(tmp_path, THREE)),
        "--url",
        "https://pbx.invalid",
        "--client-id",
        "x",
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: token request to https://pbx.invalid/admin/api/api/token failed: "
        "host name not found (DNS)"
    )
    assert set(looked_up) == {"pbx.invalid"}


# --- Ctrl-C ---------------------------------------------------------------------


def test_ctrl_c_stops_after_request_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    five = THREE + (
        '  - {extension: "4004", name: Dee Dunn, email: dee@example.com}\n'
        '  - {extension: "4005", name: Eve Ely, email: eve@example.com}\n'
    )
    path = write_yaml(tmp_path, five)
    with SandboxServer(tmp_path / "pbx.sqlite3", reload_seconds=0.2) as server:
        server.faults = Faults(latency_ms=300)
        env = _child_env(server)
        command = [sys.executable, "-m", "reconciler", "apply", "-f", str(path)]
        command += ["--allow-http", "--yes"]
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path
        ) as child:
            assert child.stdout is not None
            lines = []
            for line in child.stdout:
                lines.append(line)
                if line.startswith("[1/5] "):
                    child.send_signal(signal.SIGINT)
            code = child.wait(timeout=30)
        output = "".join(lines)
        created = listed_numbers(server)
        ops = operations(server)

        use_sandbox(server, monkeypatch)
        server.faults = Faults()
        rerun = apply(path)

    assert code == 1
    assert "Interrupted: stopped after the request in flight." in output
    assert (
        "Apply config: not run (interrupted); the next reconciler apply runs it"
        in output
    )
    assert len(created) in (1, 2)
    assert f"Apply: {len(created)} created, 0 already present, 0 failed, " in output
    assert f"Not attempted ({5 - len(created)}):" in output
    assert "doreload" not in ops

    assert rerun.exit_code == 0, rerun.stdout
    assert f"Apply: {5 - len(created)} created" in rerun.stdout
    assert "Apply config: executed" in rerun.stdout


def test_sigterm_stops_after_request_in_flight(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, THREE)
    target = tmp_path / "new-hires.csv"
    with SandboxServer(tmp_path / "pbx.sqlite3", reload_seconds=0.2) as server:
        server.faults = Faults(latency_ms=300)
        with _apply_in_child(path, target, server) as child:
            assert child.stdout is not None
            lines = []
            for line in child.stdout:
                lines.append(line)
                if line.startswith("[1/3] "):
                    child.send_signal(signal.SIGTERM)
            code = child.wait(timeout=30)
            assert child.stderr is not None
            errors = child.stderr.read()
        created = listed_numbers(server)

    output = "".join(lines)
    assert code == 1, output + errors
    assert "SIGTERM: stopping after the request in flight" in errors
    assert "Interrupted: stopped after the request in flight." in output
    assert f"Apply: {len(created)} created, 0 already present, 0 failed, " in output
    rows = target.read_text(encoding="utf-8").splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == created
    assert all(row.endswith(",created") for row in rows[1:])


def test_second_signal_names_extension_in_flight(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, THREE)
    target = tmp_path / "new-hires.csv"
    with SandboxServer(tmp_path / "pbx.sqlite3", reload_seconds=0.2) as server:
        # The second addExtension takes 3 s, long enough for both signals.
        server.faults = Faults(latency_ms=3000, latency_on=selectors("addExtension:2"))
        with _apply_in_child(path, target, server) as child:
            assert child.stdout is not None
            for line in child.stdout:
                if line.startswith("[1/3] "):
                    time.sleep(0.5)
                    child.send_signal(signal.SIGINT)
                    time.sleep(0.3)
                    child.send_signal(signal.SIGTERM)
            code = child.wait(timeout=30)
            assert child.stderr is not None
            errors = child.stderr.read()

    assert code != 0
    assert (
        "Aborted (SIGTERM) while the request for extension 4002 was in flight: its "
        "outcome is unknown."
    ) in errors
    rows = target.read_text(encoding="utf-8").splitlines()
    statuses = {row.split(",")[0]: row.split(",")[-1] for row in rows[1:]}
    assert statuses == {"4001": "created", "4002": "unconfirmed"}


def _stop(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGINT)
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        # A child started with SIGINT ignored (as by a shell's "&") ignores it.
        child.kill()
        child.wait()


def _apply_in_child(
    path: Path, target: Path, server: SandboxServer
) -> subprocess.Popen[str]:
    """Start `reconciler apply` in its own process, so a test can signal it."""
    command = [sys.executable, "-m", "reconciler", "apply", "-f", str(path)]
    command += ["--allow-http", "--yes", "--credentials-out", str(target)]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_child_env(server),
        cwd=path.parent,
    )


def _child_env(server: SandboxServer | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    if server is not None:
        env["FREEPBX_URL"] = server.url
        env["FREEPBX_CLIENT_ID"] = server.client_id
        env["FREEPBX_CLIENT_SECRET"] = server.client_secret
    return env


# --- outcomes that stop an apply or stay unknown --------------------------------


def test_slow_add_stays_unknown_with_secrets(
    pbx_env: SandboxServer, tmp_path: Path
) -> None:
    # FreePBX runs the first addExtension 3 s after the client gave up at 1 s,
    # later than the verification read.
    pbx_env.faults = Faults(latency_ms=3000, latency_on=selectors("addExtension:1"))
    target = tmp_path / "slow.csv"
    result = apply(
        write_yaml(tmp_path, THREE),
        "--read-timeout",
        "1",
        "--credentials-out",
        str(target),
    )
    assert result.exit_code == 1
    assert "  ? 4001  Ann Arbor: addExtension: no answer from " in result.stdout
    assert "the verification read does not list it" in result.stdout
    assert "not created" not in result.stdout
    assert "Apply: 2 created, 0 already present, 0 failed, 1 outcome unknown," in (
        result.stdout
    )

    rows = target.read_text(encoding="utf-8").splitlines()
    unconfirmed = [row.split(",") for row in rows[1:] if row.startswith("4001,")]
    assert len(unconfirmed) == 1
    assert unconfirmed[0][6] == "unconfirmed"
    assert len(unconfirmed[0][3]) == 6  # the PIN that FreePBX got
    assert len(unconfirmed[0][5]) == 20  # the User Manager password
    deadline = time.monotonic() + 10
    while "4001" not in listed_numbers(pbx_env) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "4001" in listed_numbers(pbx_env)


def test_rejected_fresh_token_stops_apply(
    pbx_env: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_add = freepbx.add_extension

    def add_then_reject_tokens(*args: Any) -> str:
        message = real_add(*args)
        # From now on FreePBX rejects every token, old and new.
        pbx_env.faults = Faults(token_lifetime_seconds=0)
        return message

    monkeypatch.setattr(freepbx, "add_extension", add_then_reject_tokens)
    target = tmp_path / "new-hires.csv"
    result = apply(write_yaml(tmp_path, THREE), "--credentials-out", str(target))
    assert result.exit_code == 1
    assert "[2/3] 4002 Bob Baker: failed (not run: addExtension failed (HTTP 401)" in (
        result.stdout
    )
    assert "Stopped: FreePBX rejects even a new access token: " in result.stdout
    assert "Not attempted (1):\n  - 4003  Cid Cole" in result.stdout
    assert "Apply config: not run (apply stopped)" in result.stdout
    ops = operations(pbx_env)
    assert ops.count("token") == 2
    assert "doreload" not in ops
    rows = target.read_text(encoding="utf-8").splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["4001"]


def test_unreachable_pbx_skips_apply_config(
    pbx_env: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_add = freepbx.add_extension

    def add_then_stop_pbx(client: FreePBXClient, *args: Any) -> str:
        message = real_add(client, *args)
        pbx_env.stop()
        # A stopped server still serves the open keep-alive connection, so the
        # next request must open a new one.
        assert client._connection is not None
        client._connection.close()
        return message

    monkeypatch.setattr(freepbx, "add_extension", add_then_stop_pbx)
    result = apply(write_yaml(tmp_path, THREE))
    assert result.exit_code == 1
    assert "Stopped: addExtension: cannot reach " in result.stdout
    assert ": connection refused" in result.stdout
    assert "Apply config: not run (apply stopped)" in result.stdout
    assert "Apply: 1 created, 0 already present, 1 failed, 1 not attempted;" in (
        result.stdout
    )
    assert "doreload" not in operations(pbx_env)


def test_https_sandbox_prints_ca_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    options = ["--tls-cert", str(cert), "--tls-key", str(key)]
    banner, settings, result = plan_against_sandbox_command(
        tmp_path, monkeypatch, options
    )
    assert settings["FREEPBX_CA_BUNDLE"] == str(cert.resolve())
    assert banner[5] == (
        "Set FREEPBX_CA_BUNDLE to the CA's certificate instead if a CA signed "
        "cert.pem. Ctrl-C stops it.\n"
    )
    assert result.exit_code == 0, result.stderr
    assert "Plan: 13 to create" in result.stdout


def test_stop_ends_delayed_request_cleanly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = SandboxServer(tmp_path / "pbx.sqlite3")
    server.start()
    server.faults = Faults(latency_ms=60_000)
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(b"POST /admin/api/api/token HTTP/1.1\r\nHost: x\r\n")
        client.sendall(b"Content-Length: 0\r\n\r\n")
        time.sleep(0.3)  # the request is now in its delay
        server.stop()
        # The delayed request closes unanswered, as if the PBX went away.
        try:
            answer = client.recv(1024)
        except ConnectionResetError:
            answer = b""
    assert answer == b""
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
