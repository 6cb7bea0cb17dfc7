"""Exceptions that carry the whole story of a failure, for one clear line at the CLI."""

from __future__ import annotations

from dataclasses import dataclass


class ReconcilerError(Exception):
    """Base class: the message is complete and safe to show (no secrets)."""


@dataclass(frozen=True)
class Problem:
    """One problem found in the desired-state file, at a line and column (1-based)."""

    path: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


class InvalidDesiredState(ReconcilerError):
    """The desired-state file has one or more problems; nothing was sent to the PBX."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.line, p.column, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))


class SettingsError(ReconcilerError):
    """A connection setting is missing or unsafe (no URL, an http:// URL, ...)."""


class TokenError(ReconcilerError):
    """The OAuth2 token endpoint did not issue a token."""


class ApiError(ReconcilerError):
    """FreePBX responded to a GraphQL request with an error or a failed status."""

    def __init__(self, operation: str, message: str, http_status: int | None) -> None:
        self.operation = operation
        self.server_message = message
        self.http_status = http_status
        status = f"HTTP {http_status}" if http_status is not None else "no HTTP status"
        super().__init__(f"{operation} failed ({status}): {message}")


class TokenRejected(ApiError, TokenError):
    """FreePBX rejected a request made with a token it had just issued.

    FreePBX checks the token before it runs a request, so the request did not
    run. The next requests would be rejected the same way.
    """


class MissingScope(ReconcilerError):
    """The access token lacks a scope that an operation needs."""


class PbxUnreachable(ReconcilerError):
    """No HTTP response: connection refused, DNS failure, TLS failure or a timeout."""


class OutcomeUnknown(ReconcilerError):
    """A request was sent but no response came, so its effect on the PBX is unknown."""
