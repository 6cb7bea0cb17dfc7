"""HTTP/1.1 to one origin over a kept-alive connection, on the standard library.

The client makes one request at a time to one PBX, so a single connection
is all it needs. Each failure is raised as NotSent (the request never left,
so it is safe to send again) or NoAnswer (the request may have reached the
PBX), with a reason worded for the user. Redirects are returned, never
followed. A proxy comes from the standard environment variables
(`https_proxy`, `http_proxy`, `all_proxy`, `no_proxy`).

With requests and urllib3, an apply spent 1.1-1.5 ms of CPU per request.
With this module it spends about 0.8 ms, as bench/run.py measured against
the sandbox (docs/benchmarks.md).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import math
import select
import socket
import ssl
import threading
import time
import zlib
from dataclasses import dataclass, field
from email.message import Message
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, unquote, urlsplit

from reconciler.settings import is_host_name

if TYPE_CHECKING:
    from http.cookiejar import CookieJar

log = logging.getLogger(__name__)

# The largest response body read, after gzip decoding. By an estimate of
# about 200 bytes per extension, the list of 10,000 extensions that plan
# reads is 2 MB, so this leaves room for a hundred times more and stops a
# server that never ends its response.
MAX_BODY_BYTES = 256 * 1024 * 1024

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class TransportError(Exception):
    """A request that got no usable response.

    `reason` is safe to show. `retryable` is False for a failure that a new
    attempt meets again, such as a certificate that fails verification.
    """

    def __init__(self, reason: str, *, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class NotSent(TransportError):
    """The request never reached the server: DNS, connect, TLS or proxy failure."""


class NoAnswer(TransportError):
    """The request may have reached the server, but no whole response came back."""


@dataclass(frozen=True)
class Response:
    """One HTTP response with its whole body, gzip already decoded.

    `proxy` is the address of the plain-HTTP proxy it came through, if any:
    such a proxy may respond to a request itself, for example with a 502.
    """

    url: str
    status: int
    headers: Message
    body: bytes
    proxy: str | None = None

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return None if value is None else str(value)

    @property
    def is_redirect(self) -> bool:
        return self.status in _REDIRECT_STATUSES and "Location" in self.headers

    @property
    def text(self) -> str:
        """The body decoded as UTF-8, with undecodable bytes replaced."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """Return the decoded JSON body; raise ValueError when it is not JSON."""
        return json.loads(self.body)


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy: its address and the Proxy-Authorization value, if any.

    `variable` names the environment variable it came from, for messages.
    """

    host: str
    port: int
    authorization: str | None
    password: str | None = field(default=None, repr=False, compare=False)
    variable: str = field(default="https_proxy", compare=False)

    @property
    def address(self) -> str:
        return _authority(self.host, self.port)


