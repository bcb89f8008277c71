"""The whole MLflow tracing signature, audited against the real packages: MLflow 3.18 (the MLflow
server's venv) and mlflow-tracing 3.17.2 (its own venv), inspected in their own interpreters by
``tests/backends/signatures.py``.

* Every public name of ours that MLflow also has takes the same parameters, in the same order, with
  the same defaults and kinds; each difference is listed below with its reason, and a listed
  difference that no longer exists fails too (the list stays true).
* Every public tracing name of MLflow's (``mlflow``, ``mlflow.tracing``, the tracing entities) is
  either here or listed as not provided, with the reason.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

import mlflow_otel
import mlflow_otel.entities
import mlflow_otel.tracing
from mlflow_otel.client import MlflowClient
from mlflow_otel.entities import LiveSpan
from tests.backends import CACHE, HERE

pytestmark = pytest.mark.backend

MLFLOW_318 = CACHE / "mlflow-venv" / "bin" / "python"
MLFLOW_TRACING = CACHE / "mlflow-tracing-venv" / "bin" / "python"
SCRIPT = HERE / "signatures.py"

#: Differences from MLflow's signatures, each with its reason: (name, difference) -> why.
#: "-p": MLflow's parameter p is missing here; "+p": ours only; "p: ..." default or kind; "order".
DOCUMENTED: dict[tuple[str, str], str] = {
    ("MlflowException", "error_code: default 'INTERNAL_ERROR' vs 1"): (
        "error codes are MLflow's names (INVALID_PARAMETER_VALUE, ...), not protobuf numbers"
    ),
    ("MlflowException", "-sqlstate"): "accepted through **kwargs (kept in json_kwargs)",
    ("MlflowException", "-error_class"): "accepted through **kwargs (kept in json_kwargs)",
    (
        "flush_trace_async_logging",
        "+timeout_s",
    ): "a deadline for the flush (export is always asynchronous here)",
    ("MlflowClient.start_span", "+request_id"): "MLflow 2's name for trace_id is still accepted",
    ("MlflowClient.start_span", "trace_id: default None vs <required>"): "trace_id may come as request_id",
    ("MlflowClient.start_span", "parent_id: default None vs <required>"): "misuse warns instead of raising",
    ("MlflowClient.end_span", "+request_id"): "MLflow 2's name for trace_id is still accepted",
    ("MlflowClient.end_span", "trace_id: default None vs <required>"): "trace_id may come as request_id",
    ("MlflowClient.end_span", "span_id: default None vs <required>"): "misuse warns instead of raising",
    ("MlflowClient.end_trace", "+request_id"): "MLflow 2's name for trace_id is still accepted",
    ("MlflowClient.end_trace", "trace_id: default None vs <required>"): "trace_id may come as request_id",
    ("autolog", "+mlflow_only"): "ours: restrict autolog to MLflow's own integrations",
    ("entities.Assessment", "-issue"): "issue references (MLflow's issue tracker) are not provided",
    ("entities.LiveSpan", "-trace_id"): "built by the SDK around an OTel span, never by users",
    ("entities.LiveSpan", "+state"): "built by the SDK around an OTel span, never by users",
    ("entities.LiveSpan", "+name"): "built by the SDK around an OTel span, never by users",
    ("entities.LiveSpan", "+json_keys"): "built by the SDK around an OTel span, never by users",
    ("entities.LiveSpan", "span_type: default <required> vs 'UNKNOWN'"): "built by the SDK, never by users",
    ("entities.NoOpSpan", "-otel_span"): "a no-op span needs nothing; any arguments are accepted",
    ("entities.NoOpSpan", "+args"): "a no-op span needs nothing; any arguments are accepted",
    ("entities.NoOpSpan", "+kwargs"): "a no-op span needs nothing; any arguments are accepted",
    (
        "entities.Span",
        "-otel_span",
    ): "a finished span is built from its fields (Span.from_dict), not an OTel span",
    **{
        ("entities.Span", f"+{name}"): "a finished span is built from its fields (Span.from_dict)"
        for name in (
            "trace_id",
            "span_id",
            "parent_id",
            "name",
            "start_time_ns",
            "end_time_ns",
            "status",
            "attributes",
            "events",
            "links",
        )
    },
    ("entities.TraceData", "-kwargs"): "MLflow 2's request/response keyword arguments are not taken",
    (
        "entities.TraceInfo",
        "trace_location: default None vs <required>",
    ): "a local-store trace has no location",
    ("entities.TraceInfo", "order"): "trace_location has a default here, so it follows the required fields",
    ("entities.MlflowExperimentLocation", "+tracking_uri"): "a destination may name its own server",
    **{
        ("tracing.configure", f"+{name}"): "ours: the built-in processors' options (keyword-only)"
        for name in (
            "capture_content",
            "redaction",
            "redaction_defaults",
            "max_attribute_bytes",
            "max_span_bytes",
            "tail_sampling",
        )
    },
    ("tracing.set_destination", "context_local: kind POSITIONAL_OR_KEYWORD vs KEYWORD_ONLY"): (
        "also accepted positionally (a superset of MLflow's calls)"
    ),
}

#: Public names of ours MLflow does not have, and why they exist.
OURS_ONLY = {
    "SpanType": "mlflow.entities.SpanType, also at the top level for `mlflow.SpanType.LLM` convenience",
    "tracing.DropSpan": "a hook drops a span by raising it (the processor chain)",
    "tracing.TracingConfigContext": "what tracing.configure returns (MLflow's mlflow.tracing.config one)",
    "tracing.add_destination": "send to a destination beside the defaults",
    "tracing.is_enabled": "the switch's state (MLflow keeps it in mlflow.tracing.provider)",
    "tracing.stats": "self-telemetry counters",
    "tracing.trace": "`from mlflow.tracing import trace` in MLflow's migration docs",
    "entities.LiveSpan.remove_attribute": "delete_trace_tag on an open trace needs it",
}

#: MLflow's public tracing names this package does not provide, and why.
NOT_PROVIDED = {
    "active_run": "runs belong to MLflow's experiment tracking, not to tracing",
    "log_issue": "issues are MLflow's issue tracker (server-side discovery), not tracing",
    "search_sessions": 'sessions are read with search_traces(filter_string="metadata.`mlflow.trace.session` = ...")',
    "tracing.get_bridged_tracer_provider": "every span here is already an OTel span in OTel's provider",
    "tracing.set_databricks_monitoring_sql_warehouse_id": "Databricks only",
    "tracing.set_experiment_trace_location": "Databricks (Unity Catalog) only",
    "tracing.unset_experiment_trace_location": "Databricks (Unity Catalog) only",
    "tracing.set_span_chat_tools": "chat tools are recorded by the integrations (mlflow.chat.tools)",
    "entities.IssueReference": "issues are MLflow's issue tracker, not tracing",
    "entities.Session": "see search_sessions",
    "entities.TraceLocation": "MlflowExperimentLocation is the location here",
    "entities.TraceLocationType": "MlflowExperimentLocation is the location here",
    "entities.UCSchemaLocation": "Databricks (Unity Catalog) only",
    "entities.UnityCatalog": "Databricks (Unity Catalog) only",
    "entities.InferenceTableLocation": "Databricks model serving only",
    "entities.TraceArchivalConfig": "trace archival is a server feature",
    "entities.ExperimentTag": "experiment tags read back as a dict",
}
#: Entities of mlflow.entities that are about tracing (the rest is runs, models, datasets, ...).
TRACING_ENTITIES = {
    "Assessment",
    "AssessmentError",
    "AssessmentSource",
    "AssessmentSourceType",
    "Expectation",
    "Experiment",
    "ExperimentTag",
    "Feedback",
    "InferenceTableLocation",
    "IssueReference",
    "Link",
    "LiveSpan",
    "MlflowExperimentLocation",
    "NoOpSpan",
    "Session",
    "Span",
    "SpanEvent",
    "SpanLogLevel",
    "SpanStatus",
    "SpanStatusCode",
    "SpanType",
    "Trace",
    "TraceArchivalConfig",
    "TraceData",
    "TraceInfo",
    "TraceLocation",
    "TraceLocationType",
    "TraceState",
    "UCSchemaLocation",
    "UnityCatalog",
}


def _our_names() -> list[str]:
    names = []
    for name in mlflow_otel.__all__:
        obj = getattr(mlflow_otel, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            names.append(name)
    for name in mlflow_otel.tracing.__all__:
        obj = getattr(mlflow_otel.tracing, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            names.append(f"tracing.{name}")
    names += [f"entities.{name}" for name in mlflow_otel.entities.__all__]
    names += [
        f"MlflowClient.{n}" for n, o in vars(MlflowClient).items() if not n.startswith("_") and callable(o)
    ]
    names += [
        f"entities.LiveSpan.{n}" for n, o in vars(LiveSpan).items() if not n.startswith("_") and callable(o)
    ]
    return names


def _inspect(python: Path, names: list[str]) -> dict:
    if not python.exists():
        pytest.skip(f"{python} missing: run tests/backends/install.sh")
    package = "mlflow_otel" if python == Path(sys.executable) else "mlflow"
    result = subprocess.run(
        [str(python), str(SCRIPT), package, *names], capture_output=True, text=True, timeout=300, cwd=HERE
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _differences(ours: list, theirs: list) -> set[str]:
    mine = {p[0]: p for p in ours}
    their = {p[0]: p for p in theirs}
    found = {f"-{name}" for name in their if name not in mine}
    found |= {f"+{name}" for name in mine if name not in their}
    for name, (_, kind, default) in their.items():
        if name in mine:
            if mine[name][2] != default:
                found.add(f"{name}: default {mine[name][2]} vs {default}")
            if mine[name][1] != kind:
                found.add(f"{name}: kind {mine[name][1]} vs {kind}")
    shared_ours = [p[0] for p in ours if p[0] in their]
    shared_theirs = [p[0] for p in theirs if p[0] in mine]
    if shared_ours != shared_theirs:
        found.add("order")
    return found


@pytest.fixture(scope="module")
def signatures() -> dict[str, dict]:
    names = _our_names()
    return {
        "ours": _inspect(Path(sys.executable), names),
        "mlflow 3.18": _inspect(MLFLOW_318, names),
        "mlflow-tracing 3.17.2": _inspect(MLFLOW_TRACING, names),
    }


def test_every_public_name_has_mlflows_signature(signatures):
    ours = signatures["ours"]
    observed: set[tuple[str, str]] = set()
    unexplained = []
    for name, sig in ours.items():
        assert sig is not None, f"{name}: ours has no signature"
        present = [
            pkg for pkg in ("mlflow 3.18", "mlflow-tracing 3.17.2") if signatures[pkg][name] is not None
        ]
        if not present:
            assert name in OURS_ONLY, (
                f"{name} is in neither MLflow package: add it to OURS_ONLY with a reason"
            )
            continue
        assert name not in OURS_ONLY, f"{name} is in MLflow now: compare it"
        for pkg in present:
            for difference in _differences(sig, signatures[pkg][name]):
                key = (name, difference)
                observed.add(key)
                if key not in DOCUMENTED:
                    unexplained.append(f"{name} ({pkg}): {difference}")
    assert unexplained == [], "differences from MLflow without a documented reason"
    stale = sorted(set(DOCUMENTED) - observed)
    assert stale == [], "documented differences that no longer exist"


def test_mlflows_public_tracing_names_exist_here_or_are_documented():
    if not MLFLOW_TRACING.exists():
        pytest.skip(f"{MLFLOW_TRACING} missing: run tests/backends/install.sh")
    code = (
        "import json, warnings; warnings.filterwarnings('ignore')\n"
        "import mlflow, mlflow.tracing, mlflow.entities\n"
        "print(json.dumps([sorted(mlflow.__all__), sorted(mlflow.tracing.__all__), sorted(mlflow.entities.__all__)]))\n"
    )
    missing = []
    for python in (MLFLOW_TRACING, MLFLOW_318):
        result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        top, tracing_names, entities = json.loads(result.stdout.strip().splitlines()[-1])
        names = [n for n in top if n in _TRACING_TOP_LEVEL or python == MLFLOW_TRACING]
        names += [f"tracing.{n}" for n in tracing_names]
        names += [f"entities.{n}" for n in entities if n in TRACING_ENTITIES]
        for name in names:
            here = _has(name)
            if not here and name not in NOT_PROVIDED:
                missing.append(name)
            if here and name in NOT_PROVIDED:
                missing.append(f"{name} (listed as not provided, but it is)")
    assert sorted(set(missing)) == []


#: The tracing names of the full ``mlflow`` package's top level (the rest is runs, models, ...):
#: mlflow-tracing's whole top level is tracing.
_TRACING_TOP_LEVEL = {
    "trace",
    "start_span",
    "start_span_no_context",
    "get_trace",
    "search_traces",
    "update_current_trace",
    "get_current_active_span",
    "get_active_trace_id",
    "get_last_active_trace_id",
    "set_trace_tag",
    "delete_trace_tag",
    "add_trace",
    "log_trace",
    "flush_trace_async_logging",
    "log_feedback",
    "log_expectation",
    "log_assessment",
    "get_assessment",
    "update_assessment",
    "delete_assessment",
    "override_feedback",
    "MlflowClient",
    "set_tracking_uri",
    "get_tracking_uri",
    "is_tracking_uri_set",
    "set_experiment",
    "MlflowException",
}


def _has(name: str) -> bool:
    obj = mlflow_otel
    for part in name.split("."):
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


def test_every_argument_mlflow_accepts_binds_here(signatures):
    """The consequence that matters to an application: no call written for MLflow raises TypeError
    here. Every parameter name of MLflow 3.18 (and mlflow-tracing 3.17.2) binds on our side."""
    for name in signatures["ours"]:
        target = mlflow_otel
        for part in name.split("."):
            target = getattr(target, part)
        target = target.__init__ if inspect.isclass(target) else target
        ours = inspect.signature(target)
        for pkg in ("mlflow 3.18", "mlflow-tracing 3.17.2"):
            for param, kind, _ in signatures[pkg][name] or ():
                if kind in ("VAR_POSITIONAL", "VAR_KEYWORD") or (name, f"-{param}") in DOCUMENTED:
                    continue
                try:
                    ours.bind_partial(**{param: None})
                except TypeError as exc:
                    if kind == "POSITIONAL_ONLY":
                        continue
                    pytest.fail(f"{name}({param}=...) raises here ({pkg}): {exc}")


def test_update_current_trace_takes_every_318_parameter(mlflow_traces):
    @mlflow_otel.trace
    def handler():
        mlflow_otel.update_current_trace(
            tags={"k": "v"},
            metadata={"m": "1"},
            client_request_id="req-1",
            request_preview="in",
            response_preview="out",
            state="ERROR",
            model_id="model-1",
            session_id="s-1",
            user="u-1",
        )

    handler()
    (trace,) = mlflow_traces.wait(1)
    info = trace.info
    assert (info.client_request_id, info.request_preview, info.response_preview) == ("req-1", "in", "out")
    assert info.state == "ERROR" and info.tags["k"] == "v"
    assert info.trace_metadata["mlflow.modelId"] == "model-1"
    assert (
        info.trace_metadata["mlflow.trace.session"] == "s-1"
        and info.trace_metadata["mlflow.trace.user"] == "u-1"
    )
