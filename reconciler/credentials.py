"""Secrets of new extensions: generate or read them, and hand them over in a file.

Voicemail PINs and User Manager passwords never come from extensions.yaml.
Each is random per new extension or read from an environment variable the
entry names. They go to FreePBX and, when the user asks, to a credentials file
created with mode 0600; never to stdout, stderr or a log.
"""

from __future__ import annotations

import csv
import logging
import os
import secrets
import string
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO

from reconciler.errors import ReconcilerError
from reconciler.models import DesiredExtension, SecretSource
from reconciler.pbx import ExtensionSecrets
from reconciler.redact import register_secret

log = logging.getLogger(__name__)

PIN_DIGITS = 6
# FreePBX stores the User Manager password in users.password, VARCHAR(20).
MAX_PASSWORD_LENGTH = 20
PASSWORD_ALPHABET = string.ascii_letters + string.digits
CREDENTIALS_HEADER = (
    "extension",
    "name",
    "email",
    "voicemail_pin",
    "user_manager_username",
    "user_manager_password",
    "status",
)
# A row is written before its addExtension is sent, as unconfirmed, so that no
# secret of an extension that may exist is lost, even when the run is killed.
STATUS_UNCONFIRMED = "unconfirmed"
STATUS_CREATED = "created"


class SecretSourceError(ReconcilerError):
    """An environment variable named as a secret source is missing or unusable."""


def check_secret_sources(extensions: tuple[DesiredExtension, ...]) -> None:
    """Check every environment-variable secret before anything is created."""
    problems = secret_source_problems(extensions)
    if problems:
        raise SecretSourceError("; ".join(problems))


def secret_source_problems(extensions: tuple[DesiredExtension, ...]) -> list[str]:
    """Return one line per unset or unusable environment-variable secret.

    The lines name the extension and the variable, never a value.
    """
    problems = []
    for extension in extensions:
        for source, kind in _sources(extension):
            try:
                _read_env(source, kind)
            except SecretSourceError as error:
                problems.append(f"extension {extension.extension}: {error}")
    return problems


def secrets_for(extension: DesiredExtension) -> ExtensionSecrets:
    """Return the PIN and password to send with a new extension."""
    pin = None
    password = None
    if extension.voicemail:
        pin = _resolve(extension.voicemail_pin, "voicemail PIN")
    if extension.user_manager:
        password = _resolve(extension.user_manager_password, "user manager password")
    return ExtensionSecrets(voicemail_pin=pin, user_manager_password=password)


def _sources(extension: DesiredExtension) -> list[tuple[SecretSource, str]]:
    sources = []
    if extension.voicemail:
        sources.append((extension.voicemail_pin, "voicemail PIN"))
    if extension.user_manager:
        sources.append((extension.user_manager_password, "user manager password"))
    return [(source, kind) for source, kind in sources if source.kind == "env"]


def _resolve(source: SecretSource, kind: str) -> str:
    if source.kind == "env":
        value = _read_env(source, kind)
    elif kind == "voicemail PIN":
        value = "".join(secrets.choice(string.digits) for _ in range(PIN_DIGITS))
    else:
        value = "".join(
            secrets.choice(PASSWORD_ALPHABET) for _ in range(MAX_PASSWORD_LENGTH)
        )
    register_secret(value)
    return value


def _read_env(source: SecretSource, kind: str) -> str:
    name = source.env_var or ""
    value = os.environ.get(name)
    if not value:
        raise SecretSourceError(f"the {kind} comes from ${name}, which is not set")
    register_secret(value)
    if kind == "voicemail PIN" and not (value.isascii() and value.isdigit()):
        raise SecretSourceError(f"${name} must hold digits only (a voicemail PIN)")
    if kind == "user manager password" and len(value) > MAX_PASSWORD_LENGTH:
        raise SecretSourceError(
            f"${name} is longer than {MAX_PASSWORD_LENGTH} characters, the most "
            "FreePBX stores"
        )
    return value


# A spreadsheet runs a cell that starts with one of these as a formula, which a
# name such as =HYPERLINK("http://...") would exploit when the file is opened.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(text: str) -> str:
    """Prefix ``text`` with ' if a spreadsheet would read it as a formula."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


class CredentialsFile:
    """A CSV file of the secrets of new extensions, mode 0600, never overwritten.

    Each row is appended and flushed to disk before its addExtension is sent,
    with the status "unconfirmed". When the file is closed it is rewritten
    once with the outcomes learned since: "created", "unconfirmed" for an
    outcome still unknown, and no row for an extension that FreePBX did not
    create with these secrets.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._writer: csv.DictWriter[str] | None = None
        self._rows: dict[str, dict[str, str]] = {}
        self._changed = False

    def __enter__(self) -> CredentialsFile:
        try:
            descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ReconcilerError(
                f"credentials file {self.path} already exists; move it away or name "
                "another file (it is never overwritten)"
            ) from None
        except OSError as error:
            raise ReconcilerError(
                f"cannot create credentials file {self.path}: {error.strerror}"
            ) from None
        self._file = os.fdopen(descriptor, "w", encoding="utf-8", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=CREDENTIALS_HEADER)
        self._writer.writeheader()
        return self

    def record_unconfirmed(
        self, extension: DesiredExtension, sent: ExtensionSecrets
    ) -> None:
        """Append the secrets about to be sent and flush them to disk at once."""
        assert self._writer is not None and self._file is not None
        row = {
            "extension": extension.extension,
            "name": extension.name,
            "email": extension.email or "",
            "voicemail_pin": sent.voicemail_pin or "",
            "user_manager_username": extension.extension
            if extension.user_manager
            else "",
            "user_manager_password": sent.user_manager_password or "",
            "status": STATUS_UNCONFIRMED,
        }
        row = {key: spreadsheet_cell(value) for key, value in row.items()}
        self._rows[extension.extension] = row
        self._writer.writerow(row)
        self._file.flush()
        os.fsync(self._file.fileno())

    def confirm(self, number: str) -> None:
        """Mark the row of an extension that FreePBX lists as created."""
        self._rows[number]["status"] = STATUS_CREATED
        self._changed = True

    def discard(self, number: str) -> None:
        """Drop the row of an extension that FreePBX did not create with its secrets."""
        del self._rows[number]
        self._changed = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._file is None:
            return
        self._file.close()
        if self._changed:
            self._rewrite()

    def _rewrite(self) -> None:
        """Replace the file with the final rows, atomically and with mode 0600."""
        # mkstemp creates the file with mode 0600, in the same directory so
        # that os.replace stays on one file system.
        descriptor, temporary = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=CREDENTIALS_HEADER)
                writer.writeheader()
                writer.writerows(self._rows.values())
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except OSError as error:
            # The appended rows stay, each marked unconfirmed: nothing is lost.
            log.warning(
                "cannot update the statuses in credentials file %s: %s; its rows "
                "still read unconfirmed",
                self.path,
                error.strerror,
            )
            Path(temporary).unlink(missing_ok=True)
