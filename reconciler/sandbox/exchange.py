"""HTTP request and response values passed between the server and the endpoints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.sandbox.php import json_encode


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request as the endpoints see it, with lower-case header names."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    client_address: str = "127.0.0.1"

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class HttpResponse:
    """One HTTP response; `operation` names what was served, for request records."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    operation: str | None = None


def json_response(
    status: int,
    payload: Any,
    headers: tuple[tuple[str, str], ...],
    operation: str | None = None,
) -> HttpResponse:
    """Build an HttpResponse whose body is `payload` encoded as PHP encodes it."""
    return HttpResponse(status, headers, json_encode(payload), operation)
