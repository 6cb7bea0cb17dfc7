"""The HTTP transport: proxies from the environment, kept-alive connections."""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import select
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import pytest
from conftest import CliResult, TlsFiles, run_cli, write_yaml

from reconciler.client import FreePBXClient
from reconciler.errors import ApiError, OutcomeUnknown, PbxUnreachable
from reconciler.sandbox.server import SandboxServer
from reconciler.settings import ConnectionSettings
from reconciler.transport import Proxy, proxy_for

THREE = """version: 1
extensions:
  - {extension: "4001", name: Ann Arbor, email: ann@example.com}
  - {extension: "4002", name: Bob Baker, email: bob@example.com}
  - {extension: "4003", name: Cid Cole, email: cid@example.com}
"""
PROXY_PASSWORD = "pr0xy-Pass-word"


class LocalServer(socketserver.ThreadingTCPServer):
    """A TCP server on a free port of 127.0.0.1, serving in a thread inside `with`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, handler: type[socketserver.BaseRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class ForwardProxy(LocalServer):
    """An HTTP proxy: CONNECT tunnels and absolute-form requests.

    It records each request line and Proxy-Authorization header it receives.
    When `password` is set, a request without `user:password` gets a 407.
    When `connect_reply` is set, a CONNECT gets it instead of a tunnel, and
    `interim` is sent before the 200 of a tunnel. When `forward_reply` is
    set, an absolute-form request gets it instead of being forwarded.
    """

    def __init__(
        self,
        password: str | None = None,
        connect_reply: bytes | None = None,
        interim: bytes = b"",
        forward_reply: bytes | None = None,
    ) -> None:
        super().__init__(_ProxyHandler)
        self.password = password
        self.connect_reply = connect_reply
        self.interim = interim
        self.forward_reply = forward_reply
        self.request_lines: list[str] = []
        self.authorizations: list[str | None] = []


class _ProxyHandler(socketserver.StreamRequestHandler):
    server: ForwardProxy

    def handle(self) -> None:
        while head := self.rfile.readline().decode("latin-1").rstrip("\r\n"):
            headers: dict[str, str] = {}
            while line := self.rfile.readline().decode("latin-1").rstrip("\r\n"):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if not self._serve(head, headers):
                return

    def _serve(self, head: str, headers: dict[str, str]) -> bool:
        """Serve one request; return whether the connection stays open."""
        self.server.request_lines.append(head)
        authorization = headers.pop("proxy-authorization", None)
        self.server.authorizations.append(authorization)
        method, target, _ = head.split(" ", 2)
        body = self.rfile.read(int(headers.get("content-length", "0")))
        if self.server.password is not None:
            pair = f"user:{self.server.password}".encode()
            if authorization != "Basic " + base64.b64encode(pair).decode():
                self.wfile.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n")
                self.wfile.write(b"Content-Length: 0\r\n\r\n")
                return True

        if method == "CONNECT":
            if self.server.connect_reply is not None:
                self.wfile.write(self.server.connect_reply)
                return False
            host, _, port = target.rpartition(":")
            try:
                upstream = socket.create_connection((host.strip("[]"), int(port)))
            except OSError:
                self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                return False
            self.wfile.write(self.server.interim)
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self._relay(upstream)
            return False

        if self.server.forward_reply is not None:
            self.wfile.write(self.server.forward_reply)
            return True

        # Each absolute-form request goes on in origin form over a new
        # connection that the PBX closes after its response.
        parts = urlsplit(target)
        headers["connection"] = "close"
        lines = [f"{method} {parts.path} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        upstream = socket.create_connection((parts.hostname, parts.port or 80))
        with upstream:
            upstream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            while data := upstream.recv(65536):
                self.wfile.write(data)
        return True

    def _relay(self, upstream: socket.socket) -> None:
        with upstream:
            relay(self.connection, upstream)


def relay(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways until either side closes or 10 s pass in silence."""
    sockets = [client, upstream]
    while True:
        readable, _, _ = select.select(sockets, [], [], 10)
        if not readable:
            return
        for source in readable:
            data = source.recv(65536)
            if not data:
                return
            target = upstream if source is client else client
            target.sendall(data)


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("reconciler.client.READ_BACKOFF_SECONDS", 0.01)


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clear the machine's own proxy settings, so each test sets its own."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


