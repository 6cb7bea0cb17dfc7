"""The sandbox PBX: an HTTP server on 127.0.0.1 that responds like FreePBX's API.

It serves the token endpoint, the GraphQL endpoint and the userman REST
routes of a FreePBX 16 (or of the FreePBX 17 snapshot with
`freepbx_version=17`) from a SQLite state file, so extensions, applications,
tokens and reloads survive a restart.

    with SandboxServer(tmp_path / "pbx.sqlite3") as pbx:
        requests.post(pbx.url + "/admin/api/api/token", ...)
"""

from __future__ import annotations

import contextlib
import errno
import logging
import pathlib
import re
import socket
import sqlite3
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from reconciler.sandbox.exchange import HttpRequest, HttpResponse
from reconciler.sandbox.faults import (
    ConnectionDropped,
    FaultInjector,
    Faults,
    drop_connection,
)
from reconciler.sandbox.graphql_endpoint import (
    METHOD_NOT_ALLOWED_PAGE,
    handle_graphql_request,
)
from reconciler.sandbox.oauth import (
    handle_token_request,
    issue_access_token,
    new_client_credentials,
)
from reconciler.sandbox.pbx import Pbx, PbxSettings, load_signing_key
from reconciler.sandbox.rest import handle_rest_request, is_rest_path
from reconciler.sandbox.store import Application, Store
from reconciler.sandbox.tokens import TOKEN_LIFETIME_SECONDS, secret_sha256

logger = logging.getLogger(__name__)

# The sandbox never listens on another address: it has no real security.
LOOPBACK = "127.0.0.1"
TOKEN_PATH = "/admin/api/api/token"
GRAPHQL_PATH = "/admin/api/api/gql"
SUPPORTED_VERSIONS = (16, 17)
QUERY_STRING = re.compile(r"\?\S*")

# Scopes of the application created with a new state file, as on the
# recorded FreePBX 16.
DEFAULT_ALLOWED_SCOPES = "gql:core gql:framework"


class SandboxStartError(Exception):
    """The sandbox cannot open its state file or listen on its port."""


@dataclass(frozen=True)
class RequestRecord:
    """One served HTTP request.

    `operation` is "token", a GraphQL root field, a REST route such as
    "rest userman/users", or None.
    """

    method: str
    path: str
    status: int
    operation: str | None


