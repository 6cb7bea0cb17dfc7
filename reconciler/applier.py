"""Apply a plan: create the missing extensions, apply config once, verify.

Nothing here prints; the CLI passes callbacks to show progress.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from reconciler import pbx
from reconciler.client import FreePBXClient
from reconciler.credentials import CredentialsFile, secrets_for
from reconciler.errors import (
    ApiError,
    OutcomeUnknown,
    PbxUnreachable,
    ReconcilerError,
    TokenError,
    TokenRejected,
)
from reconciler.models import DesiredExtension, LiveExtension
from reconciler.pbx import ExtensionSecrets
from reconciler.planner import FieldDrift, Plan, compare

log = logging.getLogger(__name__)

CreateStatus = Literal[
    "created", "already present", "failed", "outcome unknown", "not attempted"
]
ReloadStatus = Literal[
    "not needed", "executed", "failed", "timed out", "not confirmed", "not run"
]

# Poll intervals grow from the first to the last value; the last bounds how long
# a finished reload goes unnoticed.
# NOTE: against the benchmark's 1 s sandbox reload, the last poll comes 0.29 s
# after the reload ends. For an apply of 100 extensions at a 20 ms round trip
# that alone is 8 % of the run, so such a small apply misses the 5 % target
# (docs/benchmarks.md); larger applies and a real PBX's slower adds do not.
FIRST_POLL_SECONDS = 0.25
MAX_POLL_SECONDS = 1.0
POLL_GROWTH = 1.5
# After "Process is already running.", wait before sending doreload again. The
# waits double from the first to the last value, so a short reload is not
# waited for long and a long one (half a minute on a real FreePBX 16) does not
# cost a doreload every second.
FIRST_ALREADY_RUNNING_WAIT_SECONDS = 0.5
MAX_ALREADY_RUNNING_WAIT_SECONDS = 8.0


@dataclass(frozen=True)
class CreateResult:
    """The outcome of one addExtension."""

    extension: DesiredExtension
    status: CreateStatus
    message: str = ""


@dataclass(frozen=True)
class ReloadResult:
    """The outcome of apply config (doreload and its transaction)."""

    status: ReloadStatus
    transaction_id: str | None = None
    details: str | None = None
    seconds: float = 0.0


@dataclass
class ApplyResult:
    """Everything an apply did, for an honest report."""

    creates: list[CreateResult] = field(default_factory=list)
    reload: ReloadResult = field(default_factory=lambda: ReloadResult("not needed"))
    not_converged: list[tuple[DesiredExtension, str]] = field(default_factory=list)
    interrupted: bool = False
    # Why the creates stopped before the end: the PBX became unreachable or
    # rejected its own fresh tokens.
    stopped: str | None = None
    verify_error: str | None = None

    def count(self, status: CreateStatus) -> int:
        return sum(1 for result in self.creates if result.status == status)

    @property
    def succeeded(self) -> bool:
        return (
            not self.interrupted
            and self.stopped is None
            and self.count("failed") == 0
            and self.count("outcome unknown") == 0
            and self.count("not attempted") == 0
            and self.reload.status in ("executed", "not needed")
            and not self.not_converged
            and self.verify_error is None
        )


@dataclass
class ApplyOptions:
    """Options of one apply. The defaults suit a real FreePBX."""

    reload_timeout: float = 600.0
    credentials: CredentialsFile | None = None
    on_create: Callable[[int, int, CreateResult], None] = lambda done, total, result: (
        None
    )
    on_reload: Callable[[str], None] = lambda message: None
    stop_requested: Callable[[], bool] = lambda: False
    # Called with each extension before its addExtension is sent, and with
    # None once the request has an outcome.
    on_send: Callable[[DesiredExtension | None], None] = lambda extension: None


def apply_plan(client: FreePBXClient, plan: Plan, options: ApplyOptions) -> ApplyResult:
    """Create each extension of ``plan``, apply config once, then verify."""
    result = ApplyResult()
    if not plan.creates:
        return result
    # The numbers whose addExtension got no usable response.
    unknown: set[str] = set()

    _create_all(client, plan.creates, options, result, unknown)

    # Ctrl-C or SIGTERM is a request to stop now, and apply config can take
    # minutes, so the next apply runs it (apply_pending_config).
    if result.interrupted:
        result.reload = ReloadResult("not run", details="interrupted")
        return result
    # A doreload and a verification read would fail the way the last request
    # did, so both are left to the next apply.
    if result.stopped is not None:
        result.reload = ReloadResult("not run", details="apply stopped")
        return result

    # Apply config once, when an addExtension has or may have changed the PBX.
    if unknown or any(r.status == "created" for r in result.creates):
        result.reload = _apply_config(client, options)

    # Read the PBX once more: created is not done until it is listed as desired.
    _verify(client, result, options)
    return result


def apply_pending_config(
    client: FreePBXClient, options: ApplyOptions
) -> ReloadResult | None:
    """Run apply config if FreePBX has changes not yet applied; else return None.

    An interrupted apply, or one whose apply config failed or timed out,
    leaves extensions created but not live, and a re-run has nothing to
    create. It runs apply config here, which also applies any change pending
    from FreePBX's web interface, as every apply config does.
    """
    try:
        needed = pbx.reload_needed(client)
    except ReconcilerError as error:
        log.warning("cannot tell whether apply config is needed: %s", error)
        return None
    if not needed:
        return None
    options.on_reload("FreePBX has changes that no apply config has applied yet")
    return _apply_config(client, options)


def _create_all(
    client: FreePBXClient,
    creates: tuple[DesiredExtension, ...],
    options: ApplyOptions,
    result: ApplyResult,
    unknown: set[str],
) -> None:
    total = len(creates)
    for index, extension in enumerate(creates, start=1):
        if options.stop_requested():
            result.interrupted = True
            result.creates.extend(
                CreateResult(e, "not attempted") for e in creates[index - 1 :]
            )
            return
        try:
            outcome = _create_one(client, extension, options, unknown)
        except TokenRejected as error:
            # FreePBX rejected a fresh token before running the request, and it
            # would reject the next ones, costing two token requests each.
            outcome = CreateResult(extension, "failed", f"not run: {error}")
            result.stopped = f"FreePBX rejects even a new access token: {error}"
        except (PbxUnreachable, TokenError) as error:
            # The request was not sent, and the next ones would fail the same way.
            outcome = CreateResult(extension, "failed", f"not sent: {error}")
            result.stopped = str(error)
        result.creates.append(outcome)
        options.on_create(index, total, outcome)
        if result.stopped is not None:
            result.creates.extend(
                CreateResult(e, "not attempted") for e in creates[index:]
            )
            return


def _create_one(
    client: FreePBXClient,
    extension: DesiredExtension,
    options: ApplyOptions,
    unknown: set[str],
) -> CreateResult:
    secrets = secrets_for(extension)
    credentials = options.credentials
    # The secrets reach the disk before FreePBX can store them.
    if credentials is not None:
        credentials.record_unconfirmed(extension, secrets)
    options.on_send(extension)
    try:
        outcome = _send_one(client, extension, secrets, unknown)
    except (PbxUnreachable, TokenError):
        # Not sent, or rejected before FreePBX ran it.
        if credentials is not None:
            credentials.discard(extension.extension)
        raise
    finally:
        options.on_send(None)
    if credentials is not None:
        _settle_credentials(credentials, outcome)
    return outcome


def _send_one(
    client: FreePBXClient,
    extension: DesiredExtension,
    secrets: ExtensionSecrets,
    unknown: set[str],
) -> CreateResult:
    try:
        message = pbx.add_extension(client, extension, secrets)
    except TokenRejected:
        raise
    except ApiError as error:
        return _rejected(client, extension, error)
    except OutcomeUnknown as error:
        return _settle_unknown(client, extension, unknown, error)
    return CreateResult(extension, "created", message)


def _settle_credentials(credentials: CredentialsFile, outcome: CreateResult) -> None:
    number = outcome.extension.extension
    if outcome.status == "created":
        credentials.confirm(number)
    elif outcome.status == "outcome unknown" or "SQLSTATE" in outcome.message:
        # The rows FreePBX may have written before its SQL error hold these
        # secrets, so the row stays unconfirmed.
        return
    else:
        credentials.discard(number)


def _rejected(
    client: FreePBXClient, extension: DesiredExtension, error: ApiError
) -> CreateResult:
    message = error.server_message
    log.info("extension %s: %s", extension.extension, error)
    if message == pbx.ALREADY_IN_USE:
        # Another client created it since our read; verification checks it.
        return CreateResult(extension, "already present", message)
    if "SQLSTATE" not in message:
        return CreateResult(extension, "failed", message)

    # FreePBX can fail on an SQL error after it inserted some rows, as when
    # two clients add one number at the same moment, so read what is there.
    try:
        listed = extension.extension in pbx.read_live_state(client).by_number()
    except ReconcilerError as read_error:
        return CreateResult(
            extension, "failed", f"{message}; the re-read failed: {read_error}"
        )
    if not listed:
        return CreateResult(extension, "failed", message)
    return CreateResult(
        extension,
        "already present",
        f"{message}; a re-read lists the extension, made by another client or "
        "partly by this request",
    )


def _settle_unknown(
    client: FreePBXClient,
    extension: DesiredExtension,
    unknown: set[str],
    error: OutcomeUnknown,
) -> CreateResult:
    """Learn from a fresh read whether an addExtension without a response worked.

    A request that timed out may still run on FreePBX after the re-read, so
    an extension the re-read does not list stays "outcome unknown" until the
    verification read.
    """
    log.warning(
        "extension %s: %s; reading the PBX to learn the outcome",
        extension.extension,
        error,
    )
    try:
        live = pbx.read_live_state(client).by_number()
    except ReconcilerError as read_error:
        unknown.add(extension.extension)
        return CreateResult(
            extension, "outcome unknown", f"{error}; the re-read failed: {read_error}"
        )
    if extension.extension in live:
        return CreateResult(
            extension, "created", f"created, as a re-read shows after: {error}"
        )
    unknown.add(extension.extension)
    return CreateResult(
        extension, "outcome unknown", f"{error}; a re-read does not list it yet"
    )


def _apply_config(client: FreePBXClient, options: ApplyOptions) -> ReloadResult:
    started = time.monotonic()
    deadline = started + options.reload_timeout
    wait = FIRST_ALREADY_RUNNING_WAIT_SECONDS
    while True:
        transaction_id, failure = _start_reload(client)
        if failure is not None:
            return failure

        outcome = _wait_for(client, transaction_id, deadline, started, options)
        if outcome.status != "failed" or outcome.details != pbx.RELOAD_ALREADY_RUNNING:
            return outcome

        # Another reload holds FreePBX's lock, so ours must start after it
        # ends. The last try comes at the deadline, not one wait before it.
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return ReloadResult(
                "timed out",
                transaction_id,
                "another apply config was still running, so ours could not start",
                time.monotonic() - started,
            )
        if options.stop_requested():
            return ReloadResult("not run", transaction_id, "interrupted")
        pause = min(wait, remaining)
        options.on_reload(
            f"another apply config is running, so transaction {transaction_id} "
            f"could not start; trying again in {pause:.1f} s"
        )
        time.sleep(pause)
        wait = min(wait * 2, MAX_ALREADY_RUNNING_WAIT_SECONDS)


def _start_reload(client: FreePBXClient) -> tuple[str, ReloadResult | None]:
    try:
        return pbx.start_reload(client), None
    except OutcomeUnknown as error:
        # doreload is not resent: FreePBX may be applying the configuration.
        details = (
            f"{error}; FreePBX may be applying the configuration, so check Apply "
            "Config in its web interface"
        )
        return "", ReloadResult("not confirmed", None, details)
    except ReconcilerError as error:
        return "", ReloadResult("failed", None, str(error))


def _wait_for(
    client: FreePBXClient,
    transaction_id: str,
    deadline: float,
    started: float,
    options: ApplyOptions,
) -> ReloadResult:
    interval = FIRST_POLL_SECONDS
    announced = False
    while True:
        try:
            status = pbx.reload_status(client, transaction_id)
        except ReconcilerError as error:
            return ReloadResult(
                "not confirmed", transaction_id, str(error), time.monotonic() - started
            )
        elapsed = time.monotonic() - started
        if status not in (pbx.RELOAD_PROCESSING, pbx.RELOAD_EXECUTED):
            # A transaction that another reload kept from starting ends here too.
            details = pbx.reload_failure_details(client, transaction_id) or status
            return ReloadResult("failed", transaction_id, details, elapsed)
        if not announced:
            options.on_reload(f"Apply config: started (transaction {transaction_id}).")
            announced = True
        if status == pbx.RELOAD_EXECUTED:
            return ReloadResult("executed", transaction_id, None, elapsed)
        if options.stop_requested():
            return ReloadResult(
                "not confirmed",
                transaction_id,
                "stopped waiting (interrupted); FreePBX goes on with the reload",
                elapsed,
            )
        # The last poll comes at the deadline, not one interval before it.
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return ReloadResult("timed out", transaction_id, None, elapsed)
        time.sleep(min(interval, remaining))
        interval = min(interval * POLL_GROWTH, MAX_POLL_SECONDS)


def _verify(client: FreePBXClient, result: ApplyResult, options: ApplyOptions) -> None:
    touched = [
        r.extension
        for r in result.creates
        if r.status in ("created", "already present", "outcome unknown")
    ]
    if not touched:
        return
    try:
        live = pbx.read_live_state(client)
    except ReconcilerError as error:
        result.verify_error = str(error)
        return
    by_number = live.by_number()
    _settle_late(result, by_number, options)
    touched = [
        r.extension
        for r in result.creates
        if r.status in ("created", "already present")
    ]
    for extension in touched:
        current = by_number.get(extension.extension)
        if current is None:
            result.not_converged.append(
                (extension, "not listed by FreePBX after the apply")
            )
            continue
        differences = compare(extension, current)
        if differences:
            result.not_converged.append((extension, _differences_text(differences)))
        elif extension.extension in live.duplicates:
            result.not_converged.append(
                (extension, "listed twice by FreePBX (concurrent add)")
            )


def _settle_late(
    result: ApplyResult, by_number: dict[str, LiveExtension], options: ApplyOptions
) -> None:
    """Mark each outcome still unknown as created when the verification read lists it.

    An extension the read does not list stays unknown, because FreePBX may
    still run a request whose response was lost, and its row in the
    credentials file stays unconfirmed.
    """
    for index, created in enumerate(result.creates):
        if created.status != "outcome unknown":
            continue
        extension = created.extension
        if extension.extension in by_number:
            if options.credentials is not None:
                options.credentials.confirm(extension.extension)
            message = (
                f"created, as the verification read shows after: {created.message}"
            )
            result.creates[index] = CreateResult(extension, "created", message)
        else:
            message = f"{created.message}; the verification read does not list it"
            result.creates[index] = CreateResult(extension, "outcome unknown", message)


def _differences_text(differences: tuple[FieldDrift, ...]) -> str:
    return "; ".join(
        f"{d.field} is {d.live!r}, expected {d.desired!r}" for d in differences
    )
