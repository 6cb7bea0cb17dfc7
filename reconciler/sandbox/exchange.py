"""HTTP request and response values passed between the server and the endpoints."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


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


def php_json(value: Any) -> bytes:
    """Encode like PHP's json_encode with default flags.

    PHP escapes "/" as "\\/" and every non-ASCII character as \\uXXXX, and writes
    no spaces. Matching it keeps Content-Length equal to a real FreePBX's.
    """
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=True)
    # "/" can only occur inside JSON strings, so this replaces no structure.
    return text.replace("/", "\\/").encode("ascii")


def json_response(
    status: int,
    payload: Any,
    headers: tuple[tuple[str, str], ...],
    operation: str | None = None,
) -> HttpResponse:
    """Build an HttpResponse whose body is `payload` encoded like PHP does."""
    return HttpResponse(status, headers, php_json(payload), operation)