class Connection:
    """Requests to the scheme, host and port of `base_url`, one at a time."""

    def __init__(
        self,
        base_url: str,
        *,
        ca_bundle: str | None,
        connect_timeout: float,
        read_timeout: float,
        proxy: Proxy | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        self._scheme = parts.scheme
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ca_bundle = ca_bundle
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._proxy = proxy
        self._tls: ssl.SSLContext | None = None
        self._connection: http.client.HTTPConnection | None = None
        self._watchdog = _Watchdog()
        # Created on the first Set-Cookie: FreePBX's API sets none, but a load
        # balancer in front of it may expect its cookie back.
        self._cookies: CookieJar | None = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = None

    def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> Response:
        """Send one request and return its response; raise NotSent or NoAnswer."""
        parts = urlsplit(url)
        if (parts.scheme, parts.hostname or "") != (self._scheme, self._host):
            raise ValueError(f"{url} is not on this connection's origin")
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        headers = dict(headers)
        headers.setdefault("Accept-Encoding", "gzip")
        if self._cookies is not None:
            _add_cookies(self._cookies, url, headers)
        connection = self._open()
        if self._proxy is not None and self._scheme == "http":
            # A plain-HTTP proxy takes the absolute URL in the request line.
            target = url
            if self._proxy.authorization is not None:
                headers["Proxy-Authorization"] = self._proxy.authorization
        assert connection.sock is not None
        # The read timeout also bounds the whole exchange, not only each wait.
        self._watchdog.arm(connection.sock, self._read_timeout)
        try:
            connection.request(method, target, body, headers)
        except (http.client.InvalidURL, UnicodeError, ValueError) as error:
            # http.client checks the request line and headers before it sends.
            self._watchdog.disarm()
            self.close()
            log.debug("invalid request: %s: %s", type(error).__name__, error)
            raise NotSent(_INVALID_REQUEST, retryable=False) from error
        except BaseException as error:
            failure = self._failed(error)
            if failure is None:
                raise
            raise failure from error
        try:
            raw = connection.getresponse()
            content = _read_body(raw)
        except BaseException as error:
            failure = self._failed(error)
            if failure is None:
                raise
            raise failure from error
        self._watchdog.disarm()
        if raw.will_close:
            self.close()
        if raw.status == 407 and self._proxy is not None and self._scheme == "http":
            # The proxy responded instead of forwarding, so the PBX saw nothing.
            raise NotSent(_proxy_auth_failure(self._proxy, 407), retryable=False)
        via = self._proxy.address if self._proxy and self._scheme == "http" else None
        response = Response(url, raw.status, raw.headers, content, via)
        if "Set-Cookie" in raw.headers:
            if self._cookies is None:
                from http.cookiejar import CookieJar

                self._cookies = CookieJar()
            _store_cookies(self._cookies, url, raw.headers)
        return response

    def _failed(self, error: BaseException) -> NoAnswer | None:
        """Close the connection; return the NoAnswer to raise for `error`.

        Returns None for a KeyboardInterrupt or another BaseException, which
        the caller raises as it is.
        """
        timed_out = self._watchdog.disarm()
        self.close()
        if not isinstance(error, Exception):
            return None
        reason = _answer_failure(error)
        if timed_out:
            reason = "timed out waiting for the answer"
        if self._proxy is not None:
            reason += f" (through the proxy {self._proxy.address})"
        return NoAnswer(reason)

    def _open(self) -> http.client.HTTPConnection:
        """Return the kept-alive connection, or connect a new one."""
        connection = self._connection
        if connection is not None and connection.sock is not None:
            if not _was_dropped(connection.sock):
                return connection
            log.debug("the server closed the idle connection; connecting again")
        self.close()
        connection = http.client.HTTPConnection(self._host, self._port)
        connection.response_class = _FinalResponse
        # The Host header leaves out the scheme's own port, 443 for HTTPS.
        connection.default_port = 443 if self._scheme == "https" else 80
        # Given a socket, http.client sends on it instead of connecting.
        connection.sock = self._connect()
        self._connection = connection
        return connection

    def _connect(self) -> socket.socket:
        """Connect, through the proxy's tunnel and TLS as set; raise NotSent.

        Each step is taken here, not by http.client, so that a failure names
        the step: the proxy, the PBX's address or the TLS handshake.
        """
        proxy = self._proxy
        if proxy is None:
            sock = _open_socket(self._host, self._port, self._connect_timeout, None)
        else:
            sock = _open_socket(proxy.host, proxy.port, self._connect_timeout, proxy)
        # The connect timeout also bounds the tunnel and the handshake.
        self._watchdog.arm(sock, self._connect_timeout)
        tunnel = proxy is not None and self._scheme == "https"
        try:
            if proxy is not None and tunnel:
                _open_tunnel(sock, proxy, (self._host, self._port))
            tunnel = False
            if self._scheme == "https":
                sock = self._handshake(sock)
            sock.settimeout(self._read_timeout)
        except NotSent as error:
            sock.close()
            if self._watchdog.disarm():
                raise NotSent(self._connect_timed_out(tunnel)) from error
            raise
        except BaseException:
            self._watchdog.disarm()
            sock.close()
            raise
        if self._watchdog.disarm():
            sock.close()
            raise NotSent(self._connect_timed_out(tunnel))
        return sock

    def _connect_timed_out(self, in_tunnel: bool) -> str:
        """Word the connect timeout of the tunnel's step or the handshake's."""
        if self._proxy is None:
            return "TLS handshake timed out"
        if in_tunnel:
            return f"the proxy {self._proxy.address} did not answer CONNECT in time"
        return f"TLS handshake timed out (through the proxy {self._proxy.address})"

    def _handshake(self, sock: socket.socket) -> socket.socket:
        """Return `sock` wrapped in TLS, checked against the PBX's host name."""
        context = self._context()
        try:
            return context.wrap_socket(sock, server_hostname=self._host)
        except Exception as error:
            log.debug("TLS handshake: %s: %s", type(error).__name__, error)
            reason, retryable = _handshake_failure(error)
            if self._proxy is not None:
                reason += f" (through the proxy {self._proxy.address})"
            raise NotSent(reason, retryable=retryable) from error

    def _context(self) -> ssl.SSLContext:
        if self._tls is None:
            try:
                self._tls = ssl.create_default_context(cafile=self._ca_bundle)
            except (ssl.SSLError, OSError) as error:
                log.debug("cannot connect: %s: %s", type(error).__name__, error)
                raise NotSent(tls_reason(str(error)), retryable=False) from error
        return self._tls


def proxy_for(url: str, environ: dict[str, str]) -> Proxy | None:
    """Return the proxy that the environment sets for `url`, or None.

    Reads `<scheme>_proxy`, then `all_proxy`, in lower or upper case, and
    skips the proxy for hosts in `no_proxy`. Raises ValueError for a proxy
    this client cannot use, in a message that names the variable, never
    its value, which may contain a password.
    """
    scheme = urlsplit(url).scheme
    for name in (f"{scheme}_proxy", "all_proxy"):
        variable, value = _environment_value(environ, name)
        if value:
            break
    else:
        return None
    _, no_proxy = _environment_value(environ, "no_proxy")
    if _bypasses_proxy(urlsplit(url), no_proxy or ""):
        return None
    if "://" not in value:
        value = "http://" + value
    try:
        parts = urlsplit(value)
        port = 80 if parts.port is None else parts.port
        if parts.query or parts.fragment or parts.path not in ("", "/") or not port:
            # A path, query or fragment here means that an unencoded @ : / ? #
            # of the password split the URL.
            raise ValueError("the proxy URL has a path, query, fragment or port 0")
    except ValueError:
        raise ValueError(
            f"{variable} is not a valid proxy URL: give http://HOST:PORT with a "
            "port from 1 to 65535, and percent-encode @ : / ? # in a user name "
            "or password (%40 %3A %2F %3F %23)"
        ) from None
    if parts.hostname and not is_host_name(parts.hostname):
        raise ValueError(
            f"{variable} is not a valid proxy URL: its host is neither an IP "
            "address nor a valid DNS name"
        )
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(
            f"{variable} must be an http:// proxy URL such as "
            "http://proxy.example:3128; other proxy schemes are not supported"
        )
    authorization = password = None
    if parts.username is not None:
        password = unquote(parts.password or "")
        pair = f"{unquote(parts.username)}:{password}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return Proxy(parts.hostname, port, authorization, password or None, variable)


def _environment_value(environ: dict[str, str], name: str) -> tuple[str, str | None]:
    for variable in (name, name.upper()):
        value = environ.get(variable, "").strip()
        if value:
            return variable, value
    return name, None


def _bypasses_proxy(parts: SplitResult, no_proxy: str) -> bool:
    """Tell whether `no_proxy` lists the URL's host, its domain, its network or `*`.

    Entries are host names (a leading dot allowed), IP addresses, networks
    in CIDR notation such as 10.0.0.0/8, each with an optional `:port`.
    An IP address matches only an equal address or a network containing it.
    """
    host = (parts.hostname or "").lower().rstrip(".")
    port = str(parts.port or (443 if parts.scheme == "https" else 80))
    address = _ip_address(host)
    for entry in no_proxy.replace(" ", "").lower().split(","):
        if entry == "*":
            return True
        name, entry_port = _split_port(entry)
        if not name or (entry_port and entry_port != port):
            continue
        if "/" in name:
            if address is not None and _in_network(address, name):
                return True
        elif address is not None:
            if _ip_address(name) == address:
                return True
        else:
            domain = name.strip(".")
            if host == domain or host.endswith("." + domain):
                return True
    return False


def _split_port(entry: str) -> tuple[str, str]:
    """Split a no_proxy entry into its name, address or network, and its port."""
    if entry.startswith("["):
        name, _, rest = entry[1:].partition("]")
        if rest.startswith("/"):  # [::1]/128
            prefix, _, port = rest.partition(":")
            return name + prefix, port
        return name, rest.removeprefix(":")
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        return name, port
    return entry, ""  # a name, or an IPv6 address without brackets


def _ip_address(text: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(text)
    except ValueError:
        return None


def _in_network(address: IPv4Address | IPv6Address, network: str) -> bool:
    try:
        return address in ip_network(network, strict=False)
    except ValueError:
        log.warning("no_proxy: %s is not a valid network, so it is ignored", network)
        return False


def _was_dropped(sock: socket.socket) -> bool:
    """Tell whether an idle connection was closed, or has unread data, on the far end.

    Sending on a connection the server has already closed fails after the
    request may have left, which would make a mutation's outcome unknown.
    """
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class _FinalResponse(http.client.HTTPResponse):
    """A response that skips every interim 1xx response, not only 100 Continue.

    http.client takes a 102 or 103 for the final response, which would leave
    the real one in the socket to be read as the response to the next request.
    """

    def _read_status(self) -> tuple[str, int, str]:
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not 100 <= status < 200 or status == 101:
                return version, status, reason
            http.client.parse_headers(self.fp)  # the interim response's headers


def _read_body(raw: http.client.HTTPResponse) -> bytes:
    if raw.status < 200:
        # 101 Switching Protocols, to a client that asked for no upgrade.
        raise http.client.HTTPException(f"unexpected HTTP {raw.status}")
    encoding = (raw.headers.get("Content-Encoding") or "").strip().lower()
    decoder = zlib.decompressobj(wbits=31) if encoding in _GZIP else None
    chunks: list[bytes] = []
    received = size = 0
    while True:
        chunk = raw.read(1024 * 1024)
        if not chunk:
            break
        received += len(chunk)
        if decoder is not None:
            chunk = decoder.decompress(chunk, MAX_BODY_BYTES + 1 - size)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _BodyTooLarge
        chunks.append(chunk)
    if raw.length:
        # HTTPResponse.read(amount) returns b"" when the connection closes
        # before Content-Length bytes arrived, without raising IncompleteRead.
        raise http.client.IncompleteRead(b"", raw.length)
    if decoder is not None and received and not decoder.eof:
        raise zlib.error("gzip stream ends early")
    return b"".join(chunks)


# RFC 2616 (section 3.5) has applications treat x-gzip as equivalent to gzip.
_GZIP = ("gzip", "x-gzip")

_INVALID_HOST = "the host name is not a valid DNS name"

_INVALID_REQUEST = (
    "the request contains a character that HTTP does not allow in a URL or "
    "header; check FREEPBX_URL"
)


class _BodyTooLarge(Exception):
    pass


class _Watchdog:
    """A thread that shuts down a socket whose step outlives its deadline.

    A socket timeout limits each wait for data, so a server that sends a
    byte just before each timeout could hold a step forever. Arming costs a
    lock and a few assignments per request: the thread sleeps until the
    deadline it has seen and is woken only when a new one comes earlier.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._sock: socket.socket | None = None
        self._deadline = 0.0
        self._fired = False
        self._sleeping_until = math.inf
        self._thread: threading.Thread | None = None

    def arm(self, sock: socket.socket, seconds: float) -> None:
        with self._lock:
            self._sock = sock
            self._deadline = time.monotonic() + seconds
            self._fired = False
            earlier = self._deadline < self._sleeping_until
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="reconciler-http-deadline", daemon=True
            )
            self._thread.start()
        elif earlier:
            self._wake.set()

    def disarm(self) -> bool:
        """Stop watching; return whether the deadline passed and shut the socket."""
        with self._lock:
            self._sock = None
            return self._fired

    def _run(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                if self._sock is not None and now >= self._deadline:
                    # Under the lock, so that the socket is still the one of
                    # the step that ran late. The plain socket's shutdown is
                    # used, also under TLS, to end a blocked read with EOF.
                    self._fired = True
                    with contextlib.suppress(OSError):
                        socket.socket.shutdown(self._sock, socket.SHUT_RDWR)
                    self._sock = None
                if self._sock is None:
                    self._sleeping_until = math.inf
                else:
                    self._sleeping_until = self._deadline
                wait = self._sleeping_until - now
            self._wake.wait(None if wait == math.inf else wait)
            self._wake.clear()


def _answer_failure(error: Exception) -> str:
    """Word a failure after the request may have left."""
    log.debug("no response: %s: %s", type(error).__name__, error)
    if isinstance(error, TimeoutError):
        return "timed out waiting for the answer"
    if isinstance(error, http.client.RemoteDisconnected):
        return "connection closed without a response"
    if isinstance(error, http.client.IncompleteRead):
        return "the connection closed before the whole answer arrived"
    if isinstance(error, ConnectionResetError | BrokenPipeError):
        return "connection reset"
    if isinstance(error, _BodyTooLarge):
        return f"the answer is larger than {MAX_BODY_BYTES:,} bytes, the maximum read"
    if isinstance(error, zlib.error):
        return "the answer's gzip encoding is corrupt"
    if isinstance(error, http.client.HTTPException):
        return "the answer is not valid HTTP"
    if isinstance(error, ssl.SSLError):
        return "the TLS connection failed"
    return "connection failed"


def _handshake_failure(error: Exception) -> tuple[str, bool]:
    """Return why a TLS handshake failed, and whether a new attempt may work."""
    if isinstance(error, TimeoutError):
        return "TLS handshake timed out", True
    if isinstance(error, ConnectionResetError):
        return "connection reset during the TLS handshake", True
    if isinstance(error, UnicodeError):  # a host name that IDNA rejects
        return _INVALID_HOST, False
    reason = tls_reason(str(error))
    # A failed certificate check, or a server that does not speak TLS, fails
    # the same way again, but a closed connection may not.
    certificate = isinstance(error, ssl.SSLCertVerificationError | ssl.CertificateError)
    not_tls = any(code in str(error) for code in _NOT_TLS_REASONS)
    return reason, not (certificate or not_tls)


def _open_socket(
    host: str, port: int, timeout: float, proxy: Proxy | None
) -> socket.socket:
    """Return a TCP connection to `host`, the PBX or its proxy; raise NotSent."""
    try:
        sock = socket.create_connection((host, port), timeout)
    except UnicodeError as error:  # a label that IDNA rejects, before any lookup
        raise NotSent(_INVALID_HOST, retryable=False) from error
    except OSError as error:
        log.debug("cannot connect: %s: %s", type(error).__name__, error)
        reason = _socket_failure(error)
        if proxy is not None:
            where = f"the proxy {proxy.address} ({proxy.variable})"
            reason = f"cannot connect to {where}: {reason}"
        raise NotSent(reason) from error
    # Without TCP_NODELAY, a platform only loses latency.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _socket_failure(error: OSError) -> str:
    if isinstance(error, socket.gaierror):
        return "host name not found (DNS)"
    if isinstance(error, TimeoutError):
        return "connection timed out"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    return "connection failed"


def _authority(host: str, port: int) -> str:
    """Return `host:port` for a request line.

    An IPv6 address goes in brackets and a non-ASCII name is IDNA-encoded.
    Raises UnicodeError for a name that IDNA rejects.
    """
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host.encode('idna').decode('ascii')}:{port}"


def _open_tunnel(sock: socket.socket, proxy: Proxy, target: tuple[str, int]) -> None:
    """Ask the proxy on `sock` for a tunnel to `target`; raise NotSent."""
    try:
        authority = _authority(*target)
    except UnicodeError as error:
        raise NotSent(_INVALID_HOST, retryable=False) from error
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if proxy.authorization is not None:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    # Interim 1xx replies are skipped, as for any request.
    reply = _FinalResponse(sock, method="CONNECT")
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
        reply.begin()
    except TimeoutError as error:
        reason = f"the proxy {proxy.address} did not answer CONNECT in time"
        raise NotSent(reason) from error
    except http.client.HTTPException as error:
        log.debug("CONNECT: %s: %s", type(error).__name__, error)
        reason = f"the proxy {proxy.address} sent an invalid reply to CONNECT"
        raise NotSent(reason) from error
    except OSError as error:
        log.debug("CONNECT: %s: %s", type(error).__name__, error)
        reason = f"the proxy {proxy.address} closed the connection during CONNECT"
        raise NotSent(reason) from error
    finally:
        # The reply's file object would keep the socket open after close().
        reply.close()
    if reply.status == 407:
        raise NotSent(_proxy_auth_failure(proxy, 407), retryable=False)
    if not 200 <= reply.status < 300:  # a proxy confirms a tunnel with any 2xx
        status = _printable(f"{reply.status} {reply.reason}")
        raise NotSent(f"the proxy {proxy.address} rejected the tunnel ({status})")


def _proxy_auth_failure(proxy: Proxy, status: int) -> str:
    if proxy.authorization is None:
        fix = f"put user:password@ before its address in {proxy.variable}"
    else:
        fix = f"check the user and password in {proxy.variable}"
    return f"the proxy {proxy.address} requires authentication (HTTP {status}); {fix}"


def _printable(text: str, limit: int = 100) -> str:
    """Return server text with control characters replaced, cut to `limit`."""
    cleaned = "".join(c if c.isprintable() else "?" for c in text)
    return cleaned if len(cleaned) <= limit else cleaned[:limit] + "..."


def _add_cookies(jar: CookieJar, url: str, headers: dict[str, str]) -> None:
    from urllib.request import Request

    request = Request(url)
    jar.add_cookie_header(request)
    cookie = request.get_header("Cookie")
    if cookie:
        headers["Cookie"] = cookie


def _store_cookies(jar: CookieJar, url: str, headers: Message) -> None:
    from urllib.request import Request

    class _Answer:
        def info(self) -> Message:
            return headers

    jar.extract_cookies(_Answer(), Request(url))  # type: ignore[arg-type]


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


def tls_reason(text: str) -> str:
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
