"""The command line: parse options, call the library, render the results.

Exit codes: 0 success or nothing to do, 1 error, 2 changes or drift (plan
with --detailed-exitcode only). Heavy modules are imported inside the
commands so that `reconciler validate` starts fast enough for a pre-commit hook.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from reconciler.errors import InvalidDesiredState, ReconcilerError
from reconciler.redact import RedactingFilter, redact
from reconciler.settings import (
    DEFAULT_SCOPE,
    ConnectionSettings,
    build_settings,
    check_timeouts,
)

if TYPE_CHECKING:
    from reconciler.applier import ApplyResult
    from reconciler.client import FreePBXClient
    from reconciler.credentials import CredentialsFile
    from reconciler.models import DesiredExtension, DesiredState, LiveState
    from reconciler.planner import Plan
    from reconciler.saved_plan import SavedPlan
    from reconciler.userman import EmailState

log = logging.getLogger("reconciler")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
SANDBOX_STATE_FILE = ".reconciler-sandbox.sqlite3"

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="FreePBX extensions as code: validate, plan and apply extensions.yaml.",
)


def _print_version(value: bool) -> None:
    if value:
        from reconciler import __version__

        typer.echo(f"reconciler {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """FreePBX extensions as code: validate, plan and apply extensions.yaml."""


FileOption = Annotated[
    Path, typer.Option("--file", "-f", help="The desired-state file.")
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        envvar="FREEPBX_URL",
        help="Base URL of the FreePBX web interface, e.g. https://pbx.example.com.",
    ),
]
ClientIdOption = Annotated[
    str | None,
    typer.Option(
        envvar="FREEPBX_CLIENT_ID",
        help="OAuth2 client id of the API application. The secret is read from "
        "FREEPBX_CLIENT_SECRET only, never from a flag.",
    ),
]
ScopeOption = Annotated[
    str, typer.Option(envvar="FREEPBX_SCOPE", help="OAuth2 scopes to request.")
]
CaBundleOption = Annotated[
    str | None,
    typer.Option(
        envvar="FREEPBX_CA_BUNDLE",
        help="CA bundle (PEM file) that verifies the PBX's TLS certificate.",
    ),
]
ConnectTimeoutOption = Annotated[
    float,
    typer.Option(
        envvar="FREEPBX_CONNECT_TIMEOUT",
        help="Seconds to wait for the TCP connect, and again for a proxy's "
        "tunnel and the TLS handshake together.",
    ),
]
ReadTimeoutOption = Annotated[
    float,
    typer.Option(
        envvar="FREEPBX_READ_TIMEOUT",
        help="Seconds allowed for each request, from sending it to the last "
        "byte of its response.",
    ),
]
AllowHttpOption = Annotated[
    bool,
    typer.Option(
        "--allow-http",
        help="Accept a plain http:// URL; the secret and token then cross the "
        "network unencrypted.",
    ),
]
SandboxOption = Annotated[
    bool,
    typer.Option(
        "--sandbox",
        help="Run against the built-in sandbox PBX, started in-process on "
        f"127.0.0.1 with its state in ./{SANDBOX_STATE_FILE}.",
    ),
]
DebugOption = Annotated[
    bool,
    typer.Option(
        "--debug", help="Log each request and show tracebacks (secrets masked)."
    ),
]


EXIT_INTERRUPTED = 130
# Set once apply starts creating, so that an abort reports what it may have left.
_creations_started = False


def main() -> None:
    """Run the CLI; the console script's entry point.

    Typer runs outside its standalone mode because click exits 2 on a usage
    error, the code that `plan --detailed-exitcode` gives to changes. Here a
    usage error exits 1.
    """
    from typer._click.exceptions import ClickException

    # CI runners stop a job with SIGTERM: report it as Ctrl-C is reported.
    # Apply replaces this handler while it creates, to stop after the request
    # in flight.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        code = app(prog_name="reconciler", standalone_mode=False)
    except ClickException as error:
        # NOTE: typer 0.26 and later vendor click and export no public base
        # class of its usage errors, hence the private import.
        error.show()
        sys.exit(EXIT_ERROR)
    except typer.Abort:
        # Ctrl-C or end of input at a confirmation prompt.
        _report_interrupt()
        sys.exit(EXIT_ERROR)
    if code == EXIT_INTERRUPTED:
        # Typer turns a KeyboardInterrupt that no command caught into exit 130.
        _report_interrupt()
    sys.exit(code if isinstance(code, int) else EXIT_OK)


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _report_interrupt() -> None:
    if _creations_started:
        echo(
            "Interrupted; some extensions may have been created: run reconciler "
            "plan to see which.",
            err=True,
        )
    else:
        echo("Interrupted; nothing was created.", err=True)


# --- validate -------------------------------------------------------------------


@app.command(short_help="Check files against the schema and rules, sending nothing.")
def validate(
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Files to check, as a pre-commit hook passes them; each is "
            "checked even when an earlier one is invalid.",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", "-f", help="The desired-state file [default: extensions.yaml]."
        ),
    ] = None,
) -> None:
    """Check each file against the schema and the rules a schema cannot state.

    Every problem is printed as FILE:LINE:COLUMN: message; exit 1 if any file
    has one. No request is sent.

    Example: reconciler validate -f extensions.yaml
    """
    from reconciler.validate_command import run_validate

    paths = [*(files or []), *([file] if file is not None else [])]
    exit_code = run_validate(paths, echo, lambda text: echo(text, err=True))
    if exit_code:
        raise typer.Exit(exit_code)


# --- plan -----------------------------------------------------------------------


@app.command(
    short_help="Show what apply would create, what drifted, what is unmanaged."
)
def plan(
    file: FileOption = Path("extensions.yaml"),
    url: UrlOption = None,
    client_id: ClientIdOption = None,
    scope: ScopeOption = DEFAULT_SCOPE,
    ca_bundle: CaBundleOption = None,
    connect_timeout: ConnectTimeoutOption = 10.0,
    read_timeout: ReadTimeoutOption = 60.0,
    allow_http: AllowHttpOption = False,
    sandbox: SandboxOption = False,
    detailed_exitcode: Annotated[
        bool,
        typer.Option(
            "--detailed-exitcode",
            help="Exit 2 when there is something to create or drift, 0 when not.",
        ),
    ] = False,
    output_format: Annotated[
        str,
        typer.Option(
            "--format", help="Output format: text, json (versioned) or markdown."
        ),
    ] = "text",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Also save the plan with fingerprints of the file and the PBX "
            "state, for reconciler apply PLAN_FILE.",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Overwrite the --out file if it exists (never the extensions file).",
        ),
    ] = False,
    debug: DebugOption = False,
) -> None:
    """Read the PBX once and show what apply would create, drift and the rest.

    Example: reconciler plan -f extensions.yaml --detailed-exitcode
    """
    from reconciler.desired import load_desired_state
    from reconciler.missing_email import check_creates_have_email
    from reconciler.saved_plan import check_out_path, write_saved_plan

    _setup_logging(debug)
    if output_format not in PLAN_FORMATS:
        fail(f"invalid --format {output_format!r}; use text, json or markdown")
    with _errors_reported(debug):
        if out is not None:
            check_out_path(out, file, force)  # before any request
        desired = load_desired_state(file)
        connection = _ConnectionOptions(
            url, client_id, scope, ca_bundle, connect_timeout, read_timeout, allow_http
        )
        with _connection(sandbox, connection) as settings:
            the_plan, live = _compute_plan(settings, desired)
        target = _target_identity(settings, sandbox)
        echo(_render(the_plan, output_format, str(file), target))
        _warn_secret_sources(the_plan)
        check_creates_have_email(the_plan, str(file), applying=False)
        if out is not None:
            write_saved_plan(out, the_plan, file, target, live, force=force)
            echo(
                f"Saved the plan to {out}; apply it with: reconciler apply {out}",
                err=True,
            )
    if detailed_exitcode and the_plan.has_changes:
        raise typer.Exit(EXIT_CHANGES)


PLAN_FORMATS = ("text", "json", "markdown")


def _warn_secret_sources(the_plan: Plan) -> None:
    """Warn about the unusable environment secrets that apply would stop at."""
    from reconciler.credentials import secret_source_problems

    for problem in secret_source_problems(the_plan.creates):
        echo(f"Warning: {problem}; apply stops before creating anything", err=True)


def _render(the_plan: Plan, output_format: str, source: str, target: str) -> str:
    from reconciler.plan_formats import render_json, render_markdown
    from reconciler.render import render_plan

    if output_format == "json":
        return render_json(the_plan, source, target)
    if output_format == "markdown":
        return render_markdown(the_plan, source, target)
    return _colourize(render_plan(the_plan, source, target))


_MARKER_COLOURS = {"  + ": "green", "  ~ ": "yellow", "  ? ": "cyan", "  ! ": "red"}


def _colourize(text: str) -> str:
    """Colour the plan's markers on a terminal, unless NO_COLOR is set."""
    if os.environ.get("NO_COLOR") or not sys.stdout.isatty():
        return text
    lines = []
    for line in text.splitlines():
        colour = _MARKER_COLOURS.get(line[:4])
        lines.append(typer.style(line, fg=colour) if colour else line)
    return "\n".join(lines)


