"""Keep secrets out of every line this tool writes.

Each secret the run knows (client secret, access tokens, generated PINs and
passwords) is registered here; the log filter and the CLI's output functions
replace any occurrence with ``***``. This is a second line of defence: no code
path formats a secret into a message on purpose.
"""

from __future__ import annotations

import logging
import threading

MASK = "***"
# Shorter values (a 4-digit PIN) are masked too; a secret shorter than this
# would mask ordinary words and numbers, so it is not accepted as a secret.
MIN_SECRET_LENGTH = 4

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember ``value`` so that it is masked wherever it would be written."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Return ``text`` with every registered secret replaced by ``***``."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that masks registered secrets in each record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True
