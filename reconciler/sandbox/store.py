"""SQLite state of the sandbox PBX: applications, tokens, extensions, reloads.

The tables mirror the FreePBX tables the API touches, reduced to the columns
the API reads or writes. Every time is a Unix time in seconds (float), so the
state means the same after a restart.
"""

from __future__ import annotations

import json
import os
import pathlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

SCHEMA = """
-- Named values of this sandbox: the token signing key ("signing_key") and the
-- time of the last configuration change ("config_changed_at").
CREATE TABLE IF NOT EXISTS settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- OAuth2 client applications, like FreePBX's api_applications.
CREATE TABLE IF NOT EXISTS applications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id TEXT NOT NULL UNIQUE,        -- 64 hex characters
    client_secret_sha256 TEXT NOT NULL,    -- the token endpoint checks this hash
    client_secret TEXT NOT NULL,           -- plain copy, only so the CLI can show it
    grant_type TEXT NOT NULL,              -- "client_credentials"
    allowed_scopes TEXT NOT NULL,          -- space-separated; "" means "gql rest"
    is_default INTEGER NOT NULL DEFAULT 0  -- 1 for the application made at creation
);

-- Issued access tokens, like api_access_tokens. A token whose row is missing
-- or past its expiry counts as revoked.
CREATE TABLE IF NOT EXISTS access_tokens (
    jti TEXT PRIMARY KEY,
    application_id INTEGER NOT NULL,
    expiry REAL NOT NULL,
    scopes TEXT NOT NULL,                  -- JSON array of scope strings
    ip_address TEXT NOT NULL,
    last_accessed REAL
);

-- Core devices. Like FreePBX, no unique key on id.
CREATE TABLE IF NOT EXISTS devices (
    id TEXT NOT NULL,
    tech TEXT NOT NULL,
    dial TEXT NOT NULL,
    devicetype TEXT NOT NULL,              -- "fixed" or "adhoc"
    user_extension TEXT NOT NULL,
    description TEXT NOT NULL,
    emergency_cid TEXT NOT NULL,
    callerid TEXT NOT NULL,
    secret TEXT,                           -- SIP secret; NULL for other techs
    max_contacts TEXT                      -- PJSIP only
);

-- Core users (the "users" table, not User Management).
CREATE TABLE IF NOT EXISTS users (
    extension TEXT NOT NULL,
    name TEXT NOT NULL,
    password TEXT NOT NULL,
    voicemail TEXT NOT NULL,               -- "default" with a mailbox, else "novm"
    outboundcid TEXT NOT NULL
);

-- User Management users created by addExtension.
CREATE TABLE IF NOT EXISTS userman_users (
    username TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    displayname TEXT NOT NULL,
    password_sha256 TEXT NOT NULL,
    default_extension TEXT NOT NULL,
    description TEXT NOT NULL,
    group_ids TEXT NOT NULL                -- comma-separated group ids
);

-- Voicemail boxes in the "default" context.
CREATE TABLE IF NOT EXISTS voicemail_boxes (
    mailbox TEXT PRIMARY KEY,
    password TEXT NOT NULL,
    name TEXT NOT NULL,
    email TEXT NOT NULL
);

-- Asynchronous transactions (doreload), like
-- api_asynchronous_transaction_history. The status is "Processing" until
-- finishes_at, then final_status.
CREATE TABLE IF NOT EXISTS transactions (
    txn_id INTEGER PRIMARY KEY AUTOINCREMENT,
    module TEXT NOT NULL,
    event TEXT NOT NULL,
    started_at REAL NOT NULL,
    finishes_at REAL NOT NULL,
    final_status TEXT NOT NULL,            -- "Executed" or "Failed"
    failure_reason TEXT NOT NULL,
    event_output TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Application:
    """An OAuth2 client_credentials application."""

    id: int
    client_id: str
    client_secret_sha256: str
    client_secret: str
    grant_type: str
    allowed_scopes: str


@dataclass(frozen=True)
class Device:
    """A row of the core devices table."""

    id: str
    tech: str
    dial: str
    devicetype: str
    user_extension: str
    description: str
    emergency_cid: str
    callerid: str
    secret: str | None
    max_contacts: str | None


@dataclass(frozen=True)
class CoreUser:
    """A row of the core users table."""

    extension: str
    name: str
    password: str
    voicemail: str
    outboundcid: str


@dataclass(frozen=True)
class UsermanUser:
    """A User Management user."""

    username: str
    email: str
    displayname: str
    password_sha256: str
    default_extension: str
    description: str
    group_ids: str


@dataclass(frozen=True)
class Mailbox:
    """A voicemail box."""

    mailbox: str
    password: str
    name: str
    email: str


@dataclass(frozen=True)
class Transaction:
    """An asynchronous transaction started by doreload."""

    txn_id: int
    module: str
    event: str
    started_at: float
    finishes_at: float
    final_status: str
    failure_reason: str
    event_output: str


# MariaDB compares VARCHARs with PAD SPACE, so "5593 " and "5593" are equal.
SAME_ID = "rtrim({column}, ' ') = rtrim(?, ' ')"


class Store:
    """Thread-safe access to the sandbox's SQLite file.

    One connection is shared by the server's threads; a re-entrant lock
    serialises its use, and `transaction()` groups statements atomically.
    """

    def __init__(self, path: pathlib.Path) -> None:
        is_new = not path.exists()
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=30
        )
        self._db.row_factory = sqlite3.Row
        # WAL without a sync per commit keeps each request to a few
        # milliseconds; a sandbox may lose its last writes on power loss.
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        if is_new:
            # The file contains a client secret and the signing key.
            os.chmod(path, 0o600)
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the enclosed store calls as one SQLite transaction."""
        with self._lock:
            if self._db.in_transaction:
                yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _execute(self, sql: str, parameters: tuple[object, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, parameters)

    def _fetch_all(
        self, sql: str, parameters: tuple[object, ...] = ()
    ) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, parameters).fetchall()

    def _fetch_one(
        self, sql: str, parameters: tuple[object, ...] = ()
    ) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._db.execute(sql, parameters).fetchone()
            return row

    # Settings

    def get_setting(self, name: str) -> str | None:
        row = self._fetch_one("SELECT value FROM settings WHERE name = ?", (name,))
        return None if row is None else str(row["value"])

    def set_setting(self, name: str, value: str) -> None:
        self._execute(
            "INSERT INTO settings (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    # Applications

    def add_application(
        self,
        client_id: str,
        client_secret: str,
        client_secret_sha256: str,
        allowed_scopes: str,
        *,
        is_default: bool = False,
    ) -> Application:
        cursor = self._execute(
            "INSERT INTO applications (client_id, client_secret_sha256, client_secret,"
            " grant_type, allowed_scopes, is_default) VALUES (?, ?, ?, ?, ?, ?)",
            (
                client_id,
                client_secret_sha256,
                client_secret,
                "client_credentials",
                allowed_scopes,
                int(is_default),
            ),
        )
        application = self.find_application(client_id)
        assert application is not None and application.id == cursor.lastrowid
        return application

    def find_application(self, client_id: str) -> Application | None:
        row = self._fetch_one(
            "SELECT * FROM applications WHERE client_id = ?", (client_id,)
        )
        return None if row is None else _application(row)

    def default_application(self) -> Application | None:
        row = self._fetch_one(
            "SELECT * FROM applications WHERE is_default = 1 ORDER BY id LIMIT 1"
        )
        return None if row is None else _application(row)

    # Access tokens

    def add_token(
        self,
        jti: str,
        application_id: int,
        expiry: float,
        scopes: list[str],
        ip_address: str,
    ) -> None:
        self._execute(
            "INSERT INTO access_tokens"
            " (jti, application_id, expiry, scopes, ip_address)"
            " VALUES (?, ?, ?, ?, ?)",
            (jti, application_id, expiry, json.dumps(scopes), ip_address),
        )

    def delete_expired_tokens(self, now: float) -> None:
        self._execute("DELETE FROM access_tokens WHERE expiry < ?", (now,))

    def token_exists(self, jti: str) -> bool:
        row = self._fetch_one("SELECT 1 FROM access_tokens WHERE jti = ?", (jti,))
        return row is not None

    def touch_token(self, jti: str, now: float) -> None:
        self._execute(
            "UPDATE access_tokens SET last_accessed = ? WHERE jti = ?", (now, jti)
        )

    # Devices and core users

    def list_devices(self) -> list[Device]:
        # FreePBX lists with ORDER BY id on a VARCHAR: plain string order.
        rows = self._fetch_all("SELECT * FROM devices ORDER BY id, rowid")
        return [_device(row) for row in rows]

    def find_device(self, extension: str) -> Device | None:
        row = self._fetch_one(
            f"SELECT * FROM devices WHERE {SAME_ID.format(column='id')} ORDER BY rowid",
            (extension,),
        )
        return None if row is None else _device(row)

    def find_user(self, extension: str) -> CoreUser | None:
        row = self._fetch_one(
            "SELECT * FROM users WHERE"
            f" {SAME_ID.format(column='extension')} ORDER BY rowid",
            (extension,),
        )
        return None if row is None else _core_user(row)

    def list_users(self) -> list[CoreUser]:
        rows = self._fetch_all("SELECT * FROM users ORDER BY rowid")
        return [_core_user(row) for row in rows]

    def add_device(self, device: Device) -> None:
        self._execute(
            "INSERT INTO devices (id, tech, dial, devicetype, user_extension,"
            " description, emergency_cid, callerid, secret, max_contacts)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                device.id,
                device.tech,
                device.dial,
                device.devicetype,
                device.user_extension,
                device.description,
                device.emergency_cid,
                device.callerid,
                device.secret,
                device.max_contacts,
            ),
        )

    def add_user(self, user: CoreUser) -> None:
        self._execute(
            "INSERT INTO users (extension, name, password, voicemail, outboundcid)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                user.extension,
                user.name,
                user.password,
                user.voicemail,
                user.outboundcid,
            ),
        )

    def delete_device_and_user(self, extension: str) -> None:
        with self.transaction():
            self._execute(
                f"DELETE FROM devices WHERE {SAME_ID.format(column='id')}", (extension,)
            )
            self._execute(
                f"DELETE FROM users WHERE {SAME_ID.format(column='extension')}",
                (extension,),
            )

    # User Management and voicemail

    def find_userman_user(self, username: str) -> UsermanUser | None:
        row = self._fetch_one(
            "SELECT * FROM userman_users WHERE username = ?", (username,)
        )
        return None if row is None else UsermanUser(**dict(row))

    def list_userman_users(self) -> list[tuple[int, UsermanUser]]:
        """Return every User Management user with its id, in id order.

        The id is the row's SQLite rowid, in place of userman's auto-increment
        id, so a re-created user gets a new one.
        """
        # NOTE: SQLite reuses the rowid of a deleted newest row, where
        # MariaDB's AUTO_INCREMENT would not.
        rows = self._fetch_all(
            "SELECT rowid AS id, * FROM userman_users ORDER BY rowid"
        )
        users = []
        for row in rows:
            values = dict(row)
            user_id = int(values.pop("id"))
            users.append((user_id, UsermanUser(**values)))
        return users

    def add_userman_user(self, user: UsermanUser) -> None:
        self._execute(
            "INSERT INTO userman_users (username, email, displayname, password_sha256,"
            " default_extension, description, group_ids) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                user.username,
                user.email,
                user.displayname,
                user.password_sha256,
                user.default_extension,
                user.description,
                user.group_ids,
            ),
        )

    def delete_userman_user(self, username: str) -> None:
        self._execute("DELETE FROM userman_users WHERE username = ?", (username,))

    def find_mailbox(self, mailbox: str) -> Mailbox | None:
        row = self._fetch_one(
            "SELECT * FROM voicemail_boxes WHERE mailbox = ?", (mailbox,)
        )
        return None if row is None else Mailbox(**dict(row))

    def put_mailbox(self, mailbox: Mailbox) -> None:
        self._execute(
            "INSERT OR REPLACE INTO voicemail_boxes (mailbox, password, name, email)"
            " VALUES (?, ?, ?, ?)",
            (mailbox.mailbox, mailbox.password, mailbox.name, mailbox.email),
        )

    def delete_mailbox(self, mailbox: str) -> None:
        self._execute("DELETE FROM voicemail_boxes WHERE mailbox = ?", (mailbox,))

    # Transactions

    def add_transaction(
        self,
        started_at: float,
        finishes_at: float,
        final_status: str,
        failure_reason: str,
    ) -> Transaction:
        cursor = self._execute(
            "INSERT INTO transactions (module, event, started_at, finishes_at,"
            " final_status, failure_reason, event_output)"
            " VALUES ('Framework', 'gql-do-reload', ?, ?, ?, ?, '')",
            (started_at, finishes_at, final_status, failure_reason),
        )
        assert cursor.lastrowid is not None
        transaction = self.find_transaction(cursor.lastrowid)
        assert transaction is not None
        return transaction

    def find_transaction(self, txn_id: int) -> Transaction | None:
        row = self._fetch_one("SELECT * FROM transactions WHERE txn_id = ?", (txn_id,))
        return None if row is None else Transaction(**dict(row))

    def running_reload_exists(self, now: float) -> bool:
        row = self._fetch_one(
            "SELECT 1 FROM transactions"
            " WHERE final_status = 'Executed' AND finishes_at > ?",
            (now,),
        )
        return row is not None

    def last_finished_reload_start(self, now: float) -> float | None:
        row = self._fetch_one(
            "SELECT max(started_at) AS started_at FROM transactions"
            " WHERE final_status = 'Executed' AND finishes_at <= ?",
            (now,),
        )
        if row is None or row["started_at"] is None:
            return None
        return float(row["started_at"])


def _application(row: sqlite3.Row) -> Application:
    values = dict(row)
    del values["is_default"]
    return Application(**values)


def _device(row: sqlite3.Row) -> Device:
    return Device(**dict(row))


def _core_user(row: sqlite3.Row) -> CoreUser:
    return CoreUser(**dict(row))
