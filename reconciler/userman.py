"""Read User Manager users over FreePBX's userman REST API, for email drift.

The GraphQL API cannot read a user's email. Only the read-only REST route
GET {base}/admin/api/api/rest/userman/users shows it, to a token with the
scope rest:userman:read, rest:userman or rest. Its response also contains
each user's password hash, so only the id, username, default extension and
email are kept, each hash is registered as a secret, and no body is ever
logged or put in an error message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reconciler.errors import ApiError
from reconciler.redact import register_secret

if TYPE_CHECKING:
    from reconciler.client import FreePBXClient
    from reconciler.transport import Response

log = logging.getLogger(__name__)

USERS_PATH = "/admin/api/api/rest/userman/users"
# Any one of these scopes lets a token read userman (rest:userman:write does not).
READ_SCOPES = ("rest:userman:read", "rest:userman", "rest")
SCOPE_TO_ADD = "rest:userman:read"


@dataclass(frozen=True)
class UsermanUser:
    """The fields of one User Manager user that email drift needs."""

    id: int
    username: str
    default_extension: str
    email: str


@dataclass(frozen=True)
class EmailState:
    """The User Manager users read for email drift, or why none were read."""

    # None when emails were not read.
    users: tuple[UsermanUser, ...] | None
    unchecked_reason: str = ""
    _by_extension: dict[str, UsermanUser] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # An extension's user is the one whose default extension it is (lowest
        # id first, as FreePBX's own lookup), else the user named after it,
        # which is how addExtension names the users it creates.
        by_extension = self._by_extension
        for user in sorted(self.users or (), key=lambda u: u.id):
            by_extension.setdefault(user.default_extension, user)
        for user in sorted(self.users or (), key=lambda u: u.id):
            if user.username not in by_extension:
                by_extension[user.username] = user

    @property
    def checked(self) -> bool:
        return self.users is not None

    def user_for(self, extension: str) -> UsermanUser | None:
        """Return the User Manager user of an extension, or None when it has none."""
        return self._by_extension.get(extension)


def not_checked(reason: str) -> EmailState:
    return EmailState(users=None, unchecked_reason=reason)


def read_email_state(client: FreePBXClient) -> EmailState:
    """Read every User Manager user once, when the token may.

    Without a userman read scope, or when FreePBX refuses the read (401, 403)
    or has no such route (404), the returned state gives the reason.
    Any other failure raises ApiError, so a failed read is never taken for an
    empty list.
    """
    scopes = client.granted_scopes()
    granted = [scope for scope in READ_SCOPES if scope in scopes]
    if not granted:
        return not_checked(
            "the access token has none of the scopes "
            f"{', '.join(READ_SCOPES)}; add {SCOPE_TO_ADD} to --scope "
            "(FREEPBX_SCOPE) and use a FreePBX API application that allows it"
        )

    url = client.settings.url + USERS_PATH
    operation = f"GET {USERS_PATH}"
    response = client.rest_get(operation, url)
    status = response.status
    if status in (401, 403):
        return not_checked(
            f"FreePBX refused {operation} (HTTP {status}) although the token "
            f"has the scope {granted[0]}; check the API application's scopes"
        )
    if status == 404:
        return not_checked(
            f"FreePBX has no route {USERS_PATH} (HTTP 404); the userman or api "
            "module may be missing or too old"
        )
    if status != 200:
        raise ApiError(operation, f"unexpected HTTP {status}", status)
    users = _users_from(response, operation)
    log.debug("%s: %d User Manager users", operation, len(users))
    return EmailState(users=users)


def _users_from(response: Response, operation: str) -> tuple[UsermanUser, ...]:
    try:
        body = response.json()
    except ValueError:
        raise ApiError(operation, "the response is not JSON", 200) from None
    if not isinstance(body, list):
        raise ApiError(operation, "the response is not a list of users", 200)
    users = []
    for item in body:
        if not isinstance(item, dict) or not isinstance(item.get("username"), str):
            problem = "the response lists a user without a username"
            raise ApiError(operation, problem, 200)
        users.append(_user(item))
    return tuple(users)


def _user(item: dict[str, Any]) -> UsermanUser:
    # The hash is never shown; masking it guards against a mistake elsewhere.
    password = item.get("password")
    if isinstance(password, str):
        register_secret(password)
    user_id = item.get("id")
    return UsermanUser(
        id=user_id if isinstance(user_id, int) else 0,
        username=item["username"],
        default_extension=_text(item.get("default_extension")),
        email=_text(item.get("email")),
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