# --- apply ----------------------------------------------------------------------


@app.command(short_help="Create the missing extensions, apply config once, verify.")
def apply(
    plan_file: Annotated[
        Path | None,
        typer.Argument(
            help="A plan saved by reconciler plan --out; it is applied only if "
            "neither the file nor the PBX changed since."
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            help="The desired-state file [default: extensions.yaml]; not with "
            "PLAN_FILE, which names its own.",
            show_default=False,
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Apply without asking for confirmation.")
    ] = False,
    credentials_out: Annotated[
        Path | None,
        typer.Option(
            "--credentials-out",
            help="Write the PINs and passwords of created extensions to this new "
            "file (CSV, mode 0600; an existing file is never overwritten).",
        ),
    ] = None,
    reload_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds to wait for apply config to finish (a real FreePBX takes "
            "from half a minute to several minutes)."
        ),
    ] = 600.0,
    max_creates: Annotated[
        int | None,
        typer.Option(
            help="Refuse to create more extensions than this (overrides max_creates "
            "in the file)."
        ),
    ] = None,
    url: UrlOption = None,
    client_id: ClientIdOption = None,
    scope: ScopeOption = DEFAULT_SCOPE,
    ca_bundle: CaBundleOption = None,
    connect_timeout: ConnectTimeoutOption = 10.0,
    read_timeout: ReadTimeoutOption = 60.0,
    allow_http: AllowHttpOption = False,
    sandbox: SandboxOption = False,
    debug: DebugOption = False,
) -> None:
    """Create the missing extensions, apply config once, and verify the result.

    Never updates or deletes. Exit 0 only when every extension was created,
    apply config finished and a final read shows the desired state.

    Example: reconciler apply -f extensions.yaml --yes --credentials-out new.csv
    """
    from reconciler.desired import load_desired_state
    from reconciler.saved_plan import check_desired_unchanged, read_saved_plan

    _setup_logging(debug)
    if not yes and not sys.stdin.isatty():
        fail("apply needs --yes when no terminal can confirm (CI); nothing was sent")
    if not math.isfinite(reload_timeout) or reload_timeout <= 0:
        fail(
            f"invalid --reload-timeout {reload_timeout}: give a positive number "
            "of seconds"
        )
    if max_creates is not None and max_creates < 0:
        fail(f"invalid --max-creates {max_creates}: give 0 or more extensions")
    if plan_file is not None and file is not None:
        fail(
            f"pass either the saved plan {plan_file} or --file {file}, not both: "
            "the saved plan names the file it was made from"
        )
    if file is None:
        file = Path("extensions.yaml")
    with _errors_reported(debug):
        saved = None
        if plan_file is not None:
            saved = read_saved_plan(plan_file)
            file = Path(saved.desired_path)
            check_desired_unchanged(saved, plan_file)
        desired = load_desired_state(file)
        connection = _ConnectionOptions(
            url, client_id, scope, ca_bundle, connect_timeout, read_timeout, allow_http
        )
        with _connection(sandbox, connection) as settings:
            run = _ApplyRun(
                desired=desired,
                file=file,
                target=_target_identity(settings, sandbox),
                yes=yes,
                credentials_out=credentials_out,
                reload_timeout=reload_timeout,
                max_creates=max_creates,
                saved=saved,
                plan_path=plan_file,
            )
            result = _apply(settings, run)
    if result is not None and not result.succeeded:
        raise typer.Exit(EXIT_ERROR)


