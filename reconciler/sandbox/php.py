"""PHP behaviour that FreePBX's responses depend on, reproduced in Python.

FreePBX is PHP (8.2 on the measured FreePBX 16), and some of its responses come
straight from PHP functions: which ids count as numbers, how strings are cut
and cast, how JSON and base64 are read and written.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from typing import Any, TypeVar

T = TypeVar("T")

# Characters PHP's trim() strips by default.
TRIM_CHARACTERS = " \t\n\r\0\x0b"

# PHP 8's is_numeric(): optional blanks, a sign, a decimal number with an
# optional exponent, then optional blanks (trailing blanks only since PHP 8).
NUMERIC = re.compile(
    r"[ \t\n\r\v\f]*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?[ \t\n\r\v\f]*"
)
NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")


def is_numeric(value: str) -> bool:
    return NUMERIC.fullmatch(value) is not None


def php_string(value: bool | int | float) -> str:
    """Convert a scalar to a string as PHP's (string) cast does."""
    if isinstance(value, bool):
        return "1" if value else ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def json_encode(value: Any) -> bytes:
    """Encode like PHP's json_encode with default flags.

    PHP escapes "/" as "\\/" and every non-ASCII character as \\uXXXX, and writes
    no spaces. Matching it keeps Content-Length equal to a real FreePBX's.
    """
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=True)
    # "/" can only occur inside JSON strings, so this replaces no structure.
    return text.replace("/", "\\/").encode("ascii")


def base64_decode(text: str) -> bytes:
    """Decode base64 or base64url leniently, skipping other characters as PHP does.

    Raises ValueError when what remains is not base64.
    """
    standard = text.translate(str.maketrans("-_", "+/")).encode()
    cleaned = NOT_BASE64.sub(b"", standard)
    if len(cleaned) % 4 == 1:
        # A lone character in the last group carries no whole byte.
        cleaned = cleaned[:-1]
    try:
        return base64.b64decode(cleaned + b"=" * (-len(cleaned) % 4))
    except binascii.Error as error:
        raise ValueError("invalid base64") from error


def array_slice(items: Sequence[T], offset: int, length: int) -> list[T]:
    """Slice like PHP's array_slice: a negative length stops that far from the end."""
    if offset > len(items):
        return []
    stop = offset + length if length >= 0 else len(items) + length
    return list(items[offset:stop])
