"""Keep secrets out of every line this tool writes.

Each secret of the run (client secret, access tokens, generated PINs and
passwords) is registered here; the log filter and the CLI's output functions
replace any occurrence with ``***``. This is a second line of defence: no code
path formats a secret into a message on purpose.
"""

from __future__ import annotations

import logging
import threading

MASK = "***"
# Secrets of this many characters or more are masked, a 4-digit PIN included.
# Masking a shorter value would also mask ordinary words and numbers.
MIN_SECRET_LENGTH = 4

# Up to this many secrets, each is searched for in the text. An apply of many
# extensions registers two per extension, so past this number the text's
# windows of each secret length are looked up in a set, at the same cost for
# any number of secrets.
MAX_SECRETS_SEARCHED_ONE_BY_ONE = 32

_lock = threading.Lock()
_secrets: set[str] = set()
_by_length: dict[int, set[str]] = {}


def register_secret(value: str | None) -> None:
    """Remember ``value`` so that it is masked wherever it would be written."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(value)
            _by_length.setdefault(len(value), set()).add(value)


def redact(text: str) -> str:
    """Return ``text`` with every registered secret replaced by ``***``."""
    with _lock:
        if len(_secrets) > MAX_SECRETS_SEARCHED_ONE_BY_ONE:
            found = _secrets_in_windows(text)
        else:
            found = {secret for secret in _secrets if secret in text}
    # Longest first, so a secret that contains another is masked whole.
    for secret in sorted(found, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _secrets_in_windows(text: str) -> set[str]:
    found = set()
    for length, secrets in _by_length.items():
        for start in range(len(text) - length + 1):
            window = text[start : start + length]
            if window in secrets:
                found.add(window)
    return found


class RedactingFilter(logging.Filter):
    """A logging filter that masks registered secrets in each record's message.

    The traceback of a record logged with exc_info is masked as well, because
    an exception's message may contain text that a server sent back.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            # A Formatter prints exc_text in place of formatting exc_info.
            traceback_text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(traceback_text)
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
