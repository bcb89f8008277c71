"""The pipeline's stages and OpenTelemetry's extension points (docs/architecture.md).

Unit tests per stage with fakes (the process stage, routing, the batch stage), then the extension
points end to end through the real pipeline: any OTel ``SpanExporter`` is a destination, OTel
``SpanProcessor`` objects join the chain, and the chain runs once per span whatever the number of
destinations. The last tests keep the package's structure honest (no import circle, no private name
imported across modules).
"""

from __future__ import annotations

import ast
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import mlflow_otel as mlflow
from mlflow_otel import tracing
from mlflow_otel._runtime import RUNTIME
from mlflow_otel.destinations import FileDestination
from mlflow_otel.pipeline.batch import BatchProcessor
from mlflow_otel.pipeline.process import Chain, ProcessStage, Routed
from mlflow_otel.processors import DropSpan

COUNTERS = RUNTIME.counters

SECRET = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"
PACKAGE = Path(mlflow.__file__).resolve().parent


def _traced_secret() -> None:
    @mlflow.trace
    def call(api_key: str, question: str) -> str:
        with mlflow.start_span("inner"):
            pass
        return "answer"

    call(SECRET, "hi")


# --- the process stage, with fakes ------------------------------------------------------------------
class FakeRouter:
    def __init__(self) -> None:
        self.routed: list[tuple[list[str], object]] = []
        self.soon = 0

    def route(self, spans: Sequence[ReadableSpan], destinations: object) -> None:
        self.routed.append(([s.name for s in spans], destinations))

    def export_soon(self) -> None:
        self.soon += 1


def _span(name: str) -> ReadableSpan:
    return ReadableSpan(name=name, attributes={"k": "v"})


def test_process_stage_runs_the_chain_once_then_routes_by_destination():
    seen: list[str] = []

    def hook(span):
        seen.append(span.name)
        span.set_attribute("hooked", True)

    def dropper(span):
        if span.name == "drop-me":
            raise DropSpan

    router = FakeRouter()
    stage = ProcessStage(lambda: Chain((hook, dropper)), router, max_batch=512, counters=COUNTERS)
    dest = ("tenant-a",)
    items = [_span("a"), _span("drop-me"), Routed([_span("b")], dest), _span("c")]
    before = COUNTERS.get("dropped.by_processor")
    assert stage.export(items) is SpanExportResult.SUCCESS
    assert seen == ["a", "drop-me", "b", "c"]  # once per span
    assert router.routed == [(["a"], None), (["b"], dest), (["c"], None)]  # order kept, routes kept
    assert COUNTERS.get("dropped.by_processor") == before + 1
    assert router.soon == 1  # a partial batch: destinations export now, not at their own schedule


def test_process_stage_isolates_a_raising_otel_processor():
    class Raising(SpanProcessor):
        def on_end(self, span):
            raise RuntimeError("boom")

    class Recording(SpanProcessor):
        def __init__(self):
            self.names = []

        def on_end(self, span):
            self.names.append(span.name)

    recording = Recording()
    router = FakeRouter()
    stage = ProcessStage(lambda: Chain((), (Raising(), recording)), router, max_batch=512, counters=COUNTERS)
    before = COUNTERS.get("processor_errors")
    stage.export([_span("a"), _span("b")])
    assert recording.names == ["a", "b"]
    assert router.routed == [(["a", "b"], None)]
    assert COUNTERS.get("processor_errors") == before + 2


# --- the batch stage, with a fake exporter ----------------------------------------------------------
class SlowExporter(SpanExporter):
    def __init__(self) -> None:
        self.batches: list[int] = []
        self.gate = threading.Event()

    def export(self, spans):
        self.gate.wait(5)
        self.batches.append(len(spans))
        return SpanExportResult.SUCCESS

    def shutdown(self):
        self.gate.set()


def test_batch_stage_admits_whole_traces_or_none():
    exporter = SlowExporter()
    stage = BatchProcessor(
        exporter, max_queue_size=10, max_export_batch_size=100, schedule_delay_s=60, counters=COUNTERS
    )
    try:
        before = COUNTERS.get("dropped.queue_full")
        stage.on_end_many([_span(f"t1-{i}") for i in range(6)])
        stage.on_end_many([_span(f"t2-{i}") for i in range(6)])  # 12 > 10: the whole trace is refused
        stage.on_end_many([_span(f"t3-{i}") for i in range(4)])
        assert stage.queued == 10
        assert COUNTERS.get("dropped.queue_full") == before + 6
        exporter.gate.set()
        assert stage.force_flush(5000)
        assert exporter.batches == [10]
    finally:
        stage.shutdown(1000)


