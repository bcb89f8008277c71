"""Real backends for the tests: Jaeger v2, an MLflow tracking server, rotel, Arize Phoenix.

Each binds to 127.0.0.1 on free ports, is polled for readiness, and is stopped by PID. They come from
``tests/backends/install.sh`` (a cache outside the repository); a backend that is not installed makes
its tests skip, which CI (CI=true) counts as a failure.
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Optional

CACHE = Path(os.environ.get("MLFLOW_OTEL_BACKENDS", Path.home() / ".cache" / "mlflow-otel-backends"))
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # not ready yet
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s (last error: {last!r})")


def http_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


class Process:
    """A backend process we started: log file, PID, stop by PID (SIGTERM then SIGKILL)."""

    def __init__(
        self, args: list[str], log: Path, env: Optional[dict[str, str]] = None, cwd: Optional[Path] = None
    ) -> None:
        self.args = args
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - kept open for the process's life
        self.proc = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, kill: bool = False, grace_s: float = 10.0) -> None:
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGKILL if kill else signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


class OtlpCollector:
    """What every collector-like backend offers: OTLP/HTTP and OTLP/gRPC endpoints on loopback."""

    http_port: int
    grpc_port: int

    @property
    def otlp_http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def otlp_grpc(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


# --- Jaeger v2 ---------------------------------------------------------------------------------------
JAEGER_BIN = CACHE / "jaeger"

_JAEGER_STORE = """
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    logs: {{level: warn}}
    metrics: {{level: none}}
extensions:
  healthcheckv2:
    use_v2: true
    http: {{endpoint: "127.0.0.1:{health}"}}
  jaeger_query:
    storage: {{traces: mem}}
    http: {{endpoint: "127.0.0.1:{query}"}}
    grpc: {{endpoint: "127.0.0.1:{query_grpc}"}}
  jaeger_storage:
    backends:
      mem:
        memory: {{max_traces: 200000}}
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc}"}}
      http: {{endpoint: "127.0.0.1:{http}"}}
processors:
  batch: {{timeout: 100ms}}
exporters:
  jaeger_storage_exporter: {{trace_storage: mem}}
"""

_JAEGER_COLLECTOR = """
service:
  extensions: [healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp]
  telemetry:
    logs: {{level: warn}}
    metrics: {{level: none}}
extensions:
  healthcheckv2:
    use_v2: true
    http: {{endpoint: "127.0.0.1:{health}"}}
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc}"}}
      http: {{endpoint: "127.0.0.1:{http}"}}
processors:
  batch: {{timeout: 100ms}}
exporters:
  otlp:
    endpoint: "{upstream}"
    tls: {{insecure: true}}
    sending_queue: {{enabled: true, queue_size: 100000}}
    retry_on_failure: {{enabled: true, max_elapsed_time: 120s}}
