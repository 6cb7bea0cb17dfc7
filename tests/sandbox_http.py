"""HTTP helpers for the sandbox tests: a token and a GraphQL request over real HTTP."""

from __future__ import annotations

from typing import Any

import requests

from reconciler.sandbox.server import SandboxServer

TOKEN_PATH = "/admin/api/api/token"
GRAPHQL_PATH = "/admin/api/api/gql"


def access_token(sandbox: SandboxServer, scope: str = "gql:core gql:framework") -> str:
    """Request a token with the sandbox's own client credentials."""
    response = requests.post(
        sandbox.url + TOKEN_PATH,
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(sandbox.client_id, sandbox.client_secret),
        timeout=10,
    )
    token: str = response.json()["access_token"]
    return token


def graphql(
    sandbox: SandboxServer, query: str, variables: dict[str, Any] | None = None
) -> requests.Response:
    """Send one GraphQL request with a new token, as a one-off script does."""
    return requests.post(
        sandbox.url + GRAPHQL_PATH,
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {access_token(sandbox)}"},
        timeout=10,
    )
