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
from reconciler.errors import ApiError, OutcomeUnknown, ReconcilerError
from reconciler.models import DesiredExtension
from reconciler.planner import FieldDrift, Plan, compare

log = logging.getLogger(__name__)

CreateStatus = Literal["created", "already present", "failed", "not attempted"]
ReloadStatus = Literal["not needed", "executed", "failed", "timed out", "not confirmed"]

# Poll intervals grow from the first to the last value; the last bounds how long
# a finished reload goes unnoticed.
FIRST_POLL_SECONDS = 0.25
MAX_POLL_SECONDS = 1.0
POLL_GROWTH = 1.5
# After "Process is already running.", wait this long before sending doreload again.
ALREADY_RUNNING_WAIT_SECONDS = 5.0


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
    verify_error: str | None = None

    def count(self, status: CreateStatus) -> int:
        return sum(1 for result in self.creates if result.status == status)

    @property
    def succeeded(self) -> bool:
        return (
            not self.interrupted
            and self.count("failed") == 0
            and self.count("not attempted") == 0
            and self.reload.status in ("executed", "not needed")
            and not self.not_converged
            and self.verify_error is None
        )


@dataclass
class ApplyOptions:
    """How an apply behaves; the defaults suit a real FreePBX."""

    reload_timeout: float = 600.0
    credentials: CredentialsFile | None = None
    on_create: Callable[[int, int, CreateResult], None] = lambda done, total, result: (
        None
    )
    on_reload: Callable[[str], None] = lambda message: None
    stop_requested: Callable[[], bool] = lambda: False


def apply_plan(client: FreePBXClient, plan: Plan, options: ApplyOptions) -> ApplyResult:
    """Create each extension of ``plan``, apply config once, then verify."""
    result = ApplyResult()
    if not plan.creates:
        return result

    _create_all(client, plan.creates, options, result)

    # Apply config once, and only when something was added.
    if any(r.status == "created" for r in result.creates):
        result.reload = _apply_config(client, options)

    # Read the PBX once more: created is not done until it is listed as desired.
    _verify(client, result)
    return result


def _create_all(
    client: FreePBXClient,
    creates: tuple[DesiredExtension, ...],
    options: ApplyOptions,
    result: ApplyResult,
) -> None:
    total = len(creates)
    for index, extension in enumerate(creates, start=1):
        if options.stop_requested():
            result.interrupted = True
            result.creates.extend(
                CreateResult(e, "not attempted") for e in creates[index - 1 :]
            )
            return
        outcome = _create_one(client, extension, options)
        result.creates.append(outcome)
        options.on_create(index, total, outcome)


def _create_one(
    client: FreePBXClient, extension: DesiredExtension, options: ApplyOptions
) -> CreateResult:
    secrets = secrets_for(extension)
    try:
        message = pbx.add_extension(client, extension, secrets)
    except ApiError as error:
        if error.server_message == pbx.ALREADY_IN_USE:
            # Another client created it since our read; verification checks it.
            return CreateResult(extension, "already present", error.server_message)
        log.info("extension %s: %s", extension.extension, error)
        return CreateResult(extension, "failed", error.server_message)
    except OutcomeUnknown as error:
        return _settle_unknown(client, extension, secrets, options, str(error))
    if options.credentials is not None:
        options.credentials.record(extension, secrets)
    return CreateResult(extension, "created", message)


def _settle_unknown(
    client: FreePBXClient,
    extension: DesiredExtension,
    secrets: pbx.ExtensionSecrets,
    options: ApplyOptions,
    reason: str,
) -> CreateResult:
    """Learn from a fresh read whether an addExtension without an answer worked."""
    log.warning(
        "extension %s: %s; reading the PBX to learn the outcome",
        extension.extension,
        reason,
    )
    try:
        live = pbx.read_live_state(client).by_number()
    except ReconcilerError as error:
        return CreateResult(
            extension, "failed", f"outcome unknown: {reason}; re-read failed: {error}"
        )
    if extension.extension in live:
        if options.credentials is not None:
            options.credentials.record(extension, secrets)
        return CreateResult(
            extension, "created", "created (confirmed by a re-read after no answer)"
        )
    return CreateResult(extension, "failed", f"not created: {reason}")


def _apply_config(client: FreePBXClient, options: ApplyOptions) -> ReloadResult:
    started = time.monotonic()
    deadline = started + options.reload_timeout
    try:
        transaction_id = pbx.start_reload(client)
    except ReconcilerError as error:
        return ReloadResult("failed", details=str(error))
    options.on_reload(f"apply config started (transaction {transaction_id})")

    while True:
        outcome = _wait_for(client, transaction_id, deadline, started)
        if outcome.status != "failed" or outcome.details != pbx.RELOAD_ALREADY_RUNNING:
            return outcome
        # Another reload holds FreePBX's lock; ours must run after it.
        if time.monotonic() + ALREADY_RUNNING_WAIT_SECONDS > deadline:
            return outcome
        options.on_reload("another apply config is running; waiting to start ours")
        time.sleep(ALREADY_RUNNING_WAIT_SECONDS)
        try:
            transaction_id = pbx.start_reload(client)
        except ReconcilerError as error:
            return ReloadResult("failed", details=str(error))
        options.on_reload(f"apply config started again (transaction {transaction_id})")


def _wait_for(
    client: FreePBXClient, transaction_id: str, deadline: float, started: float
) -> ReloadResult:
    interval = FIRST_POLL_SECONDS
    while True:
        try:
            status = pbx.reload_status(client, transaction_id)
        except ReconcilerError as error:
            return ReloadResult(
                "not confirmed", transaction_id, str(error), time.monotonic() - started
            )
        elapsed = time.monotonic() - started
        if status == pbx.RELOAD_EXECUTED:
            return ReloadResult("executed", transaction_id, None, elapsed)
        if status != pbx.RELOAD_PROCESSING:
            details = pbx.reload_failure_details(client, transaction_id) or status
            return ReloadResult("failed", transaction_id, details, elapsed)
        if time.monotonic() + interval > deadline:
            return ReloadResult("timed out", transaction_id, None, elapsed)
        time.sleep(interval)
        interval = min(interval * POLL_GROWTH, MAX_POLL_SECONDS)


def _verify(client: FreePBXClient, result: ApplyResult) -> None:
    touched = [
        r.extension
        for r in result.creates
        if r.status in ("created", "already present")
    ]
    if not touched:
        return
    try:
        live = pbx.read_live_state(client)
    except ReconcilerError as error:
        result.verify_error = str(error)
        return
    by_number = live.by_number()
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


def _differences_text(differences: tuple[FieldDrift, ...]) -> str:
    return "; ".join(
        f"{d.field} is {d.live!r}, expected {d.desired!r}" for d in differences
    )