def test_batch_stage_exports_a_partial_batch_when_told():
    exporter = SlowExporter()
    exporter.gate.set()
    stage = BatchProcessor(
        exporter, max_queue_size=100, max_export_batch_size=50, schedule_delay_s=60, counters=COUNTERS
    )
    try:
        stage.on_end_many([_span("a"), _span("b")])
        stage.export_soon()
        deadline = time.monotonic() + 5
        while not exporter.batches and time.monotonic() < deadline:
            time.sleep(0.01)
        assert exporter.batches == [2]  # not held for the 60 s schedule
    finally:
        stage.shutdown(1000)


# --- the export pool every destination shares (pipeline/workers.py) ---------------------------------
class GatedExporter(SpanExporter):
    """Exports when its gate opens; counts how many of its exports run at once."""

    def __init__(self, gate: threading.Event) -> None:
        self.gate = gate
        self.exported = 0
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def export(self, spans):
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.gate.wait(10)
        with self._lock:
            self.running -= 1
            self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self):
        self.gate.set()


def _pooled(pool, exporter, name: str) -> BatchProcessor:
    return BatchProcessor(
        exporter, max_queue_size=1000, max_export_batch_size=2, schedule_delay_s=60, max_workers=2,
        name=name, pool=pool, counters=COUNTERS,
    )  # fmt: skip


def test_a_busy_destination_never_takes_the_pools_last_thread():
    # Two threads in all. A destination whose exports hang (a slow collector) may use two threads,
    # but the last one is kept for a destination that has none: the quiet one still exports.
    from mlflow_otel.pipeline.workers import ExportPool

    pool = ExportPool(max_threads=2, schedule_delay_s=60)
    stuck, free = GatedExporter(threading.Event()), GatedExporter(threading.Event())
    free.gate.set()
    busy_stage, quiet_stage = _pooled(pool, stuck, "busy"), _pooled(pool, free, "quiet")
    try:
        busy_stage.on_end_many([_span(f"b{i}") for i in range(20)])  # ten full batches
        time.sleep(0.3)
        quiet_stage.on_end_many([_span("q1"), _span("q2")])  # one full batch
        deadline = time.monotonic() + 5
        while free.exported < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert free.exported == 2, "the quiet destination waited for the busy one"
        assert stuck.most_at_once == 1 and pool.threads <= 2
        stuck.gate.set()
        assert busy_stage.force_flush(5000) and stuck.exported == 20
    finally:
        stuck.gate.set()
        busy_stage.shutdown(1000)
        quiet_stage.shutdown(1000)
        pool.stop()


def test_the_pools_last_idle_thread_sleeps_until_the_schedule(monkeypatch):
    # Past IDLE_S without work, an extra thread ends; the last one keeps the schedule and sleeps
    # until it is due (it used to wake every millisecond once idle).
    from mlflow_otel.pipeline import workers

    monkeypatch.setattr(workers, "IDLE_S", 0.05)
    waits = []
    original = threading.Condition

    class CountingCondition(original):  # type: ignore[misc, valid-type]
        def wait(self, timeout=None):
            waits.append(timeout)
            return super().wait(timeout)

    monkeypatch.setattr(threading, "Condition", CountingCondition)
    pool = workers.ExportPool(max_threads=4, schedule_delay_s=0.5)
    monkeypatch.setattr(threading, "Condition", original)
    try:
        time.sleep(0.3)
        waits.clear()
        time.sleep(1.0)
        assert pool.threads == 1
        assert len(waits) <= 10, f"{len(waits)} wake-ups in 1 s (the schedule: every 0.5 s)"
    finally:
        pool.stop()