"""


class Jaeger(OtlpCollector):
    """Jaeger v2 with memory storage and its query API, or (``upstream`` given) a plain OTel
    Collector pipeline: OTLP in -> batch -> OTLP out."""

    def __init__(self, workdir: Path, upstream: Optional[str] = None, name: str = "jaeger") -> None:
        if not JAEGER_BIN.exists():
            raise FileNotFoundError(f"{JAEGER_BIN} missing: run tests/backends/install.sh")
        self.workdir = workdir
        self.name = name
        self.upstream = upstream
        self.ports = {k: free_port() for k in ("health", "query", "query_grpc", "grpc", "http")}
        self.http_port, self.grpc_port = self.ports["http"], self.ports["grpc"]
        template = _JAEGER_COLLECTOR if upstream else _JAEGER_STORE
        self.config = workdir / f"{name}.yaml"
        self.config.write_text(template.format(upstream=upstream, **self.ports))
        self.process: Optional[Process] = None

    def start(self) -> Jaeger:
        self.process = Process(
            [str(JAEGER_BIN), f"--config=file:{self.config}"], self.workdir / f"{self.name}.log"
        )
        try:
            wait_until(self._healthy, 60, self.name)
        except TimeoutError:
            raise RuntimeError(f"{self.name} did not start:\n{self.process.tail()}") from None
        return self

    def _healthy(self) -> bool:
        if self.process is None or not self.process.alive():
            raise RuntimeError("exited")
        return http_json(f"http://127.0.0.1:{self.ports['health']}/status").get("healthy") is True

    def stop(self, kill: bool = False) -> None:
        if self.process is not None:
            self.process.stop(kill=kill)

    # --- query API (Jaeger's HTTP JSON API) -----------------------------------------------------
    def traces(
        self, service: str, tags: Optional[dict[str, str]] = None, limit: int = 100000
    ) -> list[dict[str, Any]]:
        query = {"service": service, "limit": str(limit), "lookback": "1h"}
        if tags:
            query["tags"] = json.dumps(tags)
        url = f"http://127.0.0.1:{self.ports['query']}/api/traces?{urllib.parse.urlencode(query)}"
        return http_json(url, timeout=30).get("data") or []

    def spans(self, service: str, **kwargs: Any) -> list[dict[str, Any]]:
        """Spans of a service, each with ``tags`` flattened to a dict."""
        out = []
        for trace in self.traces(service, **kwargs):
            for span in trace["spans"]:
                span = dict(span)
                span["tagmap"] = {t["key"]: t["value"] for t in span.get("tags", [])}
                out.append(span)
        return out

    def wait_for_spans(
        self, service: str, count: int, timeout: float = 30.0, **kwargs: Any
    ) -> list[dict[str, Any]]:
        def enough() -> Optional[list[dict[str, Any]]]:
            spans = self.spans(service, **kwargs)
            return spans if len(spans) >= count else None

        try:
            return wait_until(enough, timeout, f"{count} spans of {service} in {self.name}", interval=0.5)
        except TimeoutError:
            return self.spans(service, **kwargs)


# --- otelcol-mlflow: collector-config/ run as users run it --------------------------------------------
OTELCOL_BIN = CACHE / "otelcol-mlflow"
COLLECTOR_CONFIG = HERE.parent.parent / "collector-config"


def otelcol_binary() -> Path:
    if not OTELCOL_BIN.exists():
        raise FileNotFoundError(f"{OTELCOL_BIN} missing: run tests/backends/install.sh")
    return OTELCOL_BIN


class Otelcol(OtlpCollector):
    """The collector built from ``collector-config/builder-config.yaml``, running the repository's
    configuration files unchanged; only their environment variables are set (ports, endpoints)."""

    def __init__(self, workdir: Path, configs: list[str], env: dict[str, str], name: str) -> None:
        self.binary = otelcol_binary()
        self.workdir = workdir
        self.name = name
        self.configs = configs
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}
        self.env.update(env)
        self.process: Optional[Process] = None
        #: ``<PREFIX>`` of the listening variables when the ports are ours to pick (``_on_free_ports``).
        self._listen_prefix: Optional[str] = None

    @classmethod
    def _on_free_ports(cls, workdir: Path, configs: list[str], prefix: str, env: dict[str, str]) -> Otelcol:
        """Run ``configs`` with their ``<PREFIX>_*`` listening variables on free loopback ports."""
        collector = cls(workdir, configs, dict(env), prefix.lower())
        collector._listen_prefix = prefix
        collector._pick_ports()
        return collector

    def _pick_ports(self) -> None:
        """Free loopback ports for the ``<PREFIX>_*`` listening variables (again after a port was
        taken between picking it and the collector binding it: another process's listener, or a
        client connection's ephemeral port)."""
        ports = {k: free_port() for k in ("grpc", "http", "health", "metrics")}
        prefix = self._listen_prefix
        self.env.update(
            {
                f"{prefix}_GRPC_ENDPOINT": f"127.0.0.1:{ports['grpc']}",
                f"{prefix}_HTTP_ENDPOINT": f"127.0.0.1:{ports['http']}",
                f"{prefix}_HEALTH_ENDPOINT": f"127.0.0.1:{ports['health']}",
                f"{prefix}_METRICS_PORT": str(ports["metrics"]),
            }
        )
        self.grpc_port, self.http_port = ports["grpc"], ports["http"]
        self.health_port = ports["health"]

    @classmethod
    def agent(cls, workdir: Path, gateway_grpc: str) -> Otelcol:
        env = {"GATEWAY_ENDPOINT": gateway_grpc, "GATEWAY_INSECURE": "true"}
        return cls._on_free_ports(workdir, ["agent.yaml"], "AGENT", env)

    @classmethod
    def gateway(cls, workdir: Path, overlay: Optional[str] = None, **env: str) -> Otelcol:
        base = {"ARCHIVE_FILE": str(workdir / "gateway-archive.jsonl"), "TRACES_INSECURE": "true", **env}
        configs = ["gateway.yaml"] + ([overlay] if overlay else [])
        return cls._on_free_ports(workdir, configs, "GATEWAY", base)

    @classmethod
    def inline(
        cls, workdir: Path, name: str, processors: dict[str, str], upstream_grpc: str, http_port: int = 0
    ) -> Otelcol:
        """A configuration written for one test: OTLP/HTTP in (on ``http_port``, or a free port) ->
        ``processors`` (name -> YAML flow mapping, in pipeline order) -> OTLP/gRPC to
        ``upstream_grpc`` (``host:port``), with a health check. The repository's own files are run by
        ``agent`` and ``gateway``."""
        collector = cls(workdir, [], {}, name)
        collector.http_port, collector.health_port = http_port or free_port(), free_port()
        blocks = "".join(f"  {key}: {value}\n" for key, value in processors.items())
        config = workdir / f"{name}.yaml"
        config.write_text(
            f"""
extensions:
  health_check: {{endpoint: "127.0.0.1:{collector.health_port}"}}
receivers:
  otlp:
    protocols:
      http: {{endpoint: "127.0.0.1:{collector.http_port}"}}
processors:
{blocks}exporters:
  otlp:
    endpoint: "{upstream_grpc}"
    tls: {{insecure: true}}
service:
  extensions: [health_check]
  telemetry: {{logs: {{level: warn}}, metrics: {{level: none}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [{", ".join(processors)}], exporters: [otlp]}}
"""
        )
        collector.configs = [str(config)]
        return collector

    def validate(self) -> subprocess.CompletedProcess[str]:
        args = [str(self.binary), "validate", *(f"--config={c}" for c in self.configs)]
        return subprocess.run(
            args, cwd=COLLECTOR_CONFIG, env=self.env, capture_output=True, text=True, timeout=60
        )

    def start(self) -> Otelcol:
        args = [str(self.binary), *(f"--config={c}" for c in self.configs)]
        for attempt in range(3):
            self.process = Process(
                args, self.workdir / f"{self.name}.log", env=self.env, cwd=COLLECTOR_CONFIG
            )

            def healthy() -> bool:
                if not self.process.alive():  # type: ignore[union-attr]
                    return True  # exited: said below
                with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/", timeout=2) as r:
                    return r.status == 200

            try:
                wait_until(healthy, 60, self.name)
            except TimeoutError:
                raise RuntimeError(f"{self.name} did not start:\n{self.process.tail()}") from None
            if self.process.alive():
                return self
            taken = "address already in use" in self.process.tail()
            if not (taken and self._listen_prefix and attempt < 2):
                break
            self._pick_ports()
        raise RuntimeError(f"{self.name} did not start:\n{self.process.tail()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


# --- MLflow tracking server ----------------------------------------------------------------------------
#: MLflow 3.18 (the newest release) and 3.17.2 (the previous one), each in its own venv.
MLFLOW_VENV = CACHE / "mlflow-venv"
MLFLOW317_VENV = CACHE / "mlflow317-venv"
#: CrewAI and its instrumentor, in a venv of their own (tests/backends/install.sh says why).
CREWAI_VENV = CACHE / "crewai-venv"


class MlflowServer:
    """``mlflow server`` on a free port with a SQLite store, from its own virtualenv."""

    def __init__(self, workdir: Path, venv: Path = MLFLOW_VENV) -> None:
        self.venv = venv
        mlflow = venv / "bin" / "mlflow"
        if not mlflow.exists():
            raise FileNotFoundError(f"{mlflow} missing: run tests/backends/install.sh")
        self.workdir = workdir
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        self.process = Process(
            [
                str(mlflow), "server", "--host", "127.0.0.1", "--port", str(self.port),
                "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
                "--default-artifact-root", str(workdir / "artifacts"),
                "--workers", "1",
            ],
            workdir / "mlflow.log",
            env=env,
        )  # fmt: skip

    def start(self) -> MlflowServer:
        def healthy() -> bool:
            if not self.process.alive():
                raise RuntimeError("exited")
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                return r.status == 200

        try:
            wait_until(healthy, 120, "MLflow server", interval=0.5)
        except (TimeoutError, RuntimeError):
            raise RuntimeError(f"MLflow server did not start:\n{self.process.tail()}") from None
        return self

    def stop(self) -> None:
        self.process.stop(grace_s=3.0)  # uvicorn's graceful shutdown waits on idle keep-alives

    def restart(self) -> MlflowServer:
        """The same server again (port, database), after ``stop``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        self.process = Process(self.process.args, self.workdir / "mlflow-restarted.log", env=env)
        return self.start()

    def read(self, experiment: str, filter_string: Optional[str] = None) -> list[dict[str, Any]]:
        """Traces read back with MLflow's own client (run in MLflow's venv)."""
        args = [str(self.venv / "bin" / "python"), str(HERE / "mlflow_query.py"), self.uri, experiment]
        if filter_string:
            args.append(filter_string)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}
        result = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
        if result.returncode != 0:
            raise RuntimeError(f"mlflow_query.py failed:\n{result.stderr[-3000:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def wait_for_traces(
        self, experiment: str, count: int, timeout: float = 30.0, **kw: Any
    ) -> list[dict[str, Any]]:
        def enough() -> Optional[list[dict[str, Any]]]:
            traces = self.read(experiment, **kw)
            return traces if len(traces) >= count else None

        try:
            return wait_until(enough, timeout, f"{count} traces in MLflow", interval=1.0)
        except TimeoutError:
            return self.read(experiment, **kw)


# --- Arize Phoenix -----------------------------------------------------------------------------------
#: Arize Phoenix 20 (``phoenix serve``), in its own virtualenv (tests/backends/install.sh).
PHOENIX_VENV = CACHE / "phoenix-venv"


class Phoenix:
    """``phoenix serve`` on free ports with a SQLite database in its own working directory.

    Its OTLP/HTTP receiver is its web port (``/v1/traces``); its gRPC receiver binds every interface
    whatever ``PHOENIX_HOST`` says, so tests send only to ``127.0.0.1``. What it stored is read back
    through its GraphQL API (``/graphql``), the one its own UI reads.
    """

    def __init__(self, workdir: Path, venv: Path = PHOENIX_VENV) -> None:
        phoenix = venv / "bin" / "phoenix"
        if not phoenix.exists():
            raise FileNotFoundError(f"{phoenix} missing: run tests/backends/install.sh")
        self.port = free_port()
        self.grpc_port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_", "PHOENIX_"))}
        env.update(
            PHOENIX_HOST="127.0.0.1",
            PHOENIX_PORT=str(self.port),
            PHOENIX_GRPC_PORT=str(self.grpc_port),
            PHOENIX_WORKING_DIR=str(workdir),
            # No usage reports, no outbound calls: the network here is loopback only.
            PHOENIX_TELEMETRY_ENABLED="false",
        )
        self.process = Process([str(phoenix), "serve"], workdir / "phoenix.log", env=env, cwd=workdir)

    @property
    def otlp_http(self) -> str:
        """The full traces URL (OTLP/HTTP, protobuf)."""
        return f"{self.uri}/v1/traces"

    @property
    def otlp_grpc(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    def start(self) -> Phoenix:
        def healthy() -> bool:
            if not self.process.alive():
                raise RuntimeError("exited")
            with urllib.request.urlopen(f"{self.uri}/healthz", timeout=2) as r:
                return r.status == 200

        try:
            wait_until(healthy, 180, "Phoenix", interval=0.5)
        except (TimeoutError, RuntimeError):
            raise RuntimeError(f"Phoenix did not start:\n{self.process.tail()}") from None
        return self

    def stop(self) -> None:
        self.process.stop(grace_s=5.0)

    def graphql(self, query: str, **variables: Any) -> Any:
        body = json.dumps({"query": query, "variables": variables}).encode()
        request = urllib.request.Request(
            f"{self.uri}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        if answer.get("errors"):
            raise RuntimeError(f"Phoenix GraphQL errors: {answer['errors']}")
        return answer["data"]


# --- rotel ---------------------------------------------------------------------------------------------
def rotel_binary() -> Path:
    found = glob.glob(
        str(CACHE / "rotel-venv" / "lib" / "python*" / "site-packages" / "rotel" / "rotel-agent")
    )
    if not found:
        raise FileNotFoundError("rotel-agent missing: run tests/backends/install.sh")
    return Path(found[0])


class Rotel(OtlpCollector):
    """rotel (Rust) as an OTLP collector: OTLP gRPC/HTTP in, OTLP out to ``upstream`` (gRPC)."""

    def __init__(self, workdir: Path, upstream_grpc: str) -> None:
        self.binary = rotel_binary()
        self.workdir = workdir
        self.grpc_port, self.http_port = free_port(), free_port()
        self.upstream = upstream_grpc
        self.process: Optional[Process] = None

    def start(self) -> Rotel:
        self.process = Process(
            [
                str(self.binary), "start",
                "--otlp-grpc-endpoint", f"127.0.0.1:{self.grpc_port}",
                "--otlp-http-endpoint", f"127.0.0.1:{self.http_port}",
                "--exporter", "otlp",
                "--otlp-exporter-endpoint", self.upstream,
                "--otlp-exporter-protocol", "grpc",
                "--batch-timeout", "100ms",
            ],
            self.workdir / "rotel.log",
        )  # fmt: skip

        def listening() -> bool:
            if self.process is None or not self.process.alive():
                raise RuntimeError("exited")
            for port in (self.grpc_port, self.http_port):
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    pass
            return True

        try:
            wait_until(listening, 30, "rotel")
        except (TimeoutError, RuntimeError):
            raise RuntimeError(
                f"rotel did not start:\n{self.process.tail() if self.process else ''}"
            ) from None
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


PYTHON = sys.executable


# --- A scale-out tier: agents -> load balancers -> a gateway pool (collector-config/scale-out.yaml) ----
_SAMPLE = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def prometheus_samples(port: int) -> list[tuple[str, dict[str, str], float]]:
    """The samples a collector exposes about itself (``service.telemetry.metrics`` pull reader)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and not line.startswith("#"):
            labels = dict(_LABEL.findall(match.group(2) or ""))
            samples.append((match.group(1), labels, float(match.group(3))))
    return samples


class PoolCollector(Otelcol):
    """An ``Otelcol`` in a topology with several of its kind: named (logs and archives apart), its
    own metrics read back, killed by PID (SIGKILL: a crash, nothing flushed) and started again on the
    same ports."""

    @classmethod
    def named_gateway(cls, workdir: Path, name: str, **env: str) -> PoolCollector:
        """``gateway.yaml`` unchanged; ``DEPLOYMENT_ENVIRONMENT`` (which its attributes processor
        writes on every span) is the gateway's name, so a backend shows which gateway each span
        passed, and the archive is the gateway's own."""
        env = {"DEPLOYMENT_ENVIRONMENT": name, "ARCHIVE_FILE": str(workdir / f"{name}-archive.jsonl"), **env}
        collector = cls.gateway(workdir, **env)
        collector.name = name
        return collector  # type: ignore[return-value]

    @classmethod
    def load_balancer(cls, workdir: Path, name: str, gateways: list[str]) -> PoolCollector:
        """``scale-out.yaml`` with the static resolver overlay listing ``gateways`` (host:port)."""
        env = {"GATEWAY_HOSTNAMES": "[" + ", ".join(gateways) + "]", "GATEWAY_INSECURE": "true"}
        collector = cls._on_free_ports(workdir, ["scale-out.yaml", "scale-out-static.yaml"], "LB", env)
        collector.name = name
        return collector  # type: ignore[return-value]

    @classmethod
    def named_agent(cls, workdir: Path, name: str, upstream: str) -> PoolCollector:
        collector = cls.agent(workdir, upstream)
        collector.name = name
        return collector  # type: ignore[return-value]

    @property
    def metrics_port(self) -> int:
        return int(next(v for k, v in self.env.items() if k.endswith("_METRICS_PORT")))

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        return prometheus_samples(self.metrics_port)

    def metric(self, name: str, **labels: str) -> float:
        """Sum of ``name``'s samples whose labels include ``labels``; 0 when there is none yet (a
        collector creates a counter when it first counts)."""
        return sum(
            value
            for sample, have, value in self.samples()
            if sample == name and all(have.get(k) == v for k, v in labels.items())
        )

    def kill(self) -> None:
        """SIGKILL by PID: what a crash or an OOM kill does; the collector flushes nothing."""
        if self.process is not None:
            self.process.stop(kill=True)

    def restart(self) -> PoolCollector:
        """Start again with the same configuration and ports; the log goes to a new file."""
        name = self.name
        self.restarts = getattr(self, "restarts", 0) + 1
        self.name = f"{name}-restart{self.restarts}"
        try:
            return self.start()  # type: ignore[return-value]
        finally:
            self.name = name

    def log_lines(self) -> list[str]:
        """The current process's log (the collector's own logger: retries, drops, errors)."""
        if self.process is None:
            return []
        return self.process.log_path.read_text(errors="replace").splitlines()


class ScaleOut:
    """``agents[i] -> balancers[i] -> every gateway -> traces_endpoint``: the topology of
    collector-config/README.md ("Scaling out"), each collector on free loopback ports."""

    def __init__(self, workdir: Path, traces_endpoint: str, lanes: int = 2, gateways: int = 2, **env: str):
        gateway_env = {"TRACES_ENDPOINT": traces_endpoint, **env}
        self.gateways = [
            PoolCollector.named_gateway(workdir, f"gateway-{chr(ord('a') + i)}", **gateway_env)
            for i in range(gateways)
        ]
        targets = [g.grpc_target for g in self.gateways]
        self.balancers = [PoolCollector.load_balancer(workdir, f"lb-{i}", targets) for i in range(lanes)]
        self.agents = [
            PoolCollector.named_agent(workdir, f"agent-{i}", lb.grpc_target)
            for i, lb in enumerate(self.balancers)
        ]

    @property
    def collectors(self) -> list[PoolCollector]:
        """Downstream first: the order to start them in."""
        return [*self.gateways, *self.balancers, *self.agents]

    def start(self) -> ScaleOut:
        try:
            for collector in self.collectors:
                collector.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Upstream first, so each tier drains into a running next one."""
        for collector in reversed(self.collectors):
            collector.stop()

    def total(self, collectors: list[PoolCollector], name: str, **labels: str) -> float:
        return sum(c.metric(name, **labels) for c in collectors)
