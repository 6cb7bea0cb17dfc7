"""Speak to FreePBX: the OAuth2 token endpoint, the GraphQL endpoint and REST reads.

One token per run, reused; one HTTP session (connection reuse) for every
request. Every FreePBX error shape becomes an ApiError or TokenError whose
message is safe to show: no response body of the token endpoint, no secret.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Callable
from email.message import Message
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urljoin

import requests

from reconciler.errors import (
    ApiError,
    OutcomeUnknown,
    PbxUnreachable,
    ReconcilerError,
    TokenError,
    TokenRejected,
)
from reconciler.redact import register_secret
from reconciler.settings import ConnectionSettings

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Reads are retried after a network failure or an HTTP 5xx, with back-off.
READ_ATTEMPTS = 3
READ_BACKOFF_SECONDS = 0.5

# The b64token syntax of a bearer token (RFC 6750, section 2.1). A token with
# other characters, such as a line break, cannot be sent in a header.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class _BearerAuth(requests.auth.AuthBase):
    """The current access token, added to each REST request."""

    def __init__(self) -> None:
        self.token: str | None = None

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self.token is not None:
            request.headers["Authorization"] = f"Bearer {self.token}"
        return request


class FreePBXClient:
    """A connection to one FreePBX's API, used as a context manager."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        # Nothing prints the client secret; masking it guards against a
        # server or library that echoes a request back into an error.
        register_secret(settings.client_secret)
        self._auth = _BearerAuth()
        self._session: requests.Session | None = None
        self._graphql_request: requests.PreparedRequest | None = None
        self.request_counts: dict[str, int] = {}

    def __enter__(self) -> FreePBXClient:
        session = requests.Session()
        # requests reads proxy settings from the environment on every request,
        # which costs more than the rest of the client's work per request.
        # Read them once here; the CA bundle and auth are always explicit.
        session.proxies.update(requests.utils.get_environ_proxies(self.settings.url))
        session.trust_env = False
        self._session = session
        # The URL and headers of every GraphQL request are prepared once.
        # session.post would parse the URL and merge the session's settings
        # again each time, about a fifth of the client's CPU per request
        # (measured against the sandbox).
        self._graphql_request = session.prepare_request(
            requests.Request(
                "POST",
                self.settings.graphql_url,
                headers={"Content-Type": "application/json"},
            )
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._session is not None:
            self._session.close()
        self._session = None
        self._graphql_request = None

    def _http_session(self) -> requests.Session:
        assert self._session is not None, "use FreePBXClient as a context manager"
        return self._session

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
            except requests.RequestException as error:
                failure = f"token request to {settings.token_url} failed: " + (
                    _network_reason(error)
                )
                # A certificate that fails verification, or a redirect loop,
                # fails again on a retry.
                if attempt == READ_ATTEMPTS or isinstance(
                    error,
                    requests.exceptions.SSLError | requests.exceptions.TooManyRedirects,
                ):
                    raise _TokenRequestFailed(failure) from None
            except ValueError:
                # requests parses the Location of each redirect and raises
                # ValueError for an invalid one, such as http://[::1/x.
                raise _TokenRequestFailed(
                    f"token request to {settings.token_url} failed: {_BAD_REDIRECT}"
                ) from None
            else:
                if response.status_code < 500 or attempt == READ_ATTEMPTS:
                    break
                failure = f"token request failed with HTTP {response.status_code}"
            delay = READ_BACKOFF_SECONDS * 2 ** (attempt - 1)
            log.warning("%s; retrying in %.1f s", failure, delay)
            time.sleep(delay)
        self._auth.token = _token_from(response, settings)
        register_secret(self._auth.token)

    def _post_token_request(self) -> requests.Response:
        settings = self.settings
        self._count("token")
        log.debug("requesting a token from %s", settings.token_url)
        return self._http_session().post(
            settings.token_url,
            data={"grant_type": "client_credentials", "scope": settings.scope},
            auth=(settings.client_id, settings.client_secret),
            verify=settings.verify,
            timeout=(settings.connect_timeout, settings.read_timeout),
        )

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
        if self._auth.token is None:
            self.fetch_token()
        assert self._auth.token is not None
        return _jwt_scopes(self._auth.token)

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
                if attempt == READ_ATTEMPTS or isinstance(error, _TokenRequestFailed):
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
        if self._auth.token is None:
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
        # TODO: requests and urllib3 cost about 0.75-0.95 ms per request beyond
        # the PBX's time, which keeps an apply of 1,000 extensions 5.5 % over
        # its round trips against a 5 % target (docs/benchmarks.md). A
        # lighter HTTP client here would close the gap.
        settings = self.settings
        session = self._http_session()
        assert self._graphql_request is not None
        request = self._graphql_request.copy()
        request.headers["Authorization"] = f"Bearer {self._auth.token}"
        body = json.dumps({"query": document, "variables": variables}).encode()
        request.prepare_body(body, None)
        # Send the cookies the server has set, as session.post would.
        request.prepare_cookies(session.cookies)
        self._count(operation)
        status: int | None = None
        started = time.monotonic()
        try:
            response = session.send(
                request,
                verify=settings.verify,
                timeout=(settings.connect_timeout, settings.read_timeout),
                allow_redirects=False,
            )
            status = response.status_code
        except requests.RequestException as error:
            raise _connection_error(operation, error, settings.graphql_url) from None
        except ValueError:
            # The token and the body are checked, so this is requests parsing
            # the Location of a redirect it would not follow anyway.
            raise ApiError(operation, _BAD_REDIRECT, None) from None
        finally:
            elapsed = (time.monotonic() - started) * 1000
            log.debug("%s: HTTP %s in %.0f ms", operation, status, elapsed)
        return _graphql_data(operation, response)

    # --- REST --------------------------------------------------------------

    def rest_get(self, operation: str, url: str) -> requests.Response:
        """GET a REST route with the access token and return the response.

        Network failures and HTTP 5xx are retried as for GraphQL reads, and
        an OAuth rejection gets one new token. Other statuses are the
        caller's to read. No body is logged or put in an error, because
        userman's responses contain password hashes.
        """
        return self._read(operation, lambda: self._rest_get_once(operation, url))

    def _rest_get_once(self, operation: str, url: str) -> requests.Response:
        if self._auth.token is None:
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
                    operation,
                    f"access token rejected: {rejection}",
                    response.status_code,
                )
        if response.status_code >= 500:
            status = response.status_code
            raise _ServerFailure(operation, f"server error HTTP {status}", status)
        return response

    def _send_get(self, operation: str, url: str) -> requests.Response:
        session = self._http_session()
        self._count(operation)
        started = time.monotonic()
        try:
            response = session.get(
                url,
                auth=self._auth,
                verify=self.settings.verify,
                timeout=(self.settings.connect_timeout, self.settings.read_timeout),
            )
        except requests.RequestException as error:
            raise _connection_error(operation, error, url) from None
        elapsed = (time.monotonic() - started) * 1000
        log.debug("%s: HTTP %s in %.0f ms", operation, response.status_code, elapsed)
        return response

    def _count(self, kind: str) -> None:
        self.request_counts[kind] = self.request_counts.get(kind, 0) + 1