# --- proxy_for --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "environ", "expected"),
    [
        ("https://pbx.example", {}, None),
        ("https://pbx.example", {"http_proxy": "http://p:1"}, None),
        ("https://pbx.example", {"https_proxy": "http://p:1"}, Proxy("p", 1, None)),
        ("https://pbx.example", {"HTTPS_PROXY": "http://p:1"}, Proxy("p", 1, None)),
        ("http://pbx.example", {"http_proxy": "http://p:1"}, Proxy("p", 1, None)),
        ("http://pbx.example", {"https_proxy": "http://p:1"}, None),
        ("https://pbx.example", {"all_proxy": "http://p:1"}, Proxy("p", 1, None)),
        ("https://pbx.example", {"https_proxy": "p:3128"}, Proxy("p", 3128, None)),
        ("https://pbx.example", {"https_proxy": "http://p"}, Proxy("p", 80, None)),
        (
            "https://pbx.example",
            {"https_proxy": "http://p:1", "all_proxy": "http://q:2"},
            Proxy("p", 1, None),
        ),
    ],
)
def test_proxy_from_environment(
    url: str, environ: dict[str, str], expected: Proxy | None
) -> None:
    assert proxy_for(url, environ) == expected


@pytest.mark.parametrize(
    ("url", "no_proxy", "bypassed"),
    [
        ("https://pbx.example", "pbx.example", True),
        ("https://PBX.Example", "pbx.example", True),
        ("https://pbx.example", ".example", True),
        ("https://pbx.example", "example", True),
        ("https://pbx.example", "other.example, pbx.example", True),
        ("https://pbx.example", "*", True),
        ("https://pbx.example", "xample", False),
        ("https://pbx.example", "pbx.example:8443", False),
        ("https://pbx.example:8443", "pbx.example:8443", True),
        ("https://10.1.2.3", "10.0.0.0/8", True),
        ("https://10.1.2.3", "192.168.0.0/16", False),
        ("https://[::1]:8443", "[::1]:8443", True),
        ("https://[::1]", "::1", True),
        ("https://pbx.example", "", False),
        ("https://127.0.0.1", "127.0.0.1:443", True),
        ("http://127.0.0.1", "127.0.0.1:80", True),
        ("http://127.0.0.1", "127.0.0.1:443", False),
        ("https://[0:0::1]", "::1", True),
        ("https://[::1]", "0:0::1", True),
        ("https://[::1]", "[::1]/128", True),
        ("https://127.0.0.1", ".0.0.1", False),
        ("https://127.0.0.1", "127.0.0.1/33", False),
        ("https://pbx.example.", "example", True),
        ("https://pbx.example", "example.", True),
    ],
)
def test_no_proxy_entries(url: str, no_proxy: str, bypassed: bool) -> None:
    environ = {"http_proxy": "http://p:1", "https_proxy": "http://p:1"}
    environ["no_proxy"] = no_proxy
    proxy = proxy_for(url, environ)
    assert (proxy is None) == bypassed


def test_blank_no_proxy_falls_back() -> None:
    environ = {"https_proxy": "http://p:1", "no_proxy": " ", "NO_PROXY": "example"}
    assert proxy_for("https://pbx.example", environ) is None


def test_proxy_host_must_be_dns_name() -> None:
    with pytest.raises(ValueError) as caught:
        proxy_for("https://pbx.example", {"https_proxy": f"http://{'a' * 64}.x:1"})
    assert str(caught.value) == (
        "https_proxy is not a valid proxy URL: its host is neither an IP address "
        "nor a valid DNS name"
    )


def test_proxy_credentials_become_basic_auth() -> None:
    environ = {"https_proxy": "http://user:p%40ss@p:1"}
    proxy = proxy_for("https://pbx.example", environ)
    assert proxy is not None
    assert proxy.authorization == "Basic " + base64.b64encode(b"user:p@ss").decode()


