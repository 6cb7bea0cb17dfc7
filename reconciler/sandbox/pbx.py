"""The sandbox PBX as the endpoints see it: its state, signing key and settings."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from reconciler.sandbox.store import Store


@dataclass(frozen=True)
class PbxSettings:
    """Settings of the emulated FreePBX.

    `asterisk_version` and `sip_driver` (ASTSIPDRIVER) only matter for
    FreePBX 17, which checks the tech of new extensions against them.
    `extension_limit` emulates a commercial licence limit, and None means none.
    """

    freepbx_version: int = 16
    reload_seconds: float = 1.0
    asterisk_version: int = 21
    sip_driver: str = "chan_pjsip"
    extension_limit: int | None = None


@dataclass(frozen=True)
class Pbx:
    """Everything a request handler needs: state, token key, settings, clock."""

    store: Store
    signing_key: bytes
    settings: PbxSettings
    clock: Callable[[], float] = field(default=time.time)

    @property
    def version(self) -> int:
        return self.settings.freepbx_version


def load_signing_key(store: Store) -> bytes:
    """Return the state file's token signing key, creating it on first use."""
    stored = store.get_setting("signing_key")
    if stored is None:
        stored = secrets.token_hex(32)
        store.set_setting("signing_key", stored)
    return bytes.fromhex(stored)