_BAD_REDIRECT = (
    "the answer redirects to an invalid address; set FREEPBX_URL to the base URL "
    "that the PBX serves without redirecting"
)


class _TokenRequestFailed(PbxUnreachable):
    """A token request that got no response, after fetch_token's retries."""


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


def _json_body(response: requests.Response) -> Any:
    """Return the decoded JSON body, or None when the body is not JSON.

    The bytes are read as UTF-8 unless the Content-Type declares another
    charset. requests' `text` would scan the whole body to guess a charset
    when none is declared.
    """
    content_type = response.headers.get("Content-Type", "")
    charset = None
    if "charset" in content_type.lower():
        message = Message()
        message["Content-Type"] = content_type
        charset = message.get_content_charset()
    content = response.content
    try:
        if charset not in (None, "utf-8", "utf8"):
            try:
                return json.loads(content.decode(charset))
            except LookupError:
                pass  # a charset Python does not know: read the bytes as UTF-8
        return json.loads(content)
    except (ValueError, RecursionError):
        return None


def _graphql_data(operation: str, response: requests.Response) -> Any:
    """Return the `data` of a GraphQL response, or raise the error it reports.

    A body with `errors` is an ApiError at any HTTP status, because FreePBX 16
    responds to errors with HTTP 400 and FreePBX 17 with HTTP 200.
    """
    body = _json_body(response)
    if isinstance(body, dict):
        errors = body.get("errors")
        if errors:
            raise ApiError(operation, _first_message(errors), response.status_code)
        data = body.get("data")
        if data is not None:
            return data
    raise _not_graphql_error(operation, response, body)


def _not_graphql_error(
    operation: str, response: requests.Response, body: Any
) -> Exception:
    """Return the error for a response that carries neither `data` nor `errors`."""
    status = response.status_code
    oauth = _oauth_error_message(body)
    # FreePBX 15/16 respond 401; FreePBX 17 may respond 500 with the OAuth message.
    if status == 401 or (status == 500 and oauth is not None):
        return _AuthRejected(oauth or "HTTP 401", status)
    if status >= 500:
        return _ServerFailure(operation, f"server error HTTP {status}", status)
    if status >= 400:
        return ApiError(operation, f"unexpected HTTP {status}", status)
    if response.is_redirect:
        # NOTE: an ApiError means that FreePBX did not run the request, which
        # holds when the web server redirects before FreePBX's PHP code runs.
        location = urljoin(response.url, response.headers["Location"])
        return ApiError(
            operation,
            f"the request was redirected to {location} and not resent; set "
            "FREEPBX_URL to the base URL of that address",
            status,
        )
    return _ServerFailure(operation, "the answer is not a GraphQL response", status)


