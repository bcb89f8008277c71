"""The HTTP client every OTLP/HTTP export and MLflow REST call uses (``mlflow_otel/_http.py``): the
environment's proxy settings honoured as ``requests`` honours them, and failures told apart.

The proxy here is a small forward proxy in the test (it records what it relays): the point is the
client's choice of route and the credentials it sends, with the spans arriving at a real receiver.
"""

from __future__ import annotations

import base64
import http.client
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import mlflow_otel as mlflow
from mlflow_otel._http import HttpClient, HttpFailure


class ForwardProxy:
    """An HTTP forward proxy on loopback that relays requests and records (target, auth)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                proxy.seen.append((self.path, self.headers.get("Proxy-Authorization", "")))
                target = urllib.parse.urlsplit(self.path)  # a proxy gets the absolute URL
                body = self.rfile.read(int(self.headers["Content-Length"]))
                upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
                headers = {k: v for k, v in self.headers.items() if not k.lower().startswith("proxy-")}
                upstream.request("POST", target.path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.getheader("Content-Type", ""))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream.close()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ForwardProxy]:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    forward = ForwardProxy()
    yield forward
    forward.stop()


def _one_trace() -> None:
    @mlflow.trace
    def answer(question: str) -> str:
        return "42"

    answer("why")


def test_exports_go_through_the_environments_proxy_with_its_credentials(otlp_http, proxy, monkeypatch):
    user, password = "me", "p@ss word"
    netloc = proxy.url.replace("http://", "")
    monkeypatch.setenv("HTTP_PROXY", f"http://{user}:{urllib.parse.quote(password)}@{netloc}")
    _one_trace()
    assert [s.name for s in otlp_http(1)] == ["answer"]
    assert proxy.seen, "the export did not go through the proxy"
    target, auth = proxy.seen[0]
    assert target.startswith("http://127.0.0.1:") and target.endswith("/v1/traces")
    assert auth == "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_no_proxy_sends_directly(otlp_http, proxy, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    _one_trace()
    assert [s.name for s in otlp_http(1)] == ["answer"]
    assert proxy.seen == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_failures_are_told_apart(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    client = HttpClient()
    with pytest.raises(HttpFailure) as refused:
        client.request("POST", f"http://127.0.0.1:{_free_port()}/v1/traces?key=s3cret", body=b"x")
    assert refused.value.unreachable and not refused.value.not_http
    message = str(refused.value)
    assert "refused" in message.lower() and " object at 0x" not in message and "s3cret" not in message

    # A peer that accepts and closes without answering: unreachable, but it is not "not HTTP".
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    threading.Thread(target=lambda: listener.accept()[0].close(), daemon=True).start()
    with pytest.raises(HttpFailure) as closed:
        client.request("POST", f"http://127.0.0.1:{port}/v1/traces", body=b"x", timeout_s=5)
    listener.close()
    assert closed.value.unreachable and not closed.value.not_http

    # A peer that answers in another protocol (an HTTP/2 server's frames): not HTTP.
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer_in_frames() -> None:
        conn = listener.accept()[0]
        conn.recv(65536)
        conn.sendall(b"\x00\x00\x12\x04\x00\x00\x00\x00\x00" + b"\x00" * 18)
        conn.close()

    threading.Thread(target=answer_in_frames, daemon=True).start()
    with pytest.raises(HttpFailure) as framed:
        client.request("POST", f"http://127.0.0.1:{port}/v1/traces", body=b"x", timeout_s=5)
    listener.close()
    assert framed.value.not_http


def test_no_proxy_takes_addresses_and_ranges_as_requests_does():
    from mlflow_otel._http import _proxy_for
    from mlflow_otel._settings import HttpEnvironment

    proxies = {"http": "http://proxy.internal:3128"}
    for no_proxy, netloc, direct in [
        ("10.0.0.0/8", "10.1.2.3:4318", True),
        ("10.0.0.0/8", "11.1.2.3:4318", False),
        (".svc.cluster.local", "otel.obs.svc.cluster.local:4318", True),
        ("collector", "collector:4318", True),
        ("*", "anywhere:80", True),
    ]:
        got = _proxy_for(HttpEnvironment(proxies, no_proxy), "http", netloc)
        assert (got == "") is direct, (no_proxy, netloc, got)


def test_redirects_are_followed_and_credentials_stay_on_their_host():
    """As ``requests`` did: a 307/308 keeps the method and body; ``Authorization`` goes only to the
    host it was meant for."""
    seen: list[tuple[str, str, bytes, str]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.server.name, self.path, body, self.headers.get("Authorization", "")))
            if self.path == "/v1/traces":  # moved: to the same host, then to another
                self.send_response(308)
                self.send_header("Location", "/moved")
            elif self.path == "/moved":
                self.send_response(307)
                self.send_header("Location", f"{other_url}/elsewhere")
            else:
                self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    servers = []
    for name in ("first", "other"):
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.name = name  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    first_url, other_url = (f"http://127.0.0.1:{s.server_address[1]}" for s in servers)
    other_url = other_url.replace("127.0.0.1", "localhost")  # another host
    try:
        answer = HttpClient().request(
            "POST", f"{first_url}/v1/traces", body=b"spans", headers={"Authorization": "Bearer k"}
        )
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    assert answer.status == 200
    assert seen == [
        ("first", "/v1/traces", b"spans", "Bearer k"),
        ("first", "/moved", b"spans", "Bearer k"),
        ("other", "/elsewhere", b"spans", ""),
    ]
