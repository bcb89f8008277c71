"""More around a real MLflow server for the tests of the MLflow destination and the read API:

* :func:`query`: every record field read back with MLflow's own client (``mlflow_query.py`` in the
  server's venv), credentials passed as MLflow reads them;
* :class:`AuthMlflowServer`: ``mlflow server --app-name basic-auth`` (MLflow's own credentials check);
* :class:`TlsProxy`: an HTTPS front for a server, with a self-signed certificate made by ``openssl``
  for 127.0.0.1 (``MLFLOW_TRACKING_INSECURE_TLS`` / ``MLFLOW_TRACKING_SERVER_CERT_PATH``), which also
  keeps the headers it saw;
* :class:`FakeMlflow`: a loopback stand-in for fault injection only (OTLP answers and scripted
  ``StartTraceV3`` answers, every request kept).

Every server binds 127.0.0.1 on a free port and is stopped by what started it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

from tests.backends import HERE, MLFLOW_VENV, MlflowServer, Process, free_port, wait_until


def query(
    server: MlflowServer,
    experiment: str,
    filter_string: Optional[str] = None,
    env: Optional[dict[str, str]] = None,
    uri: Optional[str] = None,
) -> list[dict[str, Any]]:
    """Traces of ``experiment`` read with MLflow's client in the server's venv (``mlflow_query.py``)."""
    args = [str(server.venv / "bin" / "python"), str(HERE / "mlflow_query.py"), uri or server.uri, experiment]
    if filter_string:
        args.append(filter_string)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}
    full_env.update(env or {})
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, env=full_env)
    if result.returncode != 0:
        raise RuntimeError(f"mlflow_query.py failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def wait_query(
    server: MlflowServer, experiment: str, count: int, timeout: float = 30.0, **kw: Any
) -> list[dict[str, Any]]:
    def enough() -> Optional[list[dict[str, Any]]]:
        traces = query(server, experiment, **kw)
        return traces if len(traces) >= count else None

    try:
        return wait_until(enough, timeout, f"{count} traces in MLflow", interval=0.5)
    except TimeoutError:
        return query(server, experiment, **kw)


class AuthMlflowServer(MlflowServer):
    """MLflow's basic-auth app: every request needs HTTP basic credentials (admin / ``password``)."""

    def __init__(self, workdir: Path, venv: Path = MLFLOW_VENV, password: str = "Adm1n-pass-word") -> None:
        self.venv = venv
        mlflow = venv / "bin" / "mlflow"
        if not mlflow.exists():
            raise FileNotFoundError(f"{mlflow} missing: run tests/backends/install.sh")
        self.workdir = workdir
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.username, self.password = "admin", password
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}
        env.update(
            MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
            MLFLOW_FLASK_SERVER_SECRET_KEY="mlflow-otel-tests",
            MLFLOW_AUTH_ADMIN_PASSWORD=password,
        )
        self.process = Process(
            [
                str(mlflow), "server", "--app-name", "basic-auth", "--host", "127.0.0.1", "--port", str(self.port),
                "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
                "--default-artifact-root", str(workdir / "artifacts"),
                "--workers", "1",
            ],
            workdir / "mlflow.log",
            env=env,
            cwd=workdir,  # the auth app keeps its users in ./basic_auth.db
        )  # fmt: skip

    def start(self) -> AuthMlflowServer:
        def answering() -> bool:
            if not self.process.alive():
                raise RuntimeError("exited")
            try:
                urllib.request.urlopen(f"{self.uri}/health", timeout=2)
            except urllib.error.HTTPError:
                pass  # 401: the app answers
            return True

        try:
            wait_until(answering, 120, "MLflow server (basic auth)", interval=0.5)
        except (TimeoutError, RuntimeError):
            raise RuntimeError(f"MLflow server did not start:\n{self.process.tail()}") from None
        return self


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1 (``openssl``, which Debian installs with Python)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise FileNotFoundError("openssl missing")
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