@pytest.mark.parametrize(
    "value", ["socks5://user:secret@p:1080", "https://user:secret@p:1"]
)
def test_unusable_proxy_names_variable_only(value: str) -> None:
    with pytest.raises(ValueError) as caught:
        proxy_for("https://pbx.example", {"HTTPS_PROXY": value})
    assert "HTTPS_PROXY" in str(caught.value)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    "value",
    [
        "http://p:x",
        "http://p:99999",
        "http://p:0",
        "http://user:pa#ss-secret@p:1",
        "http://user:pa/ss-secret@p:1",
        "http://user:pa?ss-secret@p:1",
    ],
)
def test_invalid_proxy_url_explained(value: str) -> None:
    with pytest.raises(ValueError) as caught:
        proxy_for("https://pbx.example", {"https_proxy": value})
    assert str(caught.value) == (
        "https_proxy is not a valid proxy URL: give http://HOST:PORT with a port "
        "from 1 to 65535, and percent-encode @ : / ? # in a user name or password "
        "(%40 %3A %2F %3F %23)"
    )


def test_ipv6_proxy_address_in_brackets() -> None:
    proxy = proxy_for("https://pbx.example", {"https_proxy": "http://[::1]:3128"})
    assert proxy is not None
    assert proxy.address == "[::1]:3128"


# --- through a proxy -------------------------------------------------------------


def plan_over_https(tmp_path: Path, tls_files: TlsFiles) -> CliResult:
    """Run plan on THREE against the HTTPS sandbox set in the environment."""
    path = write_yaml(tmp_path, THREE)
    return run_cli("plan", "-f", str(path), "--ca-bundle", str(tls_files.ca))


def test_plan_through_http_proxy(
    pbx_env: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ForwardProxy(password=PROXY_PASSWORD) as proxy:
        address = proxy.url.removeprefix("http://")
        monkeypatch.setenv("http_proxy", f"http://user:{PROXY_PASSWORD}@{address}")
        path = write_yaml(tmp_path, THREE)
        result = run_cli("plan", "-f", str(path), "--allow-http", "--debug")
    assert result.exit_code == 0, result.stderr
    assert "Plan: 3 to create" in result.stdout
    assert proxy.request_lines == [
        f"POST {pbx_env.url}/admin/api/api/token HTTP/1.1",
        f"POST {pbx_env.url}/admin/api/api/gql HTTP/1.1",
    ]
    assert all(value is not None for value in proxy.authorizations)
    assert f"connecting through the proxy {address}" in result.stderr
    output = result.stdout + result.stderr
    assert PROXY_PASSWORD not in output
    assert base64.b64encode(f"user:{PROXY_PASSWORD}".encode()).decode() not in output


def test_proxy_bad_gateway_named(
    pbx_env: SandboxServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fast_retries: None,
) -> None:
    reply = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"
    with ForwardProxy(forward_reply=reply) as proxy:
        monkeypatch.setenv("http_proxy", proxy.url)
        result = run_cli("plan", "-f", str(write_yaml(tmp_path, THREE)), "--allow-http")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: token request to {pbx_env.url}/admin/api/api/token failed: server "
        f"error HTTP 502 (from the proxy {proxy.address} or the PBX behind it); "
        "check the proxy's logs, then the FreePBX API module and its logs"
    )
    assert pbx_env.requests == []