@dataclass
class _ApplyRun:
    """The inputs of one apply, as the user gave them."""

    desired: DesiredState
    file: Path
    target: str
    yes: bool
    credentials_out: Path | None
    reload_timeout: float
    max_creates: int | None
    saved: SavedPlan | None = None
    plan_path: Path | None = None


def _apply(settings: ConnectionSettings, run: _ApplyRun) -> ApplyResult | None:
    from reconciler import pbx
    from reconciler.applier import ApplyOptions, apply_plan
    from reconciler.client import FreePBXClient
    from reconciler.credentials import check_secret_sources
    from reconciler.missing_email import check_creates_have_email
    from reconciler.planner import compute_plan
    from reconciler.render import render_apply_result, render_create, render_plan
    from reconciler.saved_plan import check_live_unchanged
    from reconciler.scopes import check_apply_scopes
    from reconciler.userman import read_email_state

    with FreePBXClient(settings) as client:
        live = pbx.read_live_state(client)
        if run.saved is not None and run.plan_path is not None:
            check_live_unchanged(run.saved, run.plan_path, run.target, live)
        the_plan = compute_plan(run.desired, live, read_email_state(client))
        echo(_colourize(render_plan(the_plan, str(run.file), run.target)))
        if not the_plan.creates:
            return _apply_pending_config(client, run)
        _check_max_creates(
            len(the_plan.creates), run.max_creates, run.desired.max_creates
        )
        check_creates_have_email(the_plan, str(run.file))
        check_secret_sources(the_plan.creates)
        check_apply_scopes(client)
        count = _plural(len(the_plan.creates), "extension")
        if not run.yes and not typer.confirm(f"Create {count}?", err=True):
            fail("apply cancelled; nothing was created")

        global _creations_started
        _creations_started = True
        with (
            _stop_on_interrupt() as stop,
            _credentials_file(run.credentials_out) as credentials,
        ):
            options = ApplyOptions(
                reload_timeout=run.reload_timeout,
                credentials=credentials,
                on_create=lambda done, total, r: echo(render_create(done, total, r)),
                on_reload=echo,
                stop_requested=stop.requested,
                on_send=stop.track,
            )
            result = apply_plan(client, the_plan, options)
    echo(_colourize(render_apply_result(result)))
    return result


