"""Secrets of new extensions: generate or read them, and hand them over in a file.

Voicemail PINs and User Manager passwords never come from extensions.yaml.
Each is random per new extension or read from an environment variable the
entry names. They go to FreePBX and, when the user asks, to a credentials file
created with mode 0600; never to stdout, stderr or a log.
"""

from __future__ import annotations

import csv
import os
import secrets
import string
from pathlib import Path
from types import TracebackType
from typing import IO

from reconciler.errors import ReconcilerError
from reconciler.models import DesiredExtension, SecretSource
from reconciler.pbx import ExtensionSecrets
from reconciler.redact import register_secret

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
)


class SecretSourceError(ReconcilerError):
    """An environment variable named as a secret source is missing or unusable."""


def check_secret_sources(extensions: tuple[DesiredExtension, ...]) -> None:
    """Check every environment-variable secret before anything is created."""
    problems = []
    for extension in extensions:
        for source, kind in _sources(extension):
            try:
                _read_env(source, kind)
            except SecretSourceError as error:
                problems.append(f"extension {extension.extension}: {error}")
    if problems:
        raise SecretSourceError("; ".join(problems))


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


class CredentialsFile:
    """A CSV file of the secrets of created extensions, mode 0600, never overwritten."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._writer: csv.DictWriter[str] | None = None

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

    def record(self, extension: DesiredExtension, created: ExtensionSecrets) -> None:
        """Append one created extension and flush it to disk at once."""
        assert self._writer is not None and self._file is not None
        self._writer.writerow(
            {
                "extension": extension.extension,
                "name": extension.name,
                "email": extension.email,
                "voicemail_pin": created.voicemail_pin or "",
                "user_manager_username": extension.extension
                if extension.user_manager
                else "",
                "user_manager_password": created.user_manager_password or "",
            }
        )
        self._file.flush()
        os.fsync(self._file.fileno())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self._file.close()
