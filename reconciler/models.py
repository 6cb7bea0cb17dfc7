"""The model: desired and live extensions as small frozen dataclasses.

Both sides are normalised here, in one place, so the planner compares like with like.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class SecretSource:
    """The source of a voicemail PIN or a User Manager password."""

    kind: Literal["random", "env"]
    env_var: str | None = None

    def describe(self) -> str:
        if self.kind == "env":
            return f"from ${self.env_var}"
        return "random"


RANDOM = SecretSource("random")


@dataclass(frozen=True)
class DesiredExtension:
    """One extension as the file wants it, with defaults applied."""

    extension: str
    name: str
    # None when the entry has no email, as in an export that could not read
    # emails; such an entry is never created.
    email: str | None
    tech: str = "pjsip"
    outbound_cid: str = ""
    emergency_cid: str = ""
    caller_id: str | None = None
    voicemail: bool = True
    voicemail_pin: SecretSource = RANDOM
    user_manager: bool = True
    user_manager_groups: tuple[str, ...] = ()
    user_manager_password: SecretSource = RANDOM
    max_contacts: int | None = None
    line: int = 0

    def readable_fields(self) -> dict[str, str | bool]:
        """Return the fields FreePBX can read back, as it stores them."""
        return {
            "name": stored_user_name(self.name),
            "tech": self.tech,
            "outbound_cid": self.outbound_cid,
            "emergency_cid": self.emergency_cid,
            "voicemail": self.voicemail,
        }


@dataclass(frozen=True)
class DesiredState:
    """The validated desired-state file."""

    path: str
    extensions: tuple[DesiredExtension, ...]
    max_creates: int | None = None
    numbering_range: tuple[int, int] | None = None


@dataclass(frozen=True)
class LiveExtension:
    """One extension as FreePBX lists it (the readable fields only)."""

    extension: str
    name: str
    tech: str
    outbound_cid: str
    emergency_cid: str
    voicemail: bool
    # The device description: the name as given, where FreePBX 16 keeps the
    # < and > that it turns into ( and ) in the user name.
    description: str = ""

    def readable_fields(self) -> dict[str, str | bool]:
        return {
            "name": self.name,
            "tech": self.tech,
            "outbound_cid": self.outbound_cid,
            "emergency_cid": self.emergency_cid,
            "voicemail": self.voicemail,
        }


@dataclass(frozen=True)
class LiveState:
    """Every extension FreePBX listed in one read."""

    extensions: tuple[LiveExtension, ...]
    # Numbers listed more than once: FreePBX 16's tables have no unique key, and
    # two clients adding one number at the same moment can both succeed.
    duplicates: tuple[str, ...] = field(default=())

    def by_number(self) -> dict[str, LiveExtension]:
        return {live.extension: live for live in self.extensions}


def stored_user_name(name: str) -> str:
    """Return ``name`` as FreePBX stores a core user's name.

    FreePBX 16 trims the name and turns ``<`` into ``(`` and ``>`` into ``)``
    (measured on core 16.0.68.4); the device description keeps the brackets.
    """
    return name.strip().replace("<", "(").replace(">", ")")


def same_text(live: str, desired: str) -> bool:
    """Compare a value read from FreePBX with the desired text.

    FreePBX 17 stores names HTML-entity encoded (``&amp;`` for ``&``), so a live
    value equals the desired one when it does as is or once decoded.
    """
    return live == desired or html.unescape(live) == desired


def same_name(live: str, desired: str) -> bool:
    """Compare a user name read from FreePBX with the name in the file.

    FreePBX 16 stores ``stored_user_name(desired)``. FreePBX 17 stores names
    HTML-entity encoded, so a ``<`` can arrive as ``&lt;`` instead of ``(``;
    both readings are accepted.
    """
    return (
        same_text(live, stored_user_name(desired))
        or html.unescape(live) == desired.strip()
    )