def _apply_pending_config(client: FreePBXClient, run: _ApplyRun) -> ApplyResult | None:
    from reconciler.applier import ApplyOptions, ApplyResult, apply_pending_config
    from reconciler.render import render_apply_result

    options = ApplyOptions(reload_timeout=run.reload_timeout, on_reload=echo)
    reload = apply_pending_config(client, options)
    if reload is None:
        echo("Nothing to create; apply config not needed.")
        return None
    result = ApplyResult(reload=reload)
    echo(_colourize(render_apply_result(result)))
    return result


def _check_max_creates(count: int, flag: int | None, in_file: int | None) -> None:
    limit = flag if flag is not None else in_file
    if limit is not None and count > limit:
        source = "--max-creates" if flag is not None else "max_creates in the file"
        fail(
            f"the plan creates {count} extensions, more than {limit} ({source}); "
            "check FREEPBX_URL and the file, or raise the limit. Nothing was created"
        )


# --- export -----------------------------------------------------------------------


@app.command(short_help="Write the PBX's extensions as an extensions.yaml.")
def export(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write the file here instead of to stdout."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite the --output file if it exists.")
    ] = False,
    url: UrlOption = None,
    client_id: ClientIdOption = None,
    scope: ScopeOption = DEFAULT_SCOPE,
    ca_bundle: CaBundleOption = None,
    connect_timeout: ConnectTimeoutOption = 10.0,
    read_timeout: ReadTimeoutOption = 60.0,
    allow_http: AllowHttpOption = False,
    sandbox: SandboxOption = False,
    debug: DebugOption = False,
) -> None:
    """Read the PBX once and write its extensions as an extensions file.

    A plan of the exported file against the same PBX has nothing to do.

    Example: reconciler export -o extensions.yaml
    """
    from datetime import UTC, datetime

    from reconciler.export import (
        check_output,
        public_url,
        render_export,
        validate_export,
        write_export,
    )

    _setup_logging(debug)
    with _errors_reported(debug):
        if output is not None:
            check_output(output, force)  # before any request
        connection = _ConnectionOptions(
            url, client_id, scope, ca_bundle, connect_timeout, read_timeout, allow_http
        )
        with _connection(sandbox, connection) as settings:
            live, emails = _read_live_state_and_emails(settings)
            source = public_url(_target_identity(settings, sandbox))
        exported = render_export(live, source, datetime.now(UTC), emails)
        validate_export(exported.text)
        if output is None:
            echo(exported.text.removesuffix("\n"))
        else:
            write_export(exported.text, output, force)
    for reason in exported.skipped:
        echo(f"Warning: left out {reason}", err=True)
    if output is not None:
        count = _plural(exported.exported, "extension")
        echo(f"Wrote {count} to {output}.", err=True)