class _Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []

    def add(self, method: str, path: str, headers: Iterable[tuple[str, str]], body: bytes) -> None:
        with self.lock:
            self.requests.append((method, path, {k.lower(): v for k, v in headers}, body))

    def paths(self) -> list[str]:
        with self.lock:
            return [p for _, p, _, _ in self.requests]


class TlsProxy:
    """HTTPS on a free port, forwarding every request to ``upstream`` (plain HTTP)."""

    def __init__(self, workdir: Path, upstream: str) -> None:
        self.cert, self.key = self_signed_certificate(workdir)
        self.upstream = upstream.rstrip("/")
        self.seen = _Recorder()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy.seen.add(self.command, self.path, self.headers.items(), body)
                request = urllib.request.Request(
                    proxy.upstream + self.path, data=body or None, method=self.command
                )
                for name, value in self.headers.items():
                    if name.lower() not in ("host", "content-length", "connection", "accept-encoding"):
                        request.add_header(name, value)
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        status, headers, data = response.status, response.headers, response.read()
                except urllib.error.HTTPError as exc:
                    status, headers, data = exc.code, exc.headers, exc.read()
                self.send_response(status)
                content_type = headers.get("content-type")
                if content_type:
                    self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _forward

            def log_message(self, *args: Any) -> None:
                return None

        self.port = free_port()
        self.uri = f"https://127.0.0.1:{self.port}"
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert), str(self.key))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> TlsProxy:
        self._thread.start()
        wait_until(
            lambda: socket.create_connection(("127.0.0.1", self.port), timeout=1).close() or True, 10, "proxy"
        )
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeMlflow:
    """An MLflow-shaped server for fault injection: ``/v1/traces`` answers the next of
    ``otlp_statuses``, then ``otlp_status`` (200 by default), ``POST /api/3.0/mlflow/traces``
    answers the next of ``record_statuses`` (then 200)."""

    def __init__(self) -> None:
        self.seen = _Recorder()
        self.otlp_status = 200
        self.otlp_statuses: list[int] = []
        self.record_statuses: list[int] = []
        #: ``POST /api/2.0/mlflow/experiments/create`` answers this (status, error code, message).
        self.create_experiment_answer: tuple[int, str, str] = (404, "ENDPOINT_NOT_FOUND", "")
        #: The client ports ``StartTraceV3`` requests came from: one per connection.
        self.record_connections: set[int] = set()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                fake.seen.add(self.command, self.path, self.headers.items(), body)
                if self.path.startswith("/v1/traces"):
                    with fake.seen.lock:
                        status = fake.otlp_statuses.pop(0) if fake.otlp_statuses else fake.otlp_status
                    data, kind = b"", "application/x-protobuf"
                elif self.path == "/api/3.0/mlflow/traces" and self.command == "POST":
                    fake.record_connections.add(self.client_address[1])
                    with fake.seen.lock:
                        status = fake.record_statuses.pop(0) if fake.record_statuses else 200
                    data = json.dumps(
                        {} if status == 200 else {"error_code": "X", "message": f"scripted {status}"}
                    )
                    data, kind = data.encode(), "application/json"
                elif self.path == "/api/2.0/mlflow/experiments/create":
                    status, code, message = fake.create_experiment_answer
                    data = json.dumps({"error_code": code, "message": message}).encode()
                    kind = "application/json"
                else:
                    status, data, kind = 404, b'{"error_code": "ENDPOINT_NOT_FOUND"}', "application/json"
                self.send_response(status)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                return None

        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FakeMlflow:
        self._thread.start()
        return self

    def records(self) -> list[dict[str, Any]]:
        """The ``StartTraceV3`` bodies received, in order."""
        with self.seen.lock:
            return [
                json.loads(body)
                for method, path, _, body in self.seen.requests
                if method == "POST" and path == "/api/3.0/mlflow/traces"
            ]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(condition: Any, timeout: float = 10.0, what: str = "condition") -> Any:
    """``wait_until`` for plain predicates (``time.sleep`` polling, bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(what)