def test_no_proxy_host_connects_directly(
    pbx_env: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        result = run_cli("plan", "-f", str(write_yaml(tmp_path, THREE)), "--allow-http")
    assert result.exit_code == 0, result.stderr
    assert proxy.request_lines == []


def test_sandbox_run_ignores_proxy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with ForwardProxy() as proxy:
        monkeypatch.setenv("http_proxy", proxy.url)
        result = run_cli("plan", "-f", str(write_yaml(tmp_path, THREE)), "--sandbox")
    assert result.exit_code == 0, result.stderr
    assert "Plan: 3 to create" in result.stdout
    assert proxy.request_lines == []


def test_https_through_one_connect_tunnel(
    https_pbx: SandboxServer,
    tls_files: TlsFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with ForwardProxy() as proxy:
        monkeypatch.setenv("https_proxy", proxy.url)
        result = plan_over_https(tmp_path, tls_files)
    assert result.exit_code == 0, result.stderr
    assert "Plan: 3 to create" in result.stdout
    # The token and the read share one tunnel, and TLS checked the PBX's name.
    address = https_pbx.url.removeprefix("https://")
    # Python 3.11 sends CONNECT as HTTP/1.0, later versions as HTTP/1.1.
    methods_and_targets = [line.rsplit(" ", 1)[0] for line in proxy.request_lines]
    assert methods_and_targets == [f"CONNECT {address}"]


def test_proxy_down_named_in_error(
    https_pbx: SandboxServer,
    tls_files: TlsFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fast_retries: None,
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    result = plan_over_https(tmp_path, tls_files)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: token request to {https_pbx.url}/admin/api/api/token failed: "
        f"cannot connect to the proxy 127.0.0.1:{port} (HTTPS_PROXY): connection "
        "refused"
    )
    assert https_pbx.requests == []


def test_ipv6_tunnel_target_in_brackets(
    monkeypatch: pytest.MonkeyPatch, fast_retries: None
) -> None:
    settings = ConnectionSettings("https://[::1]:8443", "id", "scripted-server-secret")
    with ForwardProxy() as proxy:
        monkeypatch.setenv("https_proxy", proxy.url)
        with FreePBXClient(settings) as client, pytest.raises(PbxUnreachable):
            client.fetch_token()
    assert proxy.request_lines[0] == "CONNECT [::1]:8443 HTTP/1.1"


def test_interim_connect_replies_skipped(
    https_pbx: SandboxServer,
    tls_files: TlsFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
    with ForwardProxy(interim=interim) as proxy:
        monkeypatch.setenv("https_proxy", proxy.url)
        result = plan_over_https(tmp_path, tls_files)
    assert result.exit_code == 0, result.stderr
    assert len(proxy.request_lines) == 1


def test_closed_tunnel_names_proxy(
    https_pbx: SandboxServer,
    tls_files: TlsFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fast_retries: None,
) -> None:
    reply = b"HTTP/1.1 200 Connection established\r\n\r\n"
    with ForwardProxy(connect_reply=reply) as proxy:
        monkeypatch.setenv("https_proxy", proxy.url)
        result = plan_over_https(tmp_path, tls_files)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: token request to {https_pbx.url}/admin/api/api/token failed: the "
        "server closed the connection during the TLS handshake; check that it "
        "serves HTTPS on this port, or use http:// with --allow-http if it serves "
        f"plain HTTP (through the proxy {proxy.address})"
    )
    # A closed connection may not close again, so it was retried.
    assert len(proxy.request_lines) == 3


def test_idn_host_encoded_in_tunnel(
    monkeypatch: pytest.MonkeyPatch, fast_retries: None
) -> None:
    host = "pbx.exämple.test"
    settings = ConnectionSettings(f"https://{host}", "id", "scripted-server-secret")
    reply = b"HTTP/1.1 403 Forbidden\r\n\r\n"
    with ForwardProxy(connect_reply=reply) as proxy:
        monkeypatch.setenv("https_proxy", proxy.url)
        with FreePBXClient(settings) as client, pytest.raises(PbxUnreachable):
            client.fetch_token()
    punycode = host.encode("idna").decode("ascii")
    assert proxy.request_lines[0] == f"CONNECT {punycode}:443 HTTP/1.1"


def test_tunnel_rejected_by_proxy(
    https_pbx: SandboxServer,
    tls_files: TlsFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fast_retries: None,
) -> None:
    with ForwardProxy(password=PROXY_PASSWORD) as proxy:
        monkeypatch.setenv("https_proxy", proxy.url)
        result = plan_over_https(tmp_path, tls_files)
    assert result.exit_code == 1
    address = proxy.address
    assert result.stderr.splitlines()[-1] == (
        f"Error: token request to {https_pbx.url}/admin/api/api/token failed: the "
        f"proxy {address} requires authentication (HTTP 407); put user:password@ "
        "before its address in https_proxy"
    )
    # A proxy that rejects the credentials rejects them again: no retries.
    assert len(proxy.request_lines) == 1


def test_http_proxy_requiring_auth(
    pbx_env: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ForwardProxy(password=PROXY_PASSWORD) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://user:wrong@{proxy.address}")
        result = run_cli("plan", "-f", str(write_yaml(tmp_path, THREE)), "--allow-http")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: token request to {pbx_env.url}/admin/api/api/token failed: the "
        f"proxy {proxy.address} requires authentication (HTTP 407); check the user "
        "and password in HTTP_PROXY"
    )
    assert pbx_env.requests == []


def test_read_rejected_by_proxy_not_retried(
    pbx: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ConnectionSettings(pbx.url, pbx.client_id, pbx.client_secret)
    with ForwardProxy(password=PROXY_PASSWORD) as proxy:
        monkeypatch.setenv("http_proxy", proxy.url)
        with FreePBXClient(settings) as client, pytest.raises(PbxUnreachable):
            client._token = "test-token"
            client.query("fetchNeedReload", "query { fetchNeedReload }", {})
    assert len(proxy.request_lines) == 1


def test_proxy_reason_cleaned_and_masked(
    https_pbx: SandboxServer,
    tls_files: TlsFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fast_retries: None,
) -> None:
    reason = f"403 Forbidden for user:{PROXY_PASSWORD} \x1b[31m\x07"
    reply = f"HTTP/1.1 {reason}\r\n\r\n".encode()
    with ForwardProxy(connect_reply=reply) as proxy:
        proxy_url = f"http://user:{PROXY_PASSWORD}@{proxy.address}"
        monkeypatch.setenv("https_proxy", proxy_url)
        result = plan_over_https(tmp_path, tls_files)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: token request to {https_pbx.url}/admin/api/api/token failed: the "
        f"proxy {proxy.address} rejected the tunnel (403 Forbidden for user:*** "
        "?[31m?)"
    )
    output = result.stdout + result.stderr
    assert PROXY_PASSWORD not in output
    assert "\x1b" not in output
    assert "\x07" not in output


def test_invalid_connect_reply(
    https_pbx: SandboxServer,
    tls_files: TlsFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fast_retries: None,
) -> None:
    with ForwardProxy(connect_reply=b"SSH-2.0-OpenSSH_9.6\r\n") as proxy:
        monkeypatch.setenv("https_proxy", proxy.url)
        result = plan_over_https(tmp_path, tls_files)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: token request to {https_pbx.url}/admin/api/api/token failed: the "
        f"proxy {proxy.address} sent an invalid reply to CONNECT"
    )


def test_unsupported_proxy_is_one_error_line(
    pbx_env: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", "socks5://user:s3cret-proxy@127.0.0.1:1080")
    result = run_cli("plan", "-f", str(write_yaml(tmp_path, THREE)), "--allow-http")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: http_proxy must be an http:// proxy URL such as "
        "http://proxy.example:3128; other proxy schemes are not supported"
    )
    assert "s3cret-proxy" not in result.stdout + result.stderr
    assert pbx_env.requests == []


# --- kept-alive connections -----------------------------------------------------------


class ScriptedServer(LocalServer):
    """A server that sends the raw bytes of `replies`, one per request, in order.

    With `close_each`, it closes each connection after one reply without
    saying `Connection: close`, as a server's keep-alive timeout does.
    """

    def __init__(self, replies: list[bytes], close_each: bool = False) -> None:
        super().__init__(_ScriptedHandler)
        self.replies = replies
        self.close_each = close_each
        self.connections = 0


class _ScriptedHandler(socketserver.StreamRequestHandler):
    server: ScriptedServer

    def handle(self) -> None:
        self.server.connections += 1
        while self.rfile.readline():
            length = 0
            while line := self.rfile.readline().strip():
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            self.rfile.read(length)
            self.wfile.write(self.server.replies.pop(0))
            if self.server.close_each:
                return


def json_reply(data: object, status: str = "200 OK", *headers: str) -> bytes:
    body = json.dumps({"data": data}).encode()
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@pytest.fixture
def client_of() -> Iterator[Callable[[ScriptedServer], FreePBXClient]]:
    """Open a client with a token to a ScriptedServer; close it afterwards."""
    with ExitStack() as stack:

        def open_client(server: ScriptedServer) -> FreePBXClient:
            settings = ConnectionSettings(server.url, "id", "scripted-server-secret")
            client = stack.enter_context(FreePBXClient(settings))
            client._token = "test-token"
            return client

        yield open_client


def test_closed_idle_connection_replaced(
    client_of: Callable[[ScriptedServer], FreePBXClient],
) -> None:
    replies = [json_reply({"n": 1}), json_reply({"n": 2})]
    with ScriptedServer(replies, close_each=True) as server:
        client = client_of(server)
        first = client.mutate("doreload", "mutation { doreload }", {})
        time.sleep(0.2)  # the server closes the connection meanwhile
        # A mutation is never resent, so it succeeds only if the client
        # saw the closed connection before sending.
        second = client.mutate("doreload", "mutation { doreload }", {})
    assert first == {"n": 1}
    assert second == {"n": 2}
    assert server.connections == 2


def test_interim_responses_skipped(
    client_of: Callable[[ScriptedServer], FreePBXClient],
) -> None:
    interim = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
    interim += b"HTTP/1.1 102 Processing\r\n\r\n"
    replies = [interim + json_reply({"n": 1}), json_reply({"n": 2})]
    with ScriptedServer(replies) as server:
        client = client_of(server)
        first = client.mutate("doreload", "mutation { doreload }", {})
        second = client.query("fetchNeedReload", "query { fetchNeedReload }", {})
    assert first == {"n": 1}
    assert second == {"n": 2}
    assert server.connections == 1


def test_body_shorter_than_content_length(
    client_of: Callable[[ScriptedServer], FreePBXClient],
) -> None:
    reply = b'HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{"data": {"n": 1}}'
    with ScriptedServer([reply], close_each=True) as server:
        client = client_of(server)
        with pytest.raises(OutcomeUnknown) as caught:
            client.mutate("doreload", "mutation { doreload }", {})
    assert str(caught.value) == (
        f"doreload: no answer from {server.url}/admin/api/api/gql: the "
        "connection closed before the whole answer arrived"
    )


def test_empty_gzip_redirect_is_api_error(
    client_of: Callable[[ScriptedServer], FreePBXClient],
) -> None:
    reply = (
        b"HTTP/1.1 302 Found\r\nLocation: /pbx/admin/api/api/gql\r\n"
        b"Content-Encoding: gzip\r\nContent-Length: 0\r\n\r\n"
    )
    with ScriptedServer([reply]) as server:
        client = client_of(server)
        with pytest.raises(ApiError) as caught:
            client.mutate("doreload", "mutation { doreload }", {})
    # A redirect means the PBX did not run it, so the outcome is known.
    assert str(caught.value) == (
        f"doreload failed (HTTP 302): the request was redirected to {server.url}"
        "/pbx/admin/api/api/gql and not resent; set FREEPBX_URL to the base URL "
        "of that address"
    )


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "GZIP"])
def test_gzip_encodings_decoded(
    client_of: Callable[[ScriptedServer], FreePBXClient], encoding: str
) -> None:
    body = gzip.compress(b'{"data": {"n": 1}}')
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: {encoding}\r\n"
    head += f"Content-Length: {len(body)}\r\n\r\n"
    with ScriptedServer([head.encode() + body]) as server:
        client = client_of(server)
        data = client.mutate("doreload", "mutation { doreload }", {})
    assert data == {"n": 1}


