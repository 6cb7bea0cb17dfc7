"""Speak to FreePBX: the OAuth2 token endpoint, the GraphQL endpoint and REST reads.

One token per run, reused; one kept-alive connection for every request.
Every FreePBX error shape becomes an ApiError or TokenError whose message is
safe to show: no response body of the token endpoint, no secret.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import time
from collections.abc import Callable
from email.message import Message
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlencode, urljoin, urlsplit

from reconciler import __version__
from reconciler.errors import (
    ApiError,
    OutcomeUnknown,
    PbxUnreachable,
    ReconcilerError,
    SettingsError,
    TokenError,
    TokenRejected,
)
from reconciler.redact import register_secret
from reconciler.settings import ConnectionSettings
from reconciler.transport import (
    Connection,
    NotSent,
    Response,
    TransportError,
    proxy_for,
)

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Reads are retried after a network failure or an HTTP 5xx, with back-off.
READ_ATTEMPTS = 3
READ_BACKOFF_SECONDS = 0.5

# The b64token syntax of a bearer token (RFC 6750, section 2.1). A token with
# other characters, such as a line break, cannot be sent in a header.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class FreePBXClient:
    """A connection to one FreePBX's API, used as a context manager."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        # Nothing prints the client secret; masking it guards against a
        # server or library that echoes a request back into an error.
        register_secret(settings.client_secret)
        self._token: str | None = None
        self._connection: Connection | None = None
        self.request_counts: dict[str, int] = {}

    def __enter__(self) -> FreePBXClient:
        settings = self.settings
        proxy = None
        if settings.use_proxy:
            try:
                proxy = proxy_for(settings.url, dict(os.environ))
            except ValueError as error:
                raise SettingsError(str(error)) from None
        if proxy is not None:
            if proxy.authorization is not None:
                register_secret(proxy.authorization.removeprefix("Basic "))
            if proxy.password is not None:
                register_secret(proxy.password)
            log.debug("connecting through the proxy %s", proxy.address)
        self._connection = Connection(
            settings.url,
            ca_bundle=settings.ca_bundle,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            proxy=proxy,
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = None

    def _send_request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> Response:
        assert self._connection is not None, "use FreePBXClient as a context manager"
        return self._connection.request(method, url, headers, body)

    # --- token -------------------------------------------------------------

    def fetch_token(self) -> None:
        """Request an access token with the client credentials grant.

        A network failure or an HTTP 5xx is retried as a read is, because a
        grant changes nothing on the PBX but adds one more token.
        """
        settings = self.settings
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                response = self._post_token_request()
            except TransportError as error:
                failure = f"token request to {settings.token_url} failed: {error}"
                # A failure that would repeat, such as a failed certificate
                # check or a proxy's 407, is not retried.
                if attempt == READ_ATTEMPTS or not error.retryable:
                    raise _TokenRequestFailed(failure) from None
            else:
                if response.status < 500 or attempt == READ_ATTEMPTS:
                    break
                failure = f"token request failed with {_server_error(response)}"
            delay = READ_BACKOFF_SECONDS * 2 ** (attempt - 1)
            log.warning("%s; retrying in %.1f s", failure, delay)
            time.sleep(delay)
        self._token = _token_from(response, settings)
        register_secret(self._token)

    def _post_token_request(self) -> Response:
        settings = self.settings
        self._count("token")
        log.debug("requesting a token from %s", settings.token_url)
        credentials = f"{settings.client_id}:{settings.client_secret}".encode()
        headers = {
            **_HEADERS,
            "Authorization": "Basic " + base64.b64encode(credentials).decode(),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        form = {"grant_type": "client_credentials", "scope": settings.scope}
        body = urlencode(form).encode()
        return self._send_request("POST", settings.token_url, headers, body)

    def granted_scopes(self) -> frozenset[str]:
        """Return the scopes of the access token, requesting a token if there is none.

        FreePBX's token response has no scope field, so the scopes come from
        the JWT's `scopes` claim, read without checking the signature: they
        only decide which reads to try, and FreePBX checks each request. A
        token that is not a readable JWT counts as granting the requested
        scopes, because FreePBX 16 grants all of them or issues no token.
        """
        claimed = self.token_scopes()
        if claimed is None:
            return frozenset(self.settings.scope.split())
        return claimed

    def token_scopes(self) -> frozenset[str] | None:
        """Return the `scopes` claim of the access token, or None when it has none.

        Requests a token if there is none yet.
        """
        if self._token is None:
            self.fetch_token()
        assert self._token is not None
        return _jwt_scopes(self._token)

    # --- GraphQL -----------------------------------------------------------

    def query(self, operation: str, document: str, variables: dict[str, Any]) -> Any:
        """Run a read; retry network failures and HTTP 5xx a bounded number of times."""
        return self._read(
            operation, lambda: self._execute(operation, document, variables)
        )

    def _read(self, operation: str, send: Callable[[], _T]) -> _T:
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                return send()
            except (PbxUnreachable, OutcomeUnknown, _ServerFailure) as error:
                # fetch_token retries on its own, so its failure is final.
                final = _TokenRequestFailed | _LastingFailure
                if attempt == READ_ATTEMPTS or isinstance(error, final):
                    raise _public(error) from None
                delay = READ_BACKOFF_SECONDS * 2 ** (attempt - 1)
                log.warning(
                    "%s failed (%s); retrying in %.1f s", operation, error, delay
                )
                time.sleep(delay)
        raise AssertionError("unreachable")

    def mutate(self, operation: str, document: str, variables: dict[str, Any]) -> Any:
        """Run a mutation once; it is never resent after it may have reached FreePBX.

        Raises OutcomeUnknown when the request may have run but the response
        is lost: no response, an HTTP 5xx, or a body that is not GraphQL.
        """
        try:
            return self._execute(operation, document, variables)
        except _ServerFailure as error:
            raise OutcomeUnknown(f"{operation}: {error}") from None

    def _execute(self, operation: str, document: str, variables: dict[str, Any]) -> Any:
        if self._token is None:
            self.fetch_token()
        try:
            return self._send(operation, document, variables)
        except _AuthRejected:
            # The token expired or was revoked: one new token, one more try.
            log.info("FreePBX rejected the access token; requesting a new one")
            self.fetch_token()
            try:
                return self._send(operation, document, variables)
            except _AuthRejected as error:
                raise TokenRejected(operation, str(error), error.http_status) from None

    def _send(self, operation: str, document: str, variables: dict[str, Any]) -> Any:
        """POST one GraphQL request and return the `data` of its response.

        The document text is sent as given. Redirects are not followed: a
        POST that is redirected would be resent as a GET, or with its
        variables (PINs, passwords) to another scheme or host.
        """
        headers = {
            **_HEADERS,
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/json",
        }
        body = json.dumps({"query": document, "variables": variables}).encode()
        url = self.settings.graphql_url
        response = self._timed(operation, "POST", url, headers, body)
        return _graphql_data(operation, response)

    # --- REST --------------------------------------------------------------

    def rest_get(self, operation: str, url: str) -> Response:
        """GET a REST route with the access token and return the response.

        Network failures and HTTP 5xx are retried as for GraphQL reads, and
        an OAuth rejection gets one new token. A redirect is an ApiError.
        Other statuses are the caller's to read. No body is logged or put in
        an error, because userman's responses contain password hashes.
        """
        return self._read(operation, lambda: self._rest_get_once(operation, url))

    def _rest_get_once(self, operation: str, url: str) -> Response:
        if self._token is None:
            self.fetch_token()
        response = self._send_get(operation, url)
        rejection = _rest_auth_rejection(response)
        if rejection is not None:
            log.info("FreePBX rejected the access token; requesting a new one")
            self.fetch_token()
            response = self._send_get(operation, url)
            rejection = _rest_auth_rejection(response)
            if rejection is not None:
                raise TokenRejected(
                    operation, f"access token rejected: {rejection}", response.status
                )
        if response.status >= 500:
            status = response.status
            raise _ServerFailure(operation, _server_error(response), status)
        if response.is_redirect:
            raise ApiError(operation, _redirect_problem(response), response.status)
        return response

    def _send_get(self, operation: str, url: str) -> Response:
        headers = {**_HEADERS, "Authorization": f"Bearer {self._token}"}
        return self._timed(operation, "GET", url, headers, None)

    def _timed(
        self,
        operation: str,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
    ) -> Response:
        """Send one request of `operation`, counted and logged with its time."""
        self._count(operation)
        status: int | None = None
        started = time.monotonic()
        try:
            response = self._send_request(method, url, headers, body)
            status = response.status
        except TransportError as error:
            raise _connection_error(operation, error, url) from None
        finally:
            elapsed = (time.monotonic() - started) * 1000
            log.debug("%s: HTTP %s in %.0f ms", operation, status, elapsed)
        return response

    def _count(self, kind: str) -> None:
        self.request_counts[kind] = self.request_counts.get(kind, 0) + 1


# Sent with every request: they name the client in the web server's access
# log and request JSON.
_HEADERS = {"User-Agent": f"reconciler/{__version__}", "Accept": "application/json"}

_BAD_REDIRECT = (
    "the answer redirects to an invalid address; set FREEPBX_URL to the base URL "
    "that the PBX serves without redirecting"
)


class _TokenRequestFailed(PbxUnreachable):
    """A token request that got no response, after fetch_token's retries."""


class _LastingFailure(PbxUnreachable):
    """A request that never left and would fail the same way if sent again."""


class _AuthRejected(ReconcilerError):
    def __init__(self, message: str, http_status: int | None) -> None:
        super().__init__(f"access token rejected: {message}")
        self.http_status = http_status


class _ServerFailure(ReconcilerError):
    """An HTTP 5xx or a body that is not GraphQL: worth retrying for a read."""

    def __init__(self, operation: str, message: str, http_status: int | None) -> None:
        super().__init__(message)
        self.api_error = ApiError(operation, message, http_status)


def _public(error: Exception) -> Exception:
    return error.api_error if isinstance(error, _ServerFailure) else error


def _json_body(response: Response) -> Any:
    """Return the decoded JSON body, or None when the body is not JSON.

    The bytes are read as UTF-8 unless the Content-Type declares another
    charset.
    """
    content_type = response.header("Content-Type") or ""
    charset = None
    if "charset" in content_type.lower():
        message = Message()
        message["Content-Type"] = content_type
        charset = message.get_content_charset()
    content = response.body
    try:
        if charset not in (None, "utf-8", "utf8"):
            try:
                return json.loads(content.decode(charset))
            except LookupError:
                pass  # a charset Python does not know: read the bytes as UTF-8
        return json.loads(content)
    except (ValueError, RecursionError):
        return None


def _graphql_data(operation: str, response: Response) -> Any:
    """Return the `data` of a GraphQL response, or raise the error it reports.

    A body with `errors` is an ApiError at any HTTP status, because FreePBX 16
    responds to errors with HTTP 400 and FreePBX 17 with HTTP 200.
    """
    body = _json_body(response)
    if isinstance(body, dict):
        errors = body.get("errors")
        if errors:
            raise ApiError(operation, _first_message(errors), response.status)
        data = body.get("data")
        if data is not None:
            return data
    raise _not_graphql_error(operation, response, body)


def _not_graphql_error(operation: str, response: Response, body: Any) -> Exception:
    """Return the error for a response that carries neither `data` nor `errors`."""
    status = response.status
    oauth = _oauth_error_message(body)
    # FreePBX 15/16 respond 401; FreePBX 17 may respond 500 with the OAuth message.
    if status == 401 or (status == 500 and oauth is not None):
        return _AuthRejected(oauth or "HTTP 401", status)
    if status >= 500:
        return _ServerFailure(operation, _server_error(response), status)
    if status >= 400:
        return ApiError(operation, f"unexpected HTTP {status}", status)
    if response.is_redirect:
        # NOTE: an ApiError means that FreePBX did not run the request, which
        # holds when the web server redirects before FreePBX's PHP code runs.
        return ApiError(operation, _redirect_problem(response), status)
    return _ServerFailure(operation, "the answer is not a GraphQL response", status)


def _redirect_problem(response: Response) -> str:
    """Return the problem of a redirected request, naming where it points."""
    location = response.header("Location") or ""
    try:
        target = urljoin(response.url, location)
        urlsplit(target).port  # noqa: B018 - raises ValueError for port 99999
    except ValueError:  # an invalid address, such as http://[::1/x
        return _BAD_REDIRECT
    if not target.isprintable():
        return _BAD_REDIRECT
    return (
        f"the request was redirected to {target} and not resent; set "
        "FREEPBX_URL to the base URL of that address"
    )


def _rest_auth_rejection(response: Response) -> str | None:
    """Return why FreePBX rejected the token of a REST request, or None.

    A 401 without an OAuth body is a scope check, which a new token cannot fix.
    """
    if response.status not in (401, 500):
        return None
    return _oauth_message(response.text)


def _jwt_scopes(token: str) -> frozenset[str] | None:
    """Return the `scopes` claim of a JWT, or None when the token has none to read."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except ValueError:  # binascii.Error and UnicodeDecodeError included
        return None
    scopes = claims.get("scopes") if isinstance(claims, dict) else None
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        return None
    return frozenset(scopes)


def _first_message(errors: Any) -> str:
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        message = errors[0].get("message")
        if message:
            return str(message)
        return "FreePBX reported an error without a message"
    return str(errors)


def _oauth_message(text: str) -> str | None:
    """Return the OAuth error text of an access-denied body, or None."""
    try:
        body = json.loads(text)
    except ValueError:
        return None
    return _oauth_error_message(body)


def _oauth_error_message(body: Any) -> str | None:
    """Return the OAuth error text of a decoded access-denied body, or None."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):
        # FreePBX 17 (Whoops): {"error": {"type": "...OAuthServerException",
        # "message": "The resource owner or authorization server denied ..."}}
        # Only the exception's class counts, because a mutation is sent again
        # after a rejected token: a PHP error of a mutation that ran may
        # mention a token in its message.
        if str(error.get("type", "")).endswith("OAuthServerException"):
            return str(error.get("message") or "access denied")
        return None
    if error == "access_denied":
        hint = body.get("hint")
        return (
            f"{body.get('message', 'access denied')} ({hint})"
            if hint
            else "access denied"
        )
    return None


def _token_from(response: Response, settings: ConnectionSettings) -> str:
    url = settings.token_url
    if response.is_redirect:
        raise TokenError(
            f"token request to {url} failed: {_redirect_problem(response)}"
        )
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status == 200 and isinstance(body, dict):
        token = body.get("access_token")
        if (
            isinstance(token, str)
            and token
            and str(body.get("token_type", "")).lower() == "bearer"
        ):
            if _BEARER_TOKEN.fullmatch(token):
                return token
            raise TokenError(
                f"token request to {url} failed: the access token is invalid, "
                "because it contains characters that a bearer token cannot "
                "contain; check the FreePBX API module and its logs"
            )
    raise TokenError(_token_failure(response, body, url, settings.scope))


def _server_error(response: Response) -> str:
    """Return "server error HTTP N", naming a plain-HTTP proxy that may have sent it."""
    problem = f"server error HTTP {response.status}"
    if response.proxy is not None and response.status in (502, 503, 504):
        problem += f" (from the proxy {response.proxy} or the PBX behind it)"
    return problem


def _token_failure(response: Response, body: Any, url: str, scope: str) -> str:
    status = response.status
    code = body.get("error") if isinstance(body, dict) else None
    if code == "invalid_client":
        return (
            f"token request to {url} failed: invalid_client (HTTP {status}); check "
            "FREEPBX_CLIENT_ID and FREEPBX_CLIENT_SECRET against the "
            "machine-to-machine "
            "application in FreePBX's API admin page"
        )
    if code == "invalid_scope":
        return (
            f"token request to {url} failed: invalid_scope (HTTP {status}) for scope "
            f"'{scope}'; allow these scopes on the FreePBX API application or pass "
            "another --scope"
        )
    if isinstance(code, str):
        return f"token request to {url} failed: {code} (HTTP {status})"
    if status >= 500:
        fix = "check the FreePBX API module and its logs"
        if response.proxy is not None:
            fix = "check the proxy's logs, then the FreePBX API module and its logs"
        return f"token request to {url} failed: {_server_error(response)}; {fix}"
    return (
        f"token request to {url} failed: HTTP {status} without an OAuth2 answer; "
        "check that FREEPBX_URL is the base URL of the FreePBX web interface and that "
        "the API module is installed"
    )


def _connection_error(
    operation: str, error: TransportError, url: str
) -> ReconcilerError:
    if isinstance(error, NotSent):
        unreachable = PbxUnreachable if error.retryable else _LastingFailure
        return unreachable(f"{operation}: cannot reach {url}: {error}")
    return OutcomeUnknown(f"{operation}: no answer from {url}: {error}")
