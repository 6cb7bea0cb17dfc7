"""The four userman REST routes: users and default extensions as FreePBX 16 lists them.

Shapes were measured on userman 16.0.44.13. A user object is the whole
userman_users row in column order, then `assigned`; the list adds `dn`. An
unknown user or extension is HTTP 200 with the body `false`. Lookups compare
as MariaDB's utf8mb4_unicode_ci collation does, and the lowest id wins a tie.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable
from typing import Any

from reconciler.sandbox.pbx import Pbx
from reconciler.sandbox.store import UsermanUser

# Every user the sandbox has comes from addExtension, in the PBX Internal
# Directory (id "1").
INTERNAL_DIRECTORY = "1"
BCRYPT_PREFIX = "$2a$08$"
BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# A bcrypt hash is 60 characters: the prefix, 22 of salt and 31 of digest.
BCRYPT_BODY_LENGTH = 53
# Default extensions that stand for "no extension": left out of the map.
NO_EXTENSION = ("none", "")


class PhpWarning(Exception):
    """A PHP warning that FreePBX raises as an exception, so Slim responds HTTP 500."""


def list_users(pbx: Pbx) -> list[dict[str, Any]]:
    """GET users: every user, ordered by username, each with `dn`."""
    return [user_object(user_id, user, in_list=True) for user_id, user in _sorted(pbx)]


def find_user(pbx: Pbx, username: str) -> dict[str, Any] | bool:
    """GET users/{username}: the user, or False."""
    return _first(pbx, username, lambda user: user.username)


def find_user_by_extension(pbx: Pbx, extension: str) -> dict[str, Any] | bool:
    """GET extensions/{ext}: the user whose default extension is `ext`, or False."""
    return _first(pbx, extension, lambda user: user.default_extension)


def map_extensions(pbx: Pbx) -> dict[str, Any] | list[Any]:
    """GET extensions: default extension -> {id, username, description}.

    Raises PhpWarning when no user has a default extension: the handler then
    returns a variable it never assigned.
    """
    entries: dict[str, dict[str, Any]] = {}
    for user_id, user in _sorted(pbx):
        if user.default_extension in NO_EXTENSION:
            continue
        # A later user with the same extension replaces the value in place.
        entries[user.default_extension] = {
            "id": user_id,
            "username": user.username,
            "description": user.description,
        }
    if not entries:
        raise PhpWarning("the extensions handler's result was never assigned")
    # PHP encodes an array whose keys are exactly 0..n-1 as a JSON list.
    if list(entries) == [str(index) for index in range(len(entries))]:
        return list(entries.values())
    return entries


def user_object(user_id: int, user: UsermanUser, *, in_list: bool) -> dict[str, Any]:
    """Build one user as userman's REST API shows it."""
    fields: dict[str, Any] = {
        "id": user_id,
        "auth": INTERNAL_DIRECTORY,
        "authid": None,
        "username": user.username,
        "description": user.description,
        "password": password_hash(user_id, user),
        "default_extension": user.default_extension,
        # addExtension puts the user in group 1 but sets no primary group.
        "primary_group": None,
        "permissions": None,
        "fname": None,
        "lname": None,
        "displayname": user.displayname,
        "title": None,
        "company": None,
        "department": None,
        "language": None,
        "timezone": None,
        "dateformat": None,
        "timeformat": None,
        "datetimeformat": None,
        "email": user.email,
        "cell": None,
        "work": None,
        "home": None,
        "fax": None,
    }
    if in_list:
        # `dn` falls back to the username only for a null displayname, which
        # addExtension never leaves.
        fields["dn"] = user.displayname
    fields["assigned"] = (
        [] if user.default_extension in ("", "0") else [user.default_extension]
    )
    return fields


def password_hash(user_id: int, user: UsermanUser) -> str:
    """Return a stand-in for userman's bcrypt hash, with its prefix and length.

    It is derived from the user's id, name and stored SHA-256, so a re-created
    user gets a new one, but it verifies no password.
    """
    seed = f"{user_id}:{user.username}:{user.password_sha256}".encode()
    digest = hashlib.sha512(seed).digest()
    body = "".join(BCRYPT_ALPHABET[byte % 64] for byte in digest[:BCRYPT_BODY_LENGTH])
    return BCRYPT_PREFIX + body


def collation_key(text: str) -> str:
    """Return the text as utf8mb4_unicode_ci compares it.

    Case, accents and trailing blanks do not count.
    """
    # NOTE: an approximation of the collation by Unicode decomposition; it
    # treats the letters this sandbox stores (digits, Latin) as MariaDB does.
    decomposed = unicodedata.normalize("NFKD", text)
    base = "".join(char for char in decomposed if not unicodedata.combining(char))
    return base.casefold().rstrip(" ")


def _sorted(pbx: Pbx) -> list[tuple[int, UsermanUser]]:
    users = pbx.store.list_userman_users()
    return sorted(users, key=lambda pair: (collation_key(pair[1].username), pair[0]))


def _first(
    pbx: Pbx, wanted: str, column: Callable[[UsermanUser], str]
) -> dict[str, Any] | bool:
    key = collation_key(wanted)
    # Users come in id order, so the first match has the lowest id.
    for user_id, user in pbx.store.list_userman_users():
        if collation_key(column(user)) == key:
            return user_object(user_id, user, in_list=False)
    return False