def _rest_auth_rejection(response: requests.Response) -> str | None:
    """Return why FreePBX rejected the token of a REST request, or None.

    A 401 without an OAuth body is a scope check, which a new token cannot fix.
    """
    if response.status_code not in (401, 500):
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
        message = str(error.get("message", ""))
        words = f"{error.get('type', '')} {message}".lower()
        if "oauth" in words or "access token" in words:
            return message or "access denied"
        return None
    if error == "access_denied":
        hint = body.get("hint")
        return (
            f"{body.get('message', 'access denied')} ({hint})"
            if hint
            else "access denied"
        )
    return None


def _token_from(response: requests.Response, settings: ConnectionSettings) -> str:
    url = settings.token_url
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code == 200 and isinstance(body, dict):
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
    raise TokenError(_token_failure(response.status_code, body, url, settings.scope))


def _token_failure(status: int, body: Any, url: str, scope: str) -> str:
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
        return (
            f"token request to {url} failed: server error HTTP {status}; check the "
            "FreePBX API module and its logs"
        )
    return (
        f"token request to {url} failed: HTTP {status} without an OAuth2 answer; "
        "check that FREEPBX_URL is the base URL of the FreePBX web interface and that "
        "the API module is installed"
    )


def _connection_error(
    operation: str, error: requests.RequestException, url: str
) -> ReconcilerError:
    reason = _network_reason(error)
    if _was_not_sent(error):
        return PbxUnreachable(f"{operation}: cannot reach {url}: {reason}")
    return OutcomeUnknown(f"{operation}: no answer from {url}: {reason}")


def _was_not_sent(error: BaseException | None) -> bool:
    """Tell whether a requests failure happened before the request left."""
    if isinstance(
        error, requests.exceptions.ConnectTimeout | requests.exceptions.SSLError
    ):
        return True
    if isinstance(error, requests.exceptions.ConnectionError):
        text = str(error)
        return (
            "NewConnectionError" in text
            or "NameResolutionError" in text
            or ("Failed to resolve" in text)
        )
    return False


def _network_reason(error: Exception) -> str:
    # The cause of a failure, for --debug. requests' text names the host and
    # port but never a header or body, so it carries no secret.
    log.debug("network failure: %s: %s", type(error).__name__, error)
    if isinstance(error, requests.exceptions.SSLError):
        return _tls_reason(str(error))
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return "connection timed out"
    if isinstance(error, requests.exceptions.ReadTimeout):
        return "timed out waiting for the answer"
    if isinstance(error, requests.exceptions.TooManyRedirects):
        return (
            "too many redirects; set FREEPBX_URL to the base URL that the PBX "
            "serves without redirecting"
        )
    text = str(error)
    if "NameResolutionError" in text or "Failed to resolve" in text:
        return "host name not found (DNS)"
    if "Connection refused" in text:
        return "connection refused"
    if "reset" in text.lower():
        return "connection reset"
    if "without response" in text:
        return "connection closed without a response"
    return "connection failed"


# OpenSSL's reasons when the other end responds to a TLS handshake with something
# else, such as a plain HTTP server.
_NOT_TLS_REASONS = (
    "WRONG_VERSION_NUMBER",
    "UNKNOWN_PROTOCOL",
    "RECORD_LAYER_FAILURE",
    "PACKET_LENGTH_TOO_LONG",
    "HTTP_REQUEST",
)
# OpenSSL's reasons when the CA bundle file contains no usable certificate.
_CA_BUNDLE_REASONS = ("NO_CERTIFICATE_OR_CRL_FOUND", "PEM routines", "[PEM:", "[X509:")


def _tls_reason(text: str) -> str:
    """Return why a TLS handshake failed, in words that point to the fix."""
    if "CERTIFICATE_VERIFY_FAILED" in text:
        if "mismatch" in text:
            return (
                "TLS certificate does not match the host name of the URL; use the "
                "name or address the certificate was issued for"
            )
        return "TLS certificate verification failed (pass --ca-bundle for a private CA)"
    if any(reason in text for reason in _NOT_TLS_REASONS):
        return (
            "the server does not speak TLS on this port; check the port, or use "
            "http:// with --allow-http if the PBX serves plain HTTP there"
        )
    if "UNEXPECTED_EOF" in text or "EOF occurred" in text:
        # A plain HTTP server that reads the handshake as a bad request and
        # closes, or a TLS server that drops it.
        return (
            "the server closed the connection during the TLS handshake; check that "
            "it serves HTTPS on this port, or use http:// with --allow-http if it "
            "serves plain HTTP"
        )
    if any(reason in text for reason in _CA_BUNDLE_REASONS):
        return (
            "the CA bundle (--ca-bundle, FREEPBX_CA_BUNDLE) holds no usable "
            "certificate; give a PEM file of CA certificates"
        )
    return "TLS handshake failed (run with --debug for the cause)"