def _read_live_state(settings: ConnectionSettings) -> LiveState:
    from reconciler import pbx
    from reconciler.client import FreePBXClient

    with FreePBXClient(settings) as client:
        return pbx.read_live_state(client)


def _read_live_state_and_emails(
    settings: ConnectionSettings,
) -> tuple[LiveState, EmailState]:
    from reconciler import pbx
    from reconciler.client import FreePBXClient
    from reconciler.userman import read_email_state

    with FreePBXClient(settings) as client:
        return pbx.read_live_state(client), read_email_state(client)


# --- add --------------------------------------------------------------------------


@app.command(short_help="Append a new hire's entry to the file.")
def add(
    name: Annotated[str, typer.Option(help="The new hire's name.")],
    email: Annotated[str, typer.Option(help="The new hire's email address.")],
    extension: Annotated[
        str | None,
        typer.Option(
            help="The number to give; without it, the lowest number of the file's "
            "numbering range that neither the file nor the PBX uses."
        ),
    ] = None,
    file: FileOption = Path("extensions.yaml"),
    offline: Annotated[
        bool,
        typer.Option(
            "--offline", help="Check numbers against the file only, not the PBX."
        ),
    ] = False,
    url: UrlOption = None,
    client_id: ClientIdOption = None,
    scope: ScopeOption = DEFAULT_SCOPE,
    ca_bundle: CaBundleOption = None,
    connect_timeout: ConnectTimeoutOption = 10.0,
    read_timeout: ReadTimeoutOption = 60.0,
    allow_http: AllowHttpOption = False,
    sandbox: SandboxOption = False,
    debug: DebugOption = False,
) -> None:
    """Append a new hire's entry to the file, keeping the rest byte for byte.

    The PBX is read once, unless --offline, and never written; apply creates
    the extension.

    Example: reconciler add --name "Ada Lovelace" --email ada@example.com
    """
    from reconciler import newhire

    _setup_logging(debug)
    with _errors_reported(debug):
        draft = newhire.prepare(file, newhire.NewHire(name, email, extension))
        pbx_numbers = None
        if not offline:
            connection = _ConnectionOptions(
                url,
                client_id,
                scope,
                ca_bundle,
                connect_timeout,
                read_timeout,
                allow_http,
            )
            with _connection(sandbox, connection) as settings:
                live = _read_live_state(settings)
            pbx_numbers = {e.extension for e in live.extensions}
        number = newhire.add(draft, pbx_numbers)
    echo(f"Added extension {number} ({name}) to {file}.")
    echo(f"Review it with: reconciler plan -f {file}", err=True)


# --- sandbox ----------------------------------------------------------------------


