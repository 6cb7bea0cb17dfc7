"""Access tokens: JWTs signed with HMAC-SHA256, and their check on each request.

A real FreePBX signs RS256 with a server key pair, while the sandbox signs
HS256 with a per-state-file key. The checks and their hints follow the token
validator of league/oauth2-server 6.1.1 with lcobucci/jwt 3.x, which FreePBX 16
bundles, and each hint names the check that failed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from reconciler.sandbox.php import base64_decode
from reconciler.sandbox.store import Store

TOKEN_LIFETIME_SECONDS = 3600
ALGORITHM = "HS256"

# The validator strips "Bearer " case-sensitively, so "bearer x" stays as is.
BEARER_PREFIX = re.compile(r"^(?:\s+)?Bearer\s")


class AccessDenied(Exception):
    """A bearer token failed a check; the message is the OAuth hint."""


@dataclass(frozen=True)
class TokenClaims:
    """The claims of a verified access token."""

    jti: str
    client_id: str
    scopes: tuple[str, ...]


def new_jti() -> str:
    # oauth2-server makes identifiers from 40 random bytes, as hex.
    return secrets.token_hex(40)


def encode_token(claims: dict[str, Any], key: bytes) -> str:
    """Sign `claims` into a compact JWT whose header repeats the jti, as FreePBX's."""
    header = {"typ": "JWT", "alg": ALGORITHM, "jti": claims["jti"]}
    signing_input = f"{_encode_part(header)}.{_encode_part(claims)}"
    signature = _sign(signing_input, key)
    return f"{signing_input}.{signature}"


def token_claims(
    client_id: str, jti: str, scopes: list[str], issued_at: int
) -> dict[str, Any]:
    """Build the claims FreePBX puts in a client_credentials access token."""
    return {
        "aud": client_id,
        "jti": jti,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + TOKEN_LIFETIME_SECONDS,
        "sub": "",
        "scopes": scopes,
    }


def authenticate(
    authorization: str | None, store: Store, key: bytes, now: float
) -> TokenClaims:
    """Check an Authorization header value and return the token's claims.

    Raises AccessDenied with the hint a FreePBX 16 returns for the first
    failing check: header, parse, signature, time claims, then the database row.
    """
    if authorization is None:
        raise AccessDenied('Missing "Authorization" header')
    jwt = BEARER_PREFIX.sub("", authorization, count=1).strip()
    header, claims, signature = _parse(jwt)
    if not _signature_matches(jwt, header, signature, key):
        raise AccessDenied("Access token could not be verified")
    if not _time_claims_valid(claims, now):
        raise AccessDenied("Access token is invalid")
    jti = claims.get("jti")
    # Each request first drops expired rows, then needs the token's row.
    store.delete_expired_tokens(now)
    if not isinstance(jti, str) or not store.token_exists(jti):
        raise AccessDenied("Access token has been revoked")
    store.touch_token(jti, now)
    return TokenClaims(jti, str(claims.get("aud", "")), _scopes(claims))


def _parse(jwt: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    parts = jwt.split(".")
    if len(parts) != 3:
        raise AccessDenied("The JWT string must have two dots")
    header = _decode_part(parts[0])
    claims = _decode_part(parts[1])
    return header, claims, parts[2]


def _decode_part(part: str) -> dict[str, Any]:
    try:
        value = json.loads(base64_decode(part))
    except (ValueError, UnicodeDecodeError) as error:
        raise AccessDenied("Error while decoding to JSON") from error
    if not isinstance(value, dict):
        raise AccessDenied("Error while decoding to JSON")
    return value


def _signature_matches(
    jwt: str, header: dict[str, Any], signature: str, key: bytes
) -> bool:
    if header.get("alg") != ALGORITHM or signature == "":
        return False
    signing_input = jwt.rsplit(".", 1)[0]
    return hmac.compare_digest(_sign(signing_input, key), signature)


def _time_claims_valid(claims: dict[str, Any], now: float) -> bool:
    for name in ("iat", "nbf"):
        value = claims.get(name)
        if isinstance(value, int | float) and value > now:
            return False
    expiry = claims.get("exp")
    return not (isinstance(expiry, int | float) and expiry < now)


def _scopes(claims: dict[str, Any]) -> tuple[str, ...]:
    scopes = claims.get("scopes", [])
    if not isinstance(scopes, list):
        return ()
    return tuple(scope for scope in scopes if isinstance(scope, str))


def _encode_part(value: dict[str, Any]) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _sign(signing_input: str, key: bytes) -> str:
    digest = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