class SandboxServer:
    """A FreePBX API emulator serving one state file on 127.0.0.1.

    `client_id` and `client_secret` belong to the application created with
    the state file, whose allowed scopes are "gql:core gql:framework". The
    token endpoint checks the secret's SHA-256, and the state file also keeps
    the secret itself so that a restarted sandbox can show it again.
    `requests` lists every request served, in order, with the URL path
    without its query string. `reload_seconds` is how long a doreload stays
    "Processing". `asterisk_version`, `sip_driver` and `extension_limit`
    are described in PbxSettings. `faults` (see faults.Faults) can be
    replaced while the server runs. With `tls_cert` and `tls_key` (PEM
    files) the server speaks HTTPS.
    """

    def __init__(
        self,
        state_file: pathlib.Path,
        *,
        freepbx_version: int = 16,
        port: int = 0,
        reload_seconds: float = 1.0,
        asterisk_version: int = 21,
        sip_driver: str = "chan_pjsip",
        extension_limit: int | None = None,
        faults: Faults | None = None,
        tls_cert: pathlib.Path | None = None,
        tls_key: pathlib.Path | None = None,
    ) -> None:
        if freepbx_version not in SUPPORTED_VERSIONS:
            raise ValueError(
                f"freepbx_version {freepbx_version} is not emulated; use 16 or 17"
            )
        settings = PbxSettings(
            freepbx_version=freepbx_version,
            reload_seconds=reload_seconds,
            asterisk_version=asterisk_version,
            sip_driver=sip_driver,
            extension_limit=extension_limit,
        )
        self.state_file = pathlib.Path(state_file)
        self.port = port
        self.url = ""
        self.requests: list[RequestRecord] = []
        self._requests_lock = threading.Lock()
        self._store = _open_store(self.state_file)
        self._pbx = Pbx(self._store, load_signing_key(self._store), settings)
        self._faults = FaultInjector(self._pbx, faults)
        self._tls_files = (tls_cert, tls_key) if tls_cert is not None else None
        application = self._default_application()
        self.client_id = application.client_id
        self.client_secret = application.client_secret
        self._httpd: _SandboxHttpServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Serve in a daemon thread on 127.0.0.1:port, where port 0 picks a free one."""
        try:
            httpd = _listen(self.port)
            scheme = "http"
            if self._tls_files is not None:
                context = _tls_context(*self._tls_files)
                httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
                scheme = "https"
        except SandboxStartError:
            self._store.close()
            raise
        httpd.sandbox = self
        self._httpd = httpd
        self.url = f"{scheme}://{LOOPBACK}:{httpd.server_address[1]}"
        # A short poll interval keeps stop() quick; shutdown waits for one poll.
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="freepbx-sandbox",
            daemon=True,
        )
        self._thread.start()
        logger.info(
            "sandbox FreePBX %d serving %s at %s",
            self._pbx.version,
            self.state_file,
            self.url,
        )

    def stop(self) -> None:
        """Stop serving and close the state file."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._faults.stop()
            self._httpd.close_open_connections()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._store.close()
        logger.info("sandbox at %s stopped", self.url)

    @property
    def faults(self) -> Faults:
        return self._faults.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._faults.faults = faults

    @property
    def issued_tokens(self) -> list[str]:
        """Every access token the token endpoint issued, for leak checks in tests."""
        return self._faults.issued_tokens

    def add_application(self, allowed_scopes: str) -> tuple[str, str]:
        """Add a client_credentials application; return (client_id, client_secret)."""
        client_id, client_secret = new_client_credentials()
        self._store.add_application(
            client_id, client_secret, secret_sha256(client_secret), allowed_scopes
        )
        return client_id, client_secret

    def issue_token(
        self,
        client_id: str,
        scopes: list[str],
        *,
        expired: bool = False,
        revoked: bool = False,
    ) -> str:
        """Issue an access token without the token endpoint, for tests.

        `expired` makes a validly signed token whose exp is an hour past.
        `revoked` makes a token whose claims are valid but whose database
        row has expired, which FreePBX reports as revoked.
        """
        application = self._store.find_application(client_id)
        if application is None:
            raise ValueError(
                f"client_id {client_id} is not an application of this sandbox"
            )
        now = int(self._pbx.clock())
        issued_at = now - 2 * TOKEN_LIFETIME_SECONDS if expired else now
        row_expiry = now - 1.0 if revoked else None
        return issue_access_token(
            self._pbx,
            application,
            scopes,
            LOOPBACK,
            issued_at=issued_at,
            row_expiry=row_expiry,
        )

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Handle one request with the faults that select it, and record it.

        A request whose connection a fault drops is recorded with status 0.
        """
        try:
            response = self._faults.serve(request, self._route)
        except ConnectionDropped as dropped:
            self._record(
                RequestRecord(request.method, request.path, 0, dropped.operation)
            )
            raise
        self._record(
            RequestRecord(
                request.method, request.path, response.status, response.operation
            )
        )
        return response

    def _record(self, record: RequestRecord) -> None:
        with self._requests_lock:
            self.requests.append(record)

    def _route(self, request: HttpRequest) -> HttpResponse:
        if request.path == GRAPHQL_PATH:
            return handle_graphql_request(request, self._pbx)
        if request.path == TOKEN_PATH and request.method == "POST":
            return handle_token_request(request, self._pbx)
        if request.path == TOKEN_PATH:
            return _html(405, METHOD_NOT_ALLOWED_PAGE, "token")
        if is_rest_path(request.path):
            return handle_rest_request(request, self._pbx)
        # NOTE: FreePBX serves its web GUI on other paths, which is not emulated.
        return _html(404, "<html><body><h1>Not Found</h1></body></html>", None)

    def _default_application(self) -> Application:
        application = self._store.default_application()
        if application is not None:
            return application
        client_id, client_secret = new_client_credentials()
        return self._store.add_application(
            client_id,
            client_secret,
            secret_sha256(client_secret),
            DEFAULT_ALLOWED_SCOPES,
            is_default=True,
        )


def serve_forever(
    state_file: pathlib.Path,
    *,
    freepbx_version: int,
    port: int,
    reload_seconds: float,
    on_ready: Callable[[SandboxServer], None] | None = None,
    faults: Faults | None = None,
    tls_files: tuple[pathlib.Path, pathlib.Path] | None = None,
) -> None:
    """Serve a sandbox until KeyboardInterrupt, then stop it and return.

    `on_ready` is called once the server listens, so the caller can show its
    URL and credentials. `tls_files` is a (certificate, key) pair of PEM files.
    """
    tls_cert, tls_key = tls_files if tls_files is not None else (None, None)
    server = SandboxServer(
        state_file,
        freepbx_version=freepbx_version,
        port=port,
        reload_seconds=reload_seconds,
        faults=faults,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )
    server.start()
    try:
        if on_ready is not None:
            on_ready(server)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        logger.info("sandbox interrupted")
    finally:
        server.stop()


def _open_store(state_file: pathlib.Path) -> Store:
    try:
        return Store(state_file)
    except sqlite3.DatabaseError as error:
        raise SandboxStartError(
            f"cannot use {state_file} as the sandbox state file (SQLite: {error}); "
            "name a new file in an existing directory, or the state file of an "
            "earlier sandbox"
        ) from None


def _listen(port: int) -> _SandboxHttpServer:
    if not 0 <= port <= 65535:
        raise SandboxStartError(
            f"invalid port {port}: give 1 to 65535, or 0 to pick a free port"
        )
    try:
        return _SandboxHttpServer((LOOPBACK, port), _Handler)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            reason = "the port is in use by another program"
        else:
            reason = str(error.strerror)
        raise SandboxStartError(
            f"cannot listen on {LOOPBACK}:{port}: {reason}; choose another port, "
            "or pass --port 0 to pick a free one"
        ) from None


def _tls_context(cert: pathlib.Path, key: pathlib.Path | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as error:
        raise SandboxStartError(
            f"cannot load the TLS certificate {cert} and key {key} ({error}); "
            "give PEM files of a certificate and its private key"
        ) from None
    return context


def _html(status: int, page: str, operation: str | None) -> HttpResponse:
    headers = (
        ("Cache-Control", "no-store, no-cache, must-revalidate"),
        ("Pragma", "no-cache"),
        ("Content-type", "text/html;charset=UTF-8"),
    )
    return HttpResponse(status, headers, page.encode(), operation)


class _SandboxHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    sandbox: SandboxServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Kept-alive connections outlive shutdown(), which only stops
        # accepting; stop() closes them so that no request reaches a
        # sandbox whose state file is closed.
        self.stopping = False
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self._busy = 0
        self._idle = threading.Condition()

    def begin_request(self) -> bool:
        """Count a request in; return False once the sandbox is stopping."""
        with self._idle:
            if self.stopping:
                return False
            self._busy += 1
            return True

    def end_request(self) -> None:
        with self._idle:
            self._busy -= 1
            self._idle.notify_all()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self, wait_seconds: float = 5.0) -> None:
        """Let requests in progress finish, then shut down every connection."""
        with self._idle:
            self.stopping = True
            self._idle.wait_for(lambda: self._busy == 0, timeout=wait_seconds)
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        # A client that timed out has closed its end before the response.
        error = sys.exc_info()[1]
        if isinstance(error, BrokenPipeError | ConnectionResetError):
            logger.info("client %s left before the response", client_address[0])
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _SandboxHttpServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm a
    # keep-alive client would wait for a delayed ACK (about 40 ms) each time.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_OPTIONS(self) -> None:
        self._serve()

    def _serve(self) -> None:
        request = self._read_request()
        if not self.server.begin_request():
            # The request came in as the sandbox stopped.
            self.close_connection = True
            return
        try:
            response = self.server.sandbox.handle(request)
        except ConnectionDropped:
            drop_connection(self.connection)
            self.close_connection = True
            return
        except Exception:
            logger.exception("sandbox failed on %s %s", request.method, request.path)
            response = HttpResponse(
                500, (("Content-Type", "text/plain"),), b"sandbox error"
            )
        finally:
            self.server.end_request()
        self._write_response(response)

    def _read_request(self) -> HttpRequest:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), value)
        url = urlsplit(self.path)
        return HttpRequest(
            self.command, url.path, url.query, headers, body, self.client_address[0]
        )

    def _write_response(self, response: HttpResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The query string is left out: a GET may carry GraphQL variables.
        path = urlsplit(self.path).path
        logger.debug("%s %s -> %s", self.command, path, code)

    def log_message(self, format: str, *args: object) -> None:
        # Only errors of the base class get here; their text may quote the
        # request line, so query strings are cut off.
        message = QUERY_STRING.sub("?...", format % args)
        logger.warning("HTTP error from %s: %s", self.address_string(), message)