@app.command()
def sandbox(
    state_file: Annotated[
        Path, typer.Option(help="SQLite file that keeps the sandbox's state.")
    ] = Path(SANDBOX_STATE_FILE),
    port: Annotated[
        int, typer.Option(help="TCP port on 127.0.0.1; 0 picks a free one.")
    ] = 8080,
    freepbx_version: Annotated[
        int, typer.Option(help="FreePBX version to emulate: 16 or 17.")
    ] = 16,
    reload_seconds: Annotated[
        float, typer.Option(help="How long an emulated apply config takes.")
    ] = 1.0,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            help="Inject a fault, as NAME=VALUE; repeat for more. Forms: "
            "latency-ms=MS, latency-on=SELECTOR, http-500=SELECTOR, "
            "truncate=SELECTOR, reset-after=SELECTOR (run, then reset the "
            "connection), reset-before=SELECTOR, token-lifetime=SECONDS, "
            "reload=hang|fail, race-window=SECONDS (two adds of one number within "
            "it both write rows, as on FreePBX 16). A SELECTOR is N (the Nth "
            "request), OPERATION (each request of it, e.g. fetchAllExtensions) or "
            "OPERATION:N (e.g. addExtension:2).",
            show_default=False,
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(help="Serve HTTPS with this certificate (PEM file)."),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(help="The private key of --tls-cert (PEM file).")
    ] = None,
) -> None:
    """Serve a FreePBX API emulator on 127.0.0.1 until Ctrl-C.

    It prints its URL and client credentials. Example: reconciler sandbox --port 8080
    """
    from reconciler.sandbox.faults import InvalidFault, faults_from_options
    from reconciler.sandbox.server import (
        SandboxServer,
        SandboxStartError,
        serve_forever,
    )

    if freepbx_version not in (16, 17):
        fail("--freepbx-version must be 16 or 17")
    if not 0 <= port <= 65535:
        fail(f"invalid --port {port}: give 1 to 65535, or 0 to pick a free port")
    if (tls_cert is None) != (tls_key is None):
        fail("--tls-cert and --tls-key go together; pass both or neither")
    if not math.isfinite(reload_seconds) or reload_seconds < 0:
        fail(f"invalid --reload-seconds {reload_seconds}: give 0 or more seconds")
    try:
        faults = faults_from_options(fault or [])
    except InvalidFault as error:
        fail(str(error))

    def announce(server: SandboxServer) -> None:
        # The sandbox's own throwaway credentials are printed on purpose: the
        # user needs them to point the tool (or curl) at it.
        typer.echo(f"Sandbox FreePBX {freepbx_version} API at {server.url}")
        typer.echo(f"export FREEPBX_URL={server.url}")
        typer.echo(f"export FREEPBX_CLIENT_ID={server.client_id}")
        typer.echo(f"export FREEPBX_CLIENT_SECRET={server.client_secret}")
        if tls_cert is None:
            typer.echo("Use --allow-http with plan and apply. Ctrl-C stops it.")
        else:
            # A self-signed certificate is its own CA bundle; a certificate
            # from a private CA needs that CA's file instead.
            typer.echo(f"export FREEPBX_CA_BUNDLE={tls_cert.resolve()}")
            typer.echo(
                "Set FREEPBX_CA_BUNDLE to the CA's certificate instead if a CA "
                f"signed {tls_cert.name}. Ctrl-C stops it."
            )
        for option in fault or []:
            typer.echo(f"Fault: {option}")

    try:
        serve_forever(
            state_file,
            freepbx_version=freepbx_version,
            port=port,
            reload_seconds=reload_seconds,
            on_ready=announce,
            faults=faults,
            tls_files=(tls_cert, tls_key) if tls_cert and tls_key else None,
        )
    except SandboxStartError as error:
        fail(str(error))


# --- shared helpers ---------------------------------------------------------------


class _ConnectionOptions:
    """The connection flags of the commands that read the PBX, as given."""

    def __init__(
        self,
        url: str | None,
        client_id: str | None,
        scope: str,
        ca_bundle: str | None,
        connect_timeout: float,
        read_timeout: float,
        allow_http: bool,
    ) -> None:
        self.url = url
        self.client_id = client_id
        self.scope = scope
        self.ca_bundle = ca_bundle
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.allow_http = allow_http

    def settings(self) -> ConnectionSettings:
        if (
            self.url
            and self.url.strip().lower().startswith("http://")
            and self.allow_http
        ):
            log.warning(
                "using plain http://: the client secret and token are not encrypted"
            )
        return build_settings(
            self.url,
            self.client_id,
            os.environ.get("FREEPBX_CLIENT_SECRET"),
            scope=self.scope,
            ca_bundle=self.ca_bundle,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            allow_http=self.allow_http,
        )