def test_a_stopped_pool_starts_no_thread_in_a_forked_child():
    import os

    from mlflow_otel.pipeline.workers import ExportPool

    pool = ExportPool(max_threads=2, schedule_delay_s=60)
    pool.stop()
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 when the stopped pool stayed stopped
        os._exit(0 if pool.threads == 0 and not pool.alive else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0


def test_kept_connections_are_left_to_the_parent_in_a_forked_child(tmp_path):
    """The keep-alive HTTP connections and the store's SQLite connection a process holds are never
    used by a child it forks (their sockets and file handles are the parent's): the fork module's
    child hook forgets them there."""
    import os

    from mlflow_otel._http import HttpClient
    from mlflow_otel.records.local import _Db

    client, db = HttpClient(), _Db(str(tmp_path / "store.db"))
    manager = client._manager("http", "127.0.0.1:4318")
    parent_conn = db.connect()
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 when it starts with none of the parent's
        fresh = client._manager("http", "127.0.0.1:4318") is not manager
        os._exit(0 if fresh and db.connect() is not parent_conn else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert client._manager("http", "127.0.0.1:4318") is manager and db.connect() is parent_conn


def test_a_forked_child_starts_with_the_runtimes_state_afresh():
    """The runtime owns the running state (``_runtime.Runtime``); a child forked while a trace is
    open with an assessment waiting for its record, a read store is cached and the record senders
    run starts with none of them, and its senders start threads of their own (the parent's did not
    survive the fork)."""
    import os

    from mlflow_otel._runtime import RUNTIME
    from mlflow_otel.pipeline.route import RECORD_CONCURRENCY

    release = threading.Event()
    busy = [RUNTIME.record_senders().submit(lambda: release.wait(5)) for _ in range(RECORD_CONCURRENCY)]
    release.set()  # every sender thread was started: a child that kept the count would start none
    assert all(job.done.wait(5) for job in busy)
    RUNTIME.read_store = ((), object())
    with mlflow.start_span("open-at-the-fork") as span:
        held = mlflow.log_feedback(trace_id=span.trace_id, name="held", value=True)
        pid = os.fork()
        if pid == 0:  # the child: exit code 0 when it starts afresh
            ran = threading.Event()
            fresh = not RUNTIME.registry.open_traces() and RUNTIME.read_store is None
            fresh = fresh and RUNTIME.pending.take(held.trace_id) == []
            os._exit(0 if fresh and RUNTIME.record_senders().submit(ran.set).done.wait(5) else 1)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
        assert RUNTIME.registry.open_traces() and RUNTIME.read_store is not None  # the parent's
        assert RUNTIME.pending.take(held.trace_id) == [held]
        RUNTIME.pending.hold(held.trace_id, held)
    RUNTIME.read_store = None


# --- extension points, end to end -------------------------------------------------------------------
def test_hook_runs_once_per_span_with_two_destinations(otlp_http, tmp_path):
    calls: list[str] = []
    tracing.add_destination(FileDestination(str(tmp_path / "second.jsonl")))
    tracing.configure(span_processors=[lambda span: calls.append(span.name)])
    _traced_secret()
    spans = otlp_http(2)
    assert sorted(calls) == ["call", "inner"]  # once each, although two destinations got them
    assert {s.name for s in spans} == {"call", "inner"}
    lines = (tmp_path / "second.jsonl").read_text().splitlines()
    names = {
        span["name"]
        for line in lines
        for rs in json.loads(line)["resourceSpans"]
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
    }
    assert names == {"call", "inner"}


def test_any_otel_exporter_is_a_destination_after_the_chain():
    memory = InMemorySpanExporter()
    tracing.set_destination(memory)
    _traced_secret()
    assert mlflow.flush_trace_async_logging(timeout_s=10)
    spans = memory.get_finished_spans()
    assert {s.name for s in spans} == {"call", "inner"}
    for span in spans:
        assert SECRET not in json.dumps(dict(span.attributes))  # redacted before it got there
    call = next(s for s in spans if s.name == "call")
    assert json.loads(call.attributes["mlflow.spanInputs"])["question"] == "hi"
    # The pipeline borrows the user's exporter: replacing the destination does not shut it down.
    tracing.set_destination(None)
    tracing.set_destination(memory)
    memory.clear()
    _traced_secret()
    assert mlflow.flush_trace_async_logging(timeout_s=10)
    assert len(memory.get_finished_spans()) == 2


def test_trace_destination_accepts_an_exporter(otlp_http):
    memory = InMemorySpanExporter()

    @mlflow.trace(trace_destination=memory)
    def routed():
        return 1

    @mlflow.trace
    def default():
        return 2

    routed()
    default()
    spans = otlp_http(1)
    assert [s.name for s in spans] == ["default"]
    assert [s.name for s in memory.get_finished_spans()] == ["routed"]


def test_added_destinations_get_every_trace_wherever_it_is_routed(otlp_http):
    added, chosen = InMemorySpanExporter(), InMemorySpanExporter()
    tracing.add_destination(added)
    tracing.set_destination(chosen)
    _traced_secret()
    assert mlflow.flush_trace_async_logging(timeout_s=10)
    assert sorted(s.name for s in chosen.get_finished_spans()) == ["call", "inner"]
    assert sorted(s.name for s in added.get_finished_spans()) == ["call", "inner"]


def test_add_destination_beside_the_defaults(otlp_http):
    memory = InMemorySpanExporter()
    tracing.add_destination(memory)
    tracing.add_destination(memory)  # twice changes nothing
    _traced_secret()
    assert len(otlp_http(2)) == 2
    assert sorted(s.name for s in memory.get_finished_spans()) == ["call", "inner"]


def test_otel_span_processors_join_the_chain(otlp_http):
    memory = InMemorySpanExporter()
    starts: list[tuple[str, bool]] = []

    class Stamp(SpanProcessor):
        def on_start(self, span, parent_context=None):
            starts.append((span.name, threading.current_thread() is threading.main_thread()))
            span.set_attribute("app.tenant", "acme")

    tracing.configure(span_processors=[Stamp(), SimpleSpanProcessor(memory)])
    _traced_secret()
    received = otlp_http(2)
    assert starts == [("call", True), ("inner", True)]  # on the app thread, as the span starts
    assert all(s.attributes["app.tenant"] == "acme" for s in received)
    ended = memory.get_finished_spans()
    assert sorted(s.name for s in ended) == ["call", "inner"]
    for span in ended:  # on_end sees the span after the built-ins: redacted
        assert SECRET not in json.dumps(dict(span.attributes))
        assert span.attributes["app.tenant"] == "acme"


def test_otel_batch_processor_is_flushed_with_the_pipeline(otlp_http):
    memory = InMemorySpanExporter()
    tracing.configure(span_processors=[BatchSpanProcessor(memory, schedule_delay_millis=60_000)])
    _traced_secret()
    otlp_http(2)  # flush_trace_async_logging flushes the user's processors too
    assert len(memory.get_finished_spans()) == 2


def test_raising_otel_processor_is_counted_and_never_breaks_the_app(otlp_http, caplog):
    class Broken(SpanProcessor):
        def on_start(self, span, parent_context=None):
            raise ValueError("start")

        def on_end(self, span):
            raise ValueError("end")

    tracing.configure(span_processors=[Broken()])
    for _ in range(3):
        _traced_secret()
    assert len(otlp_http(6)) == 6
    assert COUNTERS.get("processor_errors") == 12  # 6 starts + 6 ends
    assert caplog.text.count("raised in on_start") == 1  # rate-limited: logged once


def test_configure_refuses_what_is_neither_hook_nor_processor():
    with pytest.raises(TypeError):
        tracing.configure(span_processors=[42])


def test_setting_the_same_destination_again_is_free(otlp_http, caplog):
    from mlflow_otel.destinations import OtlpDestination

    dest = OtlpDestination("http://127.0.0.1:9/v1/traces")
    tracing.set_destination(dest)
    _traced_secret()
    start = time.perf_counter()
    for _ in range(200):
        tracing.set_destination(dest)
    per_call = (time.perf_counter() - start) / 200
    assert per_call < 0.001  # no rebuild, no flush, no I/O
    assert caplog.text.count("Sending traces to") <= 1


def test_one_sampler_decides_for_both_tracers(monkeypatch):
    from mlflow_otel._runtime import running

    monkeypatch.setenv("MLFLOW_TRACE_SAMPLING_RATIO", "0.5")
    tracing.reset()
    rt = running()
    sampler = rt.provider.sampler
    kept = 0
    for _ in range(400):
        with mlflow.start_span("s") as span:
            tid = int(span.trace_id[3:], 16) if span.trace_id.startswith("tr-") else None
            recording = span.recording if hasattr(span, "recording") else False
        if tid is not None:
            assert recording == sampler.sample_root(tid)
            kept += recording
    assert 120 < kept < 280


# --- structure ---------------------------------------------------------------------------------------
def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """Nodes under ``if TYPE_CHECKING:``: imports for annotations only, never run."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in ast.walk(node))
    return skipped


def _runtime_imports(tree: ast.Module, module: str, is_package: bool) -> list[tuple[str, list[str]]]:
    """Every import that runs, function-level ones included (not under ``if TYPE_CHECKING``), as
    (module, names)."""
    skipped = _type_checking_nodes(tree)
    out = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            out.append((target, [alias.name for alias in node.names]))
    return out


def _modules() -> dict[str, tuple[ast.Module, bool]]:
    return {
        _module_name(path): (ast.parse(path.read_text()), path.name == "__init__.py")
        for path in PACKAGE.rglob("*.py")
    }


#: The floors, in the order data flows (docs/architecture.md, "Floors"): a module imports only from
#: its own floor or one below. By longest matching path under ``mlflow_otel`` ("" is the package).
FLOORS: dict[int, tuple[str, ...]] = {
    0: (
        *("semconv", "exceptions", "version", "destinations", "otlp", "_log", "_settings"),
        *("_files", "_serialize", "_telemetry", "_clock"),
    ),
    1: ("_state", "_fork", "_http", "_mlflow_server"),
    2: ("spans",),
    3: ("processors",),
    4: ("records",),
    5: ("exporters",),
    6: ("pipeline",),
    7: ("_runtime",),
    8: (
        *(
            "",
            "_read",
            "_push",
            "_tracking",
            "client",
            "tracing",
            "entities",
            "config",
            "environment_variables",
        ),
        *("integrations", "openai", "cli", "__main__", "testing", "pytest_plugin"),
    ),
}


def _floor(module: str) -> int:
    rel = module.partition(".")[2]
    best = max(
        ((len(path), floor) for floor, paths in FLOORS.items() for path in paths if _under(rel, path)),
        default=(-1, -1),
    )
    assert best[1] >= 0, f"{module} is on no floor: add it to FLOORS and docs/architecture.md"
    return best[1]


def _under(rel: str, path: str) -> bool:
    return path == "" or rel == path or rel.startswith(path + ".")


def _import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, (tree, is_package) in modules.items():
        deps = set()
        for target, names in _runtime_imports(tree, name, is_package):
            for candidate in [f"{target}.{n}" for n in names] + [target]:
                if candidate in modules and candidate != name:
                    deps.add(candidate)
                    break
        graph[name] = deps
    return graph


def test_every_import_goes_down_a_floor():
    # Top-level faces (``mlflow_otel/<library>.py``, MLflow's ``mlflow.<flavor>`` paths) sit on the
    # top floor with the integrations they load.
    upward = [
        f"{module} (floor {_floor(module)}) -> {dep} (floor {_floor(dep)})"
        for module, deps in _import_graph().items()
        for dep in sorted(deps)
        if _floor(dep) > _floor(module)
    ]
    assert upward == []


def test_no_import_circle():
    graph = _import_graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycle = [*stack[stack.index(dep) :], dep]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_no_private_name_imported_across_modules():
    offenders = []
    modules = _modules()
    for name, (tree, is_package) in modules.items():
        for target, names in _runtime_imports(tree, name, is_package):
            if not target.startswith("mlflow_otel"):
                continue
            for imported in names:
                # A private *module* of the package (``from mlflow_otel import _state``) is fine:
                # modules are the unit of privacy; private names inside a module are not.
                private = imported.startswith("_") and not imported.startswith("__")
                if private and f"{target}.{imported}" not in modules:
                    offenders.append(f"{name}: from {target} import {imported}")
    assert offenders == []


def test_public_api_is_what_init_exports():
    # (pytest's assertion rewriting adds "@py_..." names to modules of plugin distributions.)
    public = {name for name in dir(mlflow) if not name.startswith(("_", "@"))}
    # Submodules appear as attributes once imported: faces MLflow also has as modules (``client``),
    # extension points (``processors``, ``exporters``, ``semconv``) and internal stages (docstrings
    # say so). Nothing else is public.
    modules = {"client", "spans", "pipeline", "records", "processors", "exporters", "integrations", "semconv"}
    modules |= {"otlp"}
    modules |= {"cli", "testing", "pytest_plugin"}
    modules |= set(mlflow._AUTOLOG_FLAVORS)  # ``mlflow_otel.<flavor>.autolog()``, loaded at first use
    assert public - modules - {"version"} - set(mlflow.__all__) == set()


def test_a_trace_open_while_the_pipeline_is_replaced_is_not_lost(otlp_http, tmp_path):
    with mlflow.start_span("open_across_the_change"):
        with mlflow.start_span("before"):
            pass
        tracing.add_destination(FileDestination(str(tmp_path / "added.jsonl")))  # replaces the pipeline
        with mlflow.start_span("after"):
            pass
    names = sorted(s.name for s in otlp_http(3))
    assert names == ["after", "before", "open_across_the_change"]
    assert "dropped.shutdown" not in tracing.stats()
