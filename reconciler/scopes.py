"""The OAuth2 scopes each FreePBX operation of this tool needs, checked up front.

FreePBX's API module (16.0) unlocks the GraphQL fields of core and framework
by scope. A token without the scope gets a schema without the field, so the
request fails with `Cannot query field` or `Unknown type` only after earlier
requests ran. Checking the token's scopes first lets apply refuse before it
creates anything that it could not apply.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.client import FreePBXClient
from reconciler.errors import ApiError, MissingScope


@dataclass(frozen=True)
class ScopeNeed:
    """The operations one group of fields serves, and the scopes that unlock it."""

    operations: str
    scopes: tuple[str, ...]

    @property
    def scope_to_add(self) -> str:
        # The module's scope, which covers the narrower ones after it.
        return self.scopes[1]


CORE_READ = ScopeNeed("fetchAllExtensions", ("gql", "gql:core", "gql:core:read"))
CORE_WRITE = ScopeNeed("addExtension", ("gql", "gql:core", "gql:core:write"))
# doreload and fetchApiStatus belong to the framework module's "modules" class.
FRAMEWORK_MODULES = ScopeNeed(
    "doreload and fetchApiStatus (apply config)",
    ("gql", "gql:framework", "gql:framework:read", "gql:framework:read:modules"),
)


def check_apply_scopes(client: FreePBXClient) -> None:
    """Raise MissingScope when the token cannot create extensions and apply config.

    Does nothing when the token's scopes cannot be read (a token that is not
    a JWT), so FreePBX's own check decides then.
    """
    granted = client.token_scopes()
    if granted is None:
        return
    missing = [
        need for need in (CORE_WRITE, FRAMEWORK_MODULES) if not _allows(need, granted)
    ]
    if missing:
        raise MissingScope(
            "; ".join(_missing_text(need, granted) for need in missing)
            + ". Nothing was created"
        )


def explain_read_failure(client: FreePBXClient, error: ApiError) -> ApiError:
    """Name the missing scope in a fetchAllExtensions error that the scopes explain.

    Returns ``error`` unchanged when the scopes cannot be read or allow the read.
    """
    message = error.server_message
    if not message.startswith('Cannot query field "fetchAllExtensions"'):
        return error
    granted = client.token_scopes()
    if granted is None or _allows(CORE_READ, granted):
        return error
    explained = f"{_missing_text(CORE_READ, granted)} (FreePBX: {message})"
    return ApiError(error.operation, explained, error.http_status)


def _allows(need: ScopeNeed, granted: frozenset[str]) -> bool:
    return not granted.isdisjoint(need.scopes)


def _missing_text(need: ScopeNeed, granted: frozenset[str]) -> str:
    has = " ".join(sorted(granted)) or "no scope"
    return (
        f"the access token has none of the scopes {', '.join(need.scopes)}, which "
        f"{need.operations} needs (it has: {has}); add {need.scope_to_add} to "
        "--scope (FREEPBX_SCOPE), from a FreePBX API application that allows it"
    )