@contextmanager
def _connection(
    sandbox: bool, options: _ConnectionOptions
) -> Iterator[ConnectionSettings]:
    """Yield the settings of the real PBX, or of a sandbox started in-process."""
    if not sandbox:
        yield options.settings()
        return
    from reconciler.sandbox.server import SandboxServer, SandboxStartError

    if options.url:
        log.warning(
            "--sandbox: ignoring the PBX URL %s (from --url or FREEPBX_URL); "
            "this run uses the sandbox",
            options.url,
        )
    # build_settings checks the timeouts of a real PBX; the sandbox needs them too.
    check_timeouts(options.connect_timeout, options.read_timeout)
    try:
        server = SandboxServer(Path.cwd() / SANDBOX_STATE_FILE)
    except SandboxStartError as error:
        raise ReconcilerError(str(error)) from None
    with server:
        yield ConnectionSettings(
            url=server.url,
            client_id=server.client_id,
            client_secret=server.client_secret,
            scope=options.scope,
            connect_timeout=options.connect_timeout,
            read_timeout=options.read_timeout,
            use_proxy=False,
        )


def _compute_plan(
    settings: ConnectionSettings, desired: DesiredState
) -> tuple[Plan, LiveState]:
    from reconciler import pbx
    from reconciler.client import FreePBXClient
    from reconciler.planner import compute_plan
    from reconciler.userman import read_email_state

    with FreePBXClient(settings) as client:
        live = pbx.read_live_state(client)
        emails = read_email_state(client)
    return compute_plan(desired, live, emails), live


def _target_identity(settings: ConnectionSettings, sandbox: bool) -> str:
    # The in-process sandbox gets a new port each run; its state file is what stays.
    return f"sandbox ./{SANDBOX_STATE_FILE}" if sandbox else settings.url


@contextmanager
def _credentials_file(path: Path | None) -> Iterator[CredentialsFile | None]:
    from reconciler.credentials import CredentialsFile

    if path is None:
        yield None
        return
    with CredentialsFile(path) as credentials:
        yield credentials


class _StopRequest:
    """Signals that ask apply to stop, and the extension whose request is in flight."""

    def __init__(self) -> None:
        self.signals = 0
        self.in_flight: DesiredExtension | None = None

    def requested(self) -> bool:
        return self.signals > 0

    def track(self, extension: DesiredExtension | None) -> None:
        self.in_flight = extension

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        if self.signals == 1:
            echo(
                f"{name}: stopping after the request in flight (a second Ctrl-C or "
                "SIGTERM aborts now)...",
                err=True,
            )
            return
        in_flight = self.in_flight
        if in_flight is not None:
            echo(
                f"Aborted ({name}) while the request for extension "
                f"{in_flight.extension} was in flight: its outcome is unknown. Its "
                "secrets are in the credentials file as unconfirmed, if one was "
                "named; run reconciler plan to see whether FreePBX created it.",
                err=True,
            )
        raise KeyboardInterrupt


@contextmanager
def _stop_on_interrupt() -> Iterator[_StopRequest]:
    """Stop apply after the request in flight at the first Ctrl-C or SIGTERM.

    CI runners stop a job with SIGTERM, so it gets the same full report. A
    second signal aborts at once.
    """
    stop = _StopRequest()
    previous = {
        signum: signal.signal(signum, stop.handle)
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _setup_logging(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)


@contextmanager
def _errors_reported(debug: bool) -> Iterator[None]:
    """Turn a domain error into one line on stderr and exit code 1."""
    try:
        yield
    except InvalidDesiredState as error:
        for problem in error.problems:
            echo(str(problem), err=True)
        count = _plural(len(error.problems), "problem")
        echo(f"{count} found; nothing was sent to the PBX.", err=True)
        raise typer.Exit(EXIT_ERROR) from None
    except ReconcilerError as error:
        if debug:
            log.debug("traceback of the error below", exc_info=True)
        fail(str(error))


def echo(text: str, *, err: bool = False) -> None:
    """Write one line of output, with every known secret masked."""
    typer.echo(redact(text), err=err)


def fail(message: str) -> NoReturn:
    echo(f"Error: {message}", err=True)
    raise typer.Exit(EXIT_ERROR)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
