"""The HTTP transport: proxies from the environment, kept-alive connections."""

from __future__ import annotations

import base64
import json
import select
import socket
import socketserver
import threading
import time
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import pytest
from conftest import TlsFiles, run_cli, write_yaml

from reconciler.client import FreePBXClient
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
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

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
    """

    def __init__(self, password: str | None = None) -> None:
        super().__init__(_ProxyHandler)
        self.password = password
        self.request_lines: list[str] = []
        self.authorizations: list[str | None] = []


class _ProxyHandler(socketserver.StreamRequestHandler):
    server: ForwardProxy

    def handle(self) -> None:
        head = self.rfile.readline().decode("latin-1").rstrip("\r\n")
        headers: dict[str, str] = {}
        while line := self.rfile.readline().decode("latin-1").rstrip("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()

        self.server.request_lines.append(head)
        authorization = headers.get("proxy-authorization")
        self.server.authorizations.append(authorization)
        if self.server.password is not None:
            pair = f"user:{self.server.password}".encode()
            if authorization != "Basic " + base64.b64encode(pair).decode():
                self.wfile.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n")
                self.wfile.write(b"Content-Length: 0\r\n\r\n")
                return

        method, target, _ = head.split(" ", 2)
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = socket.create_connection((host, int(port)))
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self._relay(upstream)
            return
        # One absolute-form request per connection, sent on in origin form.
        parts = urlsplit(target)
        body = self.rfile.read(int(headers.get("content-length", "0")))
        headers.pop("proxy-authorization", None)
        headers["connection"] = "close"
        lines = [f"{method} {parts.path} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        upstream = socket.create_connection((parts.hostname, parts.port or 80))
        upstream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        self._relay(upstream)

    def _relay(self, upstream: socket.socket) -> None:
        sockets = [self.connection, upstream]
        with upstream:
            while True:
                readable, _, _ = select.select(sockets, [], [], 10)
                if not readable:
                    return
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    target = upstream if source is self.connection else self.connection
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
    ],
)
def test_no_proxy_entries(url: str, no_proxy: str, bypassed: bool) -> None:
    environ = {"https_proxy": "http://p:1", "no_proxy": no_proxy}
    proxy = proxy_for(url, environ)
    assert (proxy is None) == bypassed


def test_proxy_credentials_become_basic_auth() -> None:
    environ = {"https_proxy": "http://user:p%40ss@p:1"}
    proxy = proxy_for("https://pbx.example", environ)
    assert proxy is not None
    assert proxy.authorization == "Basic " + base64.b64encode(b"user:p@ss").decode()


@pytest.mark.parametrize(
    "value", ["socks5://user:secret@p:1080", "https://user:secret@p:1", "http://p:x"]
)
def test_unusable_proxy_names_variable_only(value: str) -> None:
    with pytest.raises(ValueError) as caught:
        proxy_for("https://pbx.example", {"HTTPS_PROXY": value})
    assert "HTTPS_PROXY" in str(caught.value)
    assert "secret" not in str(caught.value)


# --- through a proxy -------------------------------------------------------------


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
        path = write_yaml(tmp_path, THREE)
        result = run_cli("plan", "-f", str(path), "--ca-bundle", str(tls_files.ca))
    assert result.exit_code == 0, result.stderr
    assert "Plan: 3 to create" in result.stdout
    # The token and the read share one tunnel, and TLS checked the PBX's name.
    address = https_pbx.url.removeprefix("https://")
    # Python 3.11 sends CONNECT as HTTP/1.0, later versions as HTTP/1.1.
    methods_and_targets = [line.rsplit(" ", 1)[0] for line in proxy.request_lines]
    assert methods_and_targets == [f"CONNECT {address}"]


def test_tunnel_rejected_by_proxy(
    https_pbx: SandboxServer,
    tls_files: TlsFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fast_retries: None,
) -> None:
    with ForwardProxy(password=PROXY_PASSWORD) as proxy:
        monkeypatch.setenv("https_proxy", proxy.url)
        path = write_yaml(tmp_path, THREE)
        result = run_cli("plan", "-f", str(path), "--ca-bundle", str(tls_files.ca))
    assert result.exit_code == 1
    address = proxy.url.removeprefix("http://")
    assert result.stderr.splitlines()[-1] == (
        f"Error: token request to {https_pbx.url}/admin/api/api/token failed: the "
        f"proxy {address} rejected the tunnel (407 Proxy Authentication Required)"
    )


def test_unsupported_proxy_is_one_error_line(
    pbx_env: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", "socks5://user:s3cret-proxy@127.0.0.1:1080")
    result = run_cli("plan", "-f", str(write_yaml(tmp_path, THREE)), "--allow-http")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: cannot reach {pbx_env.url}: http_proxy must be an http:// proxy "
        "URL such as http://proxy.example:3128; other proxy schemes are not "
        "supported"
    )
    assert "s3cret-proxy" not in result.stdout + result.stderr
    assert pbx_env.requests == []


# --- kept-alive connections -----------------------------------------------------------


class OneAnswerServer(LocalServer):
    """A GraphQL server that closes each connection after one answer.

    Its answers do not say `Connection: close`, as when a server's keep-alive
    timeout ends an idle connection.
    """

    def __init__(self) -> None:
        super().__init__(_OneAnswerHandler)
        self.connections = 0


class _OneAnswerHandler(socketserver.StreamRequestHandler):
    server: OneAnswerServer

    def handle(self) -> None:
        self.server.connections += 1
        length = 0
        while line := self.rfile.readline().strip():
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        self.rfile.read(length)
        body = json.dumps({"data": {"connection": self.server.connections}}).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n"
        self.wfile.write(head.encode() + b"Content-Type: application/json\r\n\r\n")
        self.wfile.write(body)


def test_closed_idle_connection_replaced() -> None:
    with OneAnswerServer() as server:
        settings = ConnectionSettings(server.url, "id", "secret")
        with FreePBXClient(settings) as client:
            client._token = "test-token"
            first = client.mutate("doreload", "mutation { doreload }", {})
            time.sleep(0.2)  # the server closes the connection meanwhile
            # A mutation is never resent, so it succeeds only if the client
            # saw the closed connection before sending.
            second = client.mutate("doreload", "mutation { doreload }", {})
    assert first == {"connection": 1}
    assert second == {"connection": 2}