class SilentServer(LocalServer):
    """A server that accepts connections and never sends a byte."""

    def __init__(self) -> None:
        super().__init__(_SilentHandler)
        self.stopping = threading.Event()

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        super().__exit__(*exc)


class _SilentHandler(socketserver.BaseRequestHandler):
    server: SilentServer

    def handle(self) -> None:
        self.server.stopping.wait(10)


def test_stalled_tls_handshake_named(fast_retries: None) -> None:
    with SilentServer() as server:
        url = server.url.replace("http://", "https://")
        settings = ConnectionSettings(
            url, "id", "scripted-server-secret", connect_timeout=0.3
        )
        with FreePBXClient(settings) as client, pytest.raises(PbxUnreachable) as caught:
            client.fetch_token()
    assert str(caught.value) == (
        f"token request to {url}/admin/api/api/token failed: TLS handshake timed out"
    )


def test_no_answer_names_proxy(
    monkeypatch: pytest.MonkeyPatch,
    client_of: Callable[[ScriptedServer], FreePBXClient],
) -> None:
    with ScriptedServer([b"garbage\r\n\r\n"]) as proxy:
        monkeypatch.setenv("http_proxy", proxy.url)
        settings = ConnectionSettings(
            "http://127.0.0.1:9", "id", "scripted-server-secret"
        )
        with FreePBXClient(settings) as client, pytest.raises(OutcomeUnknown) as caught:
            client._token = "test-token"
            client.mutate("doreload", "mutation { doreload }", {})
    assert str(caught.value) == (
        "doreload: no answer from http://127.0.0.1:9/admin/api/api/gql: the answer "
        f"is not valid HTTP (through the proxy {proxy.address})"
    )


