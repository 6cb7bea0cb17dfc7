"""doreload transactions and the "reload needed" flag of the framework module.

A real doreload starts `fwconsole reload` in the background and records a
transaction that reads "Processing" until the reload ends. The sandbox stores
when each transaction finishes and derives its status from the clock, so a
restarted sandbox reports the same status.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.sandbox.pbx import Pbx
from reconciler.sandbox.store import Transaction

RELOAD_STARTED = (
    "Doreload/apply config has been initiated. Please check the status using"
    " fetchApiStatus api with the returned transaction id"
)
PROCESSING = "Processing"
RELOAD_SUCCEEDED = "Successfully reloaded"
# Failure reason of `fwconsole reload` while another reload has reload.lock.
ALREADY_RUNNING = "Process is already running."


@dataclass(frozen=True)
class TransactionStatus:
    """Status of a transaction as fetchApiStatus reports it."""

    message: str
    details: str
    event_output: str


def start_reload(pbx: Pbx) -> Transaction:
    """Record a new doreload transaction, which fails at once while one runs."""
    store = pbx.store
    with store.transaction():
        now = pbx.clock()
        if store.running_reload_exists(now):
            return store.add_transaction(now, now, "Failed", ALREADY_RUNNING)
        finishes_at = now + pbx.settings.reload_seconds
        return store.add_transaction(now, finishes_at, "Executed", RELOAD_SUCCEEDED)


def transaction_status(pbx: Pbx, transaction: Transaction) -> TransactionStatus:
    if pbx.clock() < transaction.finishes_at:
        return TransactionStatus(PROCESSING, "", "")
    return TransactionStatus(
        transaction.final_status, transaction.failure_reason, transaction.event_output
    )


def reload_needed(pbx: Pbx) -> bool:
    """Tell whether a change happened after the start of the last finished reload."""
    changed_at = pbx.store.get_setting("config_changed_at")
    if changed_at is None:
        return False
    reloaded_at = pbx.store.last_finished_reload_start(pbx.clock())
    return reloaded_at is None or float(changed_at) >= reloaded_at
