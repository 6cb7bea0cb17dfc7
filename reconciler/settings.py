"""Connection settings for one FreePBX, from flags or the environment."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from reconciler.errors import SettingsError

DEFAULT_SCOPE = "gql:core gql:framework"
TOKEN_PATH = "/admin/api/api/token"
GRAPHQL_PATH = "/admin/api/api/gql"


@dataclass(frozen=True)
class ConnectionSettings:
    """Where the PBX is and how to authenticate; ``repr`` never shows the secret."""

    url: str
    client_id: str
    client_secret: str
    scope: str = DEFAULT_SCOPE
    ca_bundle: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0

    def __repr__(self) -> str:
        return f"ConnectionSettings(url={self.url!r}, client_id={self.client_id!r})"

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    @property
    def graphql_url(self) -> str:
        return self.url + GRAPHQL_PATH

    @property
    def verify(self) -> bool | str:
        """Return the ``verify`` value for requests: a CA bundle path or True."""
        return self.ca_bundle or True


def build_settings(
    url: str | None,
    client_id: str | None,
    client_secret: str | None,
    *,
    scope: str = DEFAULT_SCOPE,
    ca_bundle: str | None = None,
    connect_timeout: float = 10.0,
    read_timeout: float = 60.0,
    allow_http: bool = False,
) -> ConnectionSettings:
    """Check the settings and return them; raise SettingsError naming what to fix."""
    missing = [
        name
        for name, value in (
            ("FREEPBX_URL (--url)", url),
            ("FREEPBX_CLIENT_ID (--client-id)", client_id),
            ("FREEPBX_CLIENT_SECRET", client_secret),
        )
        if not value
    ]
    if missing:
        raise SettingsError(
            f"missing setting: {', '.join(missing)}; set it in the environment "
            "(or use --sandbox to try the tool on the built-in sandbox PBX)"
        )
    assert url and client_id and client_secret
    base = _check_url(url, allow_http)
    if connect_timeout <= 0 or read_timeout <= 0:
        raise SettingsError("timeouts must be positive numbers of seconds")
    if not scope.strip():
        raise SettingsError("the OAuth2 scope must not be empty")
    return ConnectionSettings(
        url=base,
        client_id=client_id,
        client_secret=client_secret,
        scope=" ".join(scope.split()),
        ca_bundle=ca_bundle,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )


def _check_url(url: str, allow_http: bool) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SettingsError(
            f"invalid FreePBX URL {url!r}: expected https://HOST[:PORT], "
            "the address of the FreePBX web interface"
        )
    if parts.username or parts.password:
        raise SettingsError(
            "the FreePBX URL must not contain credentials; use FREEPBX_CLIENT_ID and "
            "FREEPBX_CLIENT_SECRET"
        )
    if parts.scheme == "http" and not allow_http:
        raise SettingsError(
            f"refusing plain http:// URL {parts.scheme}://{parts.netloc}: the client "
            "secret and token would cross the network unencrypted; use https:// or "
            "pass --allow-http"
        )
    path = parts.path.rstrip("/")
    # A URL copied from the browser may end in /admin or /admin/config.php.
    for suffix in ("/admin/config.php", "/admin"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    return f"{parts.scheme}://{parts.netloc}{path}"