class FlakyTlsRelay(LocalServer):
    """A relay to `target` that closes its first connection after one read.

    To the client that is a TLS server closing the connection during the
    handshake once, as a restarting web server or a load balancer may.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        super().__init__(_FlakyRelayHandler)
        self.target = target
        self.connections = 0


class _FlakyRelayHandler(socketserver.BaseRequestHandler):
    server: FlakyTlsRelay

    def handle(self) -> None:
        self.server.connections += 1
        if self.server.connections == 1:
            self.request.recv(4096)
            return
        with socket.create_connection(self.server.target) as upstream:
            relay(self.request, upstream)


def test_handshake_closed_once_retried(
    https_pbx: SandboxServer,
    tls_files: TlsFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fast_retries: None,
) -> None:
    port = urlsplit(https_pbx.url).port
    assert port is not None
    with FlakyTlsRelay(("127.0.0.1", port)) as relay:
        url = f"https://{relay.address}"
        path = write_yaml(tmp_path, THREE)
        result = run_cli(
            "plan", "-f", str(path), "--url", url, "--ca-bundle", str(tls_files.ca)
        )
    assert result.exit_code == 0, result.stderr
    assert "the server closed the connection during the TLS handshake" in (
        result.stderr
    )
    assert relay.connections == 2


class DripServer(LocalServer):
    """A server that responds to each request with `reply`, a byte every 0.2 s.

    Each byte comes well within any read timeout, so only a limit on the
    whole step stops the client waiting.
    """

    def __init__(self, reply: bytes) -> None:
        super().__init__(_DripHandler)
        self.reply = reply


class _DripHandler(socketserver.StreamRequestHandler):
    server: DripServer

    def handle(self) -> None:
        while self.rfile.readline().strip():
            pass  # the request line and headers; the tests send no body
        with contextlib.suppress(OSError):
            for byte in self.server.reply:
                self.wfile.write(bytes([byte]))
                time.sleep(0.2)


def test_dripping_answer_times_out(
    client_of: Callable[[ScriptedServer], FreePBXClient],
) -> None:
    body = b'{"data": {"n": 1}}'
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    with DripServer(reply) as server:
        settings = ConnectionSettings(
            server.url, "id", "scripted-server-secret", read_timeout=1.0
        )
        with FreePBXClient(settings) as client, pytest.raises(OutcomeUnknown) as caught:
            client._token = "test-token"
            client.mutate("doreload", "mutation { doreload }", {})
    assert str(caught.value) == (
        f"doreload: no answer from {server.url}/admin/api/api/gql: timed out "
        "waiting for the answer"
    )


def test_dripping_connect_reply_times_out(
    monkeypatch: pytest.MonkeyPatch, fast_retries: None
) -> None:
    reply = b"HTTP/1.1 200 Connection established\r\n\r\n"
    with DripServer(reply) as proxy:
        monkeypatch.setenv("https_proxy", proxy.url)
        settings = ConnectionSettings(
            "https://127.0.0.1:9", "id", "scripted-server-secret", connect_timeout=1.0
        )
        with FreePBXClient(settings) as client, pytest.raises(PbxUnreachable) as caught:
            client.fetch_token()
    assert str(caught.value) == (
        "token request to https://127.0.0.1:9/admin/api/api/token failed: the "
        f"proxy {proxy.address} did not answer CONNECT in time"
    )


class TlsDripServer(DripServer):
    """A DripServer behind TLS, with the test CA's certificate for 127.0.0.1."""

    def __init__(self, reply: bytes, tls_files: TlsFiles) -> None:
        super().__init__(reply)
        self.RequestHandlerClass = _TlsDripHandler
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(tls_files.cert, tls_files.key)


class _TlsDripHandler(_DripHandler):
    server: TlsDripServer

    def setup(self) -> None:
        self.request = self.server.context.wrap_socket(self.request, server_side=True)
        super().setup()


def test_dripping_tls_answer_times_out(tls_files: TlsFiles) -> None:
    body = b'{"data": {"n": 1}}'
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    with TlsDripServer(reply, tls_files) as server:
        url = server.url.replace("http://", "https://")
        settings = ConnectionSettings(
            url,
            "id",
            "scripted-server-secret",
            ca_bundle=str(tls_files.ca),
            read_timeout=1.0,
        )
        with FreePBXClient(settings) as client, pytest.raises(OutcomeUnknown) as caught:
            client._token = "test-token"
            client.mutate("doreload", "mutation { doreload }", {})
    assert str(caught.value) == (
        f"doreload: no answer from {url}/admin/api/api/gql: timed out waiting for "
        "the answer"
    )
