"""Connection settings for one FreePBX, from flags or the environment."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from reconciler.errors import SettingsError

DEFAULT_SCOPE = "gql:core gql:framework"
TOKEN_PATH = "/admin/api/api/token"
GRAPHQL_PATH = "/admin/api/api/gql"


@dataclass(frozen=True)
class ConnectionSettings:
    """The PBX's address and credentials. ``repr`` never shows the secret."""

    url: str
    client_id: str
    client_secret: str
    scope: str = DEFAULT_SCOPE
    ca_bundle: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    # False for the sandbox the tool starts itself: a proxy set for the
    # office's network must not get the requests to its loopback port.
    use_proxy: bool = True

    def __repr__(self) -> str:
        return f"ConnectionSettings(url={self.url!r}, client_id={self.client_id!r})"

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    @property
    def graphql_url(self) -> str:
        return self.url + GRAPHQL_PATH


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
    _check_credential("FREEPBX_CLIENT_ID (--client-id)", client_id, ":")
    _check_credential("FREEPBX_CLIENT_SECRET", client_secret, "")
    base = _check_url(url, allow_http)
    check_timeouts(connect_timeout, read_timeout)
    if ca_bundle is not None:
        check_ca_bundle(ca_bundle)
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


def _check_credential(name: str, value: str, forbidden: str) -> None:
    """Reject a client ID or secret that HTTP Basic authentication cannot carry.

    FreePBX's API page shows both as hexadecimal strings. The message names
    the setting but never shows its value.
    """
    if all(
        "!" <= character <= "~" and character not in forbidden for character in value
    ):
        return
    rule = "letters, digits and ASCII punctuation"
    if forbidden:
        rule += f" other than {forbidden!r}"
    raise SettingsError(
        f"{name} contains a space, a control character or a character outside "
        f"ASCII; it takes {rule} only, so copy it again from the API page of "
        "FreePBX"
    )


# A day. Python on Linux x86_64 raises OverflowError for a socket timeout
# of 9.3e9 s, and no PBX takes longer than a day to respond.
MAX_TIMEOUT_SECONDS = 86_400


def check_timeouts(connect_timeout: float, read_timeout: float) -> None:
    """Raise SettingsError unless both timeouts are positive, finite seconds."""
    for flag, variable, value in (
        ("--connect-timeout", "FREEPBX_CONNECT_TIMEOUT", connect_timeout),
        ("--read-timeout", "FREEPBX_READ_TIMEOUT", read_timeout),
    ):
        if not math.isfinite(value) or value <= 0 or value > MAX_TIMEOUT_SECONDS:
            raise SettingsError(
                f"invalid {flag} ({variable}) {value:g}: a timeout must be a "
                f"positive number of seconds up to {MAX_TIMEOUT_SECONDS:,}, for "
                "example 10"
            )


def check_ca_bundle(ca_bundle: str) -> None:
    """Raise SettingsError unless ``ca_bundle`` names a readable file."""
    path = Path(ca_bundle)
    if not path.is_file():
        problem = "is a directory" if path.is_dir() else "not found"
        raise SettingsError(
            f"CA bundle {ca_bundle} (--ca-bundle, FREEPBX_CA_BUNDLE) {problem}; "
            "give the path of a PEM file with the CA certificates of the PBX"
        )
    if not os.access(path, os.R_OK):
        raise SettingsError(
            f"CA bundle {ca_bundle} (--ca-bundle, FREEPBX_CA_BUNDLE) is not "
            "readable; check its permissions"
        )


def _check_url(url: str, allow_http: bool) -> str:
    parts = _split_url(url)
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
    if not is_host_name(parts.hostname):
        raise SettingsError(
            f"invalid FreePBX URL {url!r}: the host is neither an IP address nor "
            "a valid DNS name (labels of 1 to 63 characters, separated by dots)"
        )
    if any(c.isspace() or not c.isprintable() or not c.isascii() for c in parts.path):
        raise SettingsError(
            f"invalid FreePBX URL {url!r}: its path contains a space, a control "
            "character or a character outside ASCII; percent-encode it, for "
            "example %20 for a space"
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


def is_host_name(host: str) -> bool:
    """Tell whether `host` is an IP address or a name that DNS can look up.

    A name may contain non-ASCII letters, which IDNA encodes; each label must
    then be 1 to 63 characters, and the whole name at most 253.
    """
    try:
        ip_address(host)
        return True
    except ValueError:
        pass
    try:
        encoded = host.rstrip(".").encode("idna")
    except UnicodeError:  # an empty or too long label
        return False
    return 0 < len(encoded) <= 253 and all(c > 32 for c in encoded)


def _split_url(url: str) -> SplitResult:
    """Split ``url``, raising SettingsError for an unclosed [ or a bad port."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 (urlsplit checks the port only when it is read)
    except ValueError as error:
        raise SettingsError(
            f"invalid FreePBX URL {url!r} ({error}); expected https://HOST[:PORT], "
            "with an IPv6 address in brackets: https://[2001:db8::1]"
        ) from None
    return parts
