"""Shared fixtures: an OTLP receiver on loopback, and the SDK pointed at it.

Each test gets a freshly built pipeline (``tracing.reset()``), built from the environment the test
set, so tests exercise the same settings path a user's process does.
"""

from __future__ import annotations

import os

# Before gRPC is imported (tests.otlp_receiver imports it): on Python 3.9 `subprocess` starts
# children with a plain fork(), which runs gRPC's fork handlers while this process's gRPC threads
# (the test receiver's server, exporter channels) are busy, and the child can abort in gRPC's poller
# before it execs. gRPC's own switch turns those handlers off. The SDK does not rely on them: its
# exporter builds a new channel in a forked child (test_forked_child_exports_its_own_spans).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

import mlflow_otel
from mlflow_otel import _log, _runtime, _settings, _state, tracing
from tests.backends import Jaeger, MlflowServer, Phoenix
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

ROOT = Path(__file__).resolve().parent.parent

#: The auto-tracing tests drive the libraries themselves, whose tested versions need Python 3.10+
#: (pyproject.toml installs them only there); on 3.9 the SDK's own tests run without them.
collect_ignore_glob = ["test_autolog_*.py"] if sys.version_info < (3, 10) else []

_OUR_VARS = ("MLFLOW_", "OTEL_")


@pytest.fixture(scope="session")
def receiver() -> Iterator[OtlpReceiver]:
    r = OtlpReceiver().start()
    yield r
    r.stop()


def _start_or_skip(factory: Callable[[], object]) -> object:
    """Start a real backend; one whose binary is missing skips (and CI counts a skip as a failure)."""
    try:
        return factory().start()  # type: ignore[attr-defined]
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    backend = _start_or_skip(lambda: Jaeger(tmp_path_factory.mktemp("jaeger")))
    yield backend  # type: ignore[misc]
    backend.stop()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One MLflow server for the session (its first start takes up to a minute); tests use their
    own experiments."""
    backend = _start_or_skip(lambda: MlflowServer(tmp_path_factory.mktemp("mlflow")))
    yield backend  # type: ignore[misc]
    backend.stop()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    """One Arize Phoenix server for the session; tests use their own projects."""
    backend = _start_or_skip(lambda: Phoenix(tmp_path_factory.mktemp("phoenix")))
    yield backend  # type: ignore[misc]
    backend.stop()  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No MLFLOW_/OTEL_ variable leaks in from the machine; the embedded sink writes to tmp."""
    for name in list(os.environ):
        if name.startswith(_OUR_VARS):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_OTEL_TRACES_FILE", str(tmp_path / "traces.jsonl"))
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    tracing.reset()
    _state.reset()
    _runtime.capture_all(None)  # a test that failed inside a capture leaves none behind
    _settings.forget_reported()
    _log.reset_limits()
    _runtime.RUNTIME.counters.reset()
    yield
    tracing.reset()
    _state.reset()


Collect = Callable[..., list[ReceivedSpan]]


def _collector(receiver: OtlpReceiver) -> Collect:
    def collect(count: int = 1, timeout: float = 10.0) -> list[ReceivedSpan]:
        assert mlflow_otel.flush_trace_async_logging(timeout_s=timeout)
        return receiver.wait_for_spans(count, timeout)

    return collect


@pytest.fixture
def otlp_http(receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch) -> Iterator[Collect]:
    receiver.clear()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    tracing.reset()
    yield _collector(receiver)
    receiver.clear()


@pytest.fixture
def otlp_grpc(receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch) -> Iterator[Collect]:
    receiver.clear()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    tracing.reset()
    yield _collector(receiver)
    receiver.clear()


@pytest.fixture(params=["http", "grpc"])
def otlp(request: pytest.FixtureRequest) -> Collect:
    """Runs the test once over OTLP/HTTP and once over OTLP/gRPC."""
    return request.getfixturevalue(f"otlp_{request.param}")


def by_name(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    return {s.name: s for s in spans}


def decoded(span: ReceivedSpan, key: str) -> object:
    return json.loads(span.attributes[key])


def run_python(
    code: str, env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (exit behaviour, import-time settings)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(_OUR_VARS)}
    full_env.update(env)
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-c", code], env=full_env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


#: Fixtures that start a real backend: a test using one is marked ``backend``.
_BACKEND_FIXTURES = frozenset({"jaeger", "mlflow_server", "phoenix"})
_UNIT = Path(__file__).parent / "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tiers (docs/architecture.md, "Tests"): tests/unit/ is ``unit`` (``pytest -m unit``); a
    test that uses a backend fixture is ``backend`` (``pytest -m "not backend"`` runs without them)."""
    for item in items:
        if _UNIT in item.path.parents:
            item.add_marker(pytest.mark.unit)
        if _BACKEND_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.backend)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: a backend that did not start proves nothing."""
    if os.environ.get("CI", "").lower() != "true":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if skipped and session.exitstatus == 0:
        sys.stderr.write(f"\nCI=true: {skipped} test(s) were skipped; treating the run as failed.\n")
        session.exitstatus = 1
