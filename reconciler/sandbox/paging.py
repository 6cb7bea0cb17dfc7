"""Relay paging of list fields, with the quirks of graphql-relay-php 0.5 on PHP.

FreePBX pages its `extension` list with first/after/last/before. Cursors are
base64 of "arrayconnection:<offset>"; the server reads whatever follows the
first 16 decoded characters, and ignores a cursor that is not numeric there.
The slice is taken with PHP's array_slice, so a negative `first` drops items
from the end instead of failing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from reconciler.sandbox.php import array_slice, base64_decode, is_numeric

T = TypeVar("T")

CURSOR_PREFIX_LENGTH = len("arrayconnection:")


def page(items: Sequence[T], arguments: dict[str, Any]) -> list[T]:
    """Return the items a connection with these paging arguments holds."""
    count = len(items)
    after = _cursor_offset(arguments.get("after"), -1)
    before = _cursor_offset(arguments.get("before"), count)
    start = max(-1, after) + 1
    end = min(count, before)
    first = arguments.get("first")
    if first is not None:
        end = min(end, start + first)
    last = arguments.get("last")
    if last is not None:
        start = max(start, end - last)
    return array_slice(items, max(start, 0), end - max(start, 0))


def _cursor_offset(cursor: Any, default: int) -> int:
    if not isinstance(cursor, str):
        return default
    try:
        decoded = base64_decode(cursor)
    except ValueError:
        return default
    offset = decoded[CURSOR_PREFIX_LENGTH:].decode("utf-8", errors="replace")
    if not is_numeric(offset):
        return default
    # PHP's (int) cast of a numeric string, exponents included.
    return int(float(offset))
