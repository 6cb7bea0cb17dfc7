"""Usage and parameter errors: one `Error:` line, exit 1, never a traceback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_cli, write_yaml

from reconciler.sandbox.faults import Faults
from reconciler.sandbox.server import SandboxServer

ROOT = Path(__file__).parent.parent
ONE = """\
version: 1
extensions:
  - extension: "4001"
    name: Ann Lee
    email: ann@example.com
"""


def run_main(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m reconciler` as the console script does, in a child process."""
    child_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True,
        text=True,
        env=child_env,
        cwd=cwd or ROOT,
        timeout=60,
    )


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in tmp_path, so that --sandbox keeps its state file there."""
    monkeypatch.chdir(tmp_path)
    write_yaml(tmp_path, ONE)
    return tmp_path


# --- usage errors ----------------------------------------------------------------


def test_unknown_option_exits_1() -> None:
    result = run_main("plan", "--bogus", "--detailed-exitcode")

    assert result.returncode == 1
    assert "Error: No such option: --bogus" in result.stderr
    assert "Usage: reconciler plan" in result.stderr


def test_invalid_timeout_variable_exits_1() -> None:
    result = run_main("plan", env={"FREEPBX_CONNECT_TIMEOUT": "abc"})

    assert result.returncode == 1
    assert "Invalid value for '--connect-timeout'" in result.stderr


def test_unknown_command_exits_1() -> None:
    result = run_main("bogus")

    assert result.returncode == 1
    assert "No such command 'bogus'" in result.stderr


def test_help_exits_0() -> None:
    result = run_main("plan", "--help")

    assert result.returncode == 0
    assert "--detailed-exitcode" in result.stdout


def test_drift_still_exits_2(tmp_path: Path) -> None:
    write_yaml(tmp_path, ONE)
    result = run_main("plan", "--sandbox", "--detailed-exitcode", cwd=tmp_path)

    assert result.returncode == 2, result.stderr
    assert "Plan: 1 to create" in result.stdout


# --- connection settings ------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ("--connect-timeout", "-1"),
            "Error: invalid --connect-timeout (FREEPBX_CONNECT_TIMEOUT) -1: a "
            "timeout must be a positive number of seconds",
        ),
        (
            ("--read-timeout", "0"),
            "Error: invalid --read-timeout (FREEPBX_READ_TIMEOUT) 0: a timeout "
            "must be a positive number of seconds",
        ),
        (
            ("--read-timeout", "100000000000"),
            "Error: invalid --read-timeout (FREEPBX_READ_TIMEOUT) 1e+11: a timeout "
            "must be a positive number of seconds up to 86,400, for example 10",
        ),
    ],
)
def test_sandbox_timeout_rejected(
    in_tmp: Path, options: tuple[str, str], message: str
) -> None:
    result = run_cli("plan", "--sandbox", *options)

    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stdout == ""


def test_unclosed_ipv6_url_rejected(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FREEPBX_CLIENT_SECRET", "secret")
    result = run_cli("plan", "--url", "http://[::1", "--client-id", "a")

    assert result.exit_code == 1
    assert "Error: invalid FreePBX URL 'http://[::1' (Invalid IPv6 URL)" in (
        result.stderr
    )


def test_url_host_not_dns_name_rejected(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FREEPBX_CLIENT_SECRET", "secret")
    url = f"https://{'a' * 64}.example"
    result = run_cli("plan", "--url", url, "--client-id", "a")

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: invalid FreePBX URL {url!r}: the host is neither an IP address "
        "nor a valid DNS name (labels of 1 to 63 characters, separated by dots)"
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/free pbx",
        "https://127.0.0.1/fréepbx",
        "https://127.0.0.1/a\x7f",
    ],
)
def test_url_path_outside_ascii_rejected(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("FREEPBX_CLIENT_SECRET", "secret")
    result = run_cli("plan", "--url", url, "--client-id", "a")

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: invalid FreePBX URL {url!r}: its path contains a space, a control "
        "character or a character outside ASCII; percent-encode it, for example "
        "%20 for a space"
    )


def test_missing_ca_bundle_rejected(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FREEPBX_CLIENT_SECRET", "secret")
    result = run_cli(
        "plan",
        "--url",
        "https://127.0.0.1:1",
        "--client-id",
        "a",
        "--ca-bundle",
        str(in_tmp / "missing.pem"),
    )

    assert result.exit_code == 1
    assert "missing.pem (--ca-bundle, FREEPBX_CA_BUNDLE) not found" in result.stderr


# --- output files ------------------------------------------------------------------


def test_plan_out_missing_directory(in_tmp: Path) -> None:
    result = run_cli("plan", "--sandbox", "--out", str(in_tmp / "no" / "p.json"))

    assert result.exit_code == 1
    assert "the directory" in result.stderr
    assert "does not exist" in result.stderr
    # Checked before the PBX is read, so no plan is printed.
    assert result.stdout == ""


def test_plan_out_never_overwrites_file(in_tmp: Path) -> None:
    for extra in ((), ("--force",)):
        result = run_cli("plan", "--sandbox", "--out", "extensions.yaml", *extra)

        assert result.exit_code == 1
        assert "--out extensions.yaml is the extensions file itself" in result.stderr
    assert (in_tmp / "extensions.yaml").read_text(encoding="utf-8") == ONE


@pytest.mark.parametrize("force", [(), ("--force",)])
def test_out_dangling_symlink_rejected(in_tmp: Path, force: tuple[str, ...]) -> None:
    (in_tmp / "plan.json").symlink_to("elsewhere/plan.json")
    (in_tmp / "export.yaml").symlink_to("missing.yaml")

    planned = run_cli("plan", "--sandbox", "--out", "plan.json", *force)
    exported = run_cli("export", "--sandbox", "-o", "export.yaml", *force)

    assert planned.exit_code == 1
    assert planned.stderr.splitlines()[-1] == (
        "Error: --out plan.json is a symbolic link to the missing file "
        "elsewhere/plan.json; remove the link or name another file"
    )
    assert planned.stdout == ""
    assert exported.exit_code == 1
    assert exported.stderr.splitlines()[-1] == (
        "Error: export.yaml is a symbolic link to the missing file missing.yaml; "
        "remove the link or choose another file with -o"
    )
    assert not (in_tmp / "missing.yaml").exists()


def test_plan_out_existing_needs_force(in_tmp: Path) -> None:
    saved = in_tmp / "plan.json"
    saved.write_text("keep", encoding="utf-8")

    refused = run_cli("plan", "--sandbox", "--out", str(saved))
    forced = run_cli("plan", "--sandbox", "--out", str(saved), "--force")

    assert refused.exit_code == 1
    assert "already exists; pass --force to overwrite it" in refused.stderr
    assert forced.exit_code == 0, forced.stderr
    assert '"kind": "reconciler-saved-plan"' in saved.read_text(encoding="utf-8")


def test_export_missing_directory(in_tmp: Path) -> None:
    result = run_cli("export", "--sandbox", "-o", str(in_tmp / "no" / "x.yaml"))

    assert result.exit_code == 1
    assert "Error: cannot write" in result.stderr
    assert "does not exist" in result.stderr


# --- the file ----------------------------------------------------------------------


def test_lone_surrogate_rejected(in_tmp: Path) -> None:
    path = write_yaml(in_tmp, ONE.replace("Ann Lee", '"Ann \\ud800 Lee"'))

    checked = run_cli("validate", str(path))
    planned = run_cli("plan", "--sandbox", "-f", str(path))

    assert checked.exit_code == 1
    assert (
        f"{path}:4:11: extensions[0].name: contains the lone surrogate U+D800"
        in checked.stderr
    )
    assert planned.exit_code == 1
    assert "lone surrogate U+D800" in planned.stderr


# --- sandbox -----------------------------------------------------------------------


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_sandbox_port_out_of_range(in_tmp: Path, port: str) -> None:
    result = run_cli("sandbox", "--port", port)

    assert result.exit_code == 1
    assert f"Error: invalid --port {port}: give 1 to 65535" in result.stderr


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_sandbox_busy_port(in_tmp: Path, busy_port: int) -> None:
    result = run_cli("sandbox", "--port", str(busy_port))

    assert result.exit_code == 1
    assert "the port is in use" in result.stderr
    assert "--port 0" in result.stderr


@pytest.mark.parametrize(
    ("state_file", "reason"),
    [
        ("missing/x.db", "unable to open database file"),
        ("extensions.yaml", "file is not a database"),
    ],
)
def test_sandbox_bad_state_file(in_tmp: Path, state_file: str, reason: str) -> None:
    result = run_cli("sandbox", "--port", "0", "--state-file", state_file)

    assert result.exit_code == 1
    assert f"Error: cannot use {state_file} as the sandbox state file" in (
        result.stderr
    )
    assert reason in result.stderr
    assert (in_tmp / "extensions.yaml").read_text(encoding="utf-8") == ONE


def test_sandbox_unknown_fault_operation(in_tmp: Path) -> None:
    result = run_cli("sandbox", "--port", "0", "--fault", "http-500=addExtensoin:2")

    assert result.exit_code == 1
    assert "unknown operation 'addExtensoin'" in result.stderr
    assert "did you mean addExtension?" in result.stderr


# --- Ctrl-C ------------------------------------------------------------------------


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_stop_during_read_reports_nothing_created(
    tmp_path: Path, stop: signal.Signals
) -> None:
    # A CI runner stops a job with SIGTERM; it is reported as Ctrl-C is.
    path = write_yaml(tmp_path, ONE)
    with SandboxServer(tmp_path / "pbx.sqlite3") as server:
        server.faults = Faults(latency_ms=10_000)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "FREEPBX_URL": server.url,
            "FREEPBX_CLIENT_ID": server.client_id,
            "FREEPBX_CLIENT_SECRET": server.client_secret,
        }
        command = [sys.executable, "-m", "reconciler", "plan", "-f", str(path)]
        with subprocess.Popen(
            [*command, "--allow-http"],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        ) as child:
            # By then the child waits for its token request, held up 10 s.
            time.sleep(3)
            child.send_signal(stop)
            _, stderr = child.communicate(timeout=30)

    assert child.returncode == 130
    assert "Interrupted; nothing was created." in stderr
    assert "Traceback" not in stderr


# --- apply options and validate hints -------------------------------------------


def test_apply_plan_file_rejects_file_option(in_tmp: Path) -> None:
    saved = in_tmp / "plan.json"
    made = run_cli("plan", "--sandbox", "--out", str(saved))
    result = run_cli("apply", str(saved), "-f", "other.yaml", "--sandbox", "--yes")

    assert made.exit_code == 0, made.stderr
    assert result.exit_code == 1
    assert f"pass either the saved plan {saved} or --file other.yaml" in (result.stderr)


def test_apply_negative_max_creates(in_tmp: Path) -> None:
    result = run_cli("apply", "--sandbox", "--yes", "--max-creates", "-1")

    assert result.exit_code == 1
    assert "Error: invalid --max-creates -1: give 0 or more" in result.stderr


def test_validate_missing_positional_file(in_tmp: Path) -> None:
    result = run_cli("validate", "nope.yaml")

    assert result.exit_code == 1
    assert "nope.yaml:1:1: file not found; check the path" in result.stderr
    assert "--file" not in result.stderr


def test_quoted_long_group_id(in_tmp: Path) -> None:
    path = write_yaml(
        in_tmp, ONE + "    user_manager: {groups: ['999999999999']}\n", "groups.yaml"
    )
    result = run_cli("validate", str(path))

    assert result.exit_code == 1
    assert (
        "'999999999999' is not a User Manager group id; a group id is 1 to 10 digits"
        in result.stderr
    )
    assert "in quotes" not in result.stderr


def test_version_option() -> None:
    from reconciler import __version__

    result = run_cli("--version")
    assert result.exit_code == 0
    assert result.stdout == f"reconciler {__version__}\n"


def test_command_summaries_not_cut() -> None:
    result = run_cli("--help")

    assert result.exit_code == 0
    commands = result.stdout.split("Commands:")[1].splitlines()
    summaries = [line.split(None, 1) for line in commands if line.strip()]
    assert [name for name, _ in summaries] == [
        "validate",
        "plan",
        "apply",
        "export",
        "add",
        "sandbox",
    ]
    for name, summary in summaries:
        assert summary.endswith("."), name
        assert not summary.endswith("..."), name
