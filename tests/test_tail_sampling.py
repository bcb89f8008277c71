"""Tail sampling in the process (mlflow_otel/pipeline/tail.py): the OTel Collector's tail_sampling
schema and decision rules, decided per whole trace on the process worker, counted in stats(); the
same policy file run by the repository's collector build."""

from __future__ import annotations

import random
import threading
import time

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.trace import SpanContext, Status, StatusCode

import mlflow_otel as mlflow
from mlflow_otel import tracing
from mlflow_otel.pipeline.tail import TailSampler, TailSamplingConfigError, Trace, fnv1a_64, load_tail_sampler
from tests.backends import Otelcol, otelcol_binary, wait_until
from tests.conftest import run_python

POLICY = """\
# One file for the SDK (MLFLOW_OTEL_TAIL_SAMPLING_CONFIG) and a Collector (tail_sampling: ${file:...}).
decision_wait: 5s
policies:
  - name: keep-errors
    type: status_code
    status_code: {status_codes: [ERROR]}
  - name: ten-percent
    type: probabilistic
    probabilistic: {sampling_percentage: 10}
"""


def _span(trace_id: int, name: str = "s", status: StatusCode = StatusCode.UNSET, start: int = 0,
          end: int = 1_000_000, attrs: dict | None = None, resource: dict | None = None) -> ReadableSpan:  # fmt: skip
    return ReadableSpan(
        name=name,
        context=SpanContext(trace_id, random.getrandbits(64) or 1, False),
        attributes=attrs or {},
        status=Status(status),
        start_time=start,
        end_time=end,
        resource=Resource(resource or {}),
    )


def _keep(sampler: TailSampler, *spans: ReadableSpan) -> bool:
    return sampler.decide(Trace(spans[0].context.trace_id, spans))[0]


# --- the schema and the Collector's decision rules ---------------------------------------------------
def test_every_form_of_the_configuration_is_read(tmp_path):
    policies = [{"name": "all", "type": "always_sample"}]
    (tmp_path / "p.yaml").write_text(POLICY)
    collector = {"processors": {"tail_sampling/x": {"policies": policies}, "batch": {}}}
    for source in (policies, {"policies": policies}, {"tail_sampling": {"policies": policies}}, collector):
        assert _keep(load_tail_sampler(source), _span(1))
    from_file = load_tail_sampler(str(tmp_path / "p.yaml"))
    assert _keep(from_file, _span(1, status=StatusCode.ERROR))


@pytest.mark.parametrize(
    ("config", "why"),
    [
        ([{"type": "not"}], "no 'not' policy"),
        ([{"type": "composite"}], "unsupported"),
        ([{"type": "status_code", "status_code": {"status_codes": ["BAD"]}}], "unknown status code"),
        ([{"type": "numeric_attribute", "numeric_attribute": {"key": "k"}}], "min_value or max_value"),
        (
            [
                {
                    "type": "string_attribute",
                    "string_attribute": {"key": "k", "values": ["("], "enabled_regex_matching": True},
                }
            ],
            "regex",
        ),
        ({"policies": [], "decision_wait": "1s"}, "non-empty"),
        ({"policies": [{"type": "always_sample"}], "bogus": 1}, "unknown tail_sampling settings"),
        ({"processors": {"batch": {}}}, "no tail_sampling policies"),
    ],
)
def test_invalid_configurations_are_refused_with_the_reason(config, why):
    with pytest.raises(TailSamplingConfigError, match=why):
        load_tail_sampler(config)


def test_policy_types_follow_the_collector():
    def one(policy):
        return TailSampler.from_config([policy])

    slow = one({"type": "latency", "latency": {"threshold_ms": 500}})
    assert _keep(slow, _span(1, start=0, end=600_000_000), _span(1, start=100, end=200))
    assert not _keep(slow, _span(1, start=0, end=400_000_000))
    band = one({"type": "latency", "latency": {"threshold_ms": 100, "upper_threshold_ms": 200}})
    assert _keep(band, _span(1, end=150_000_000)) and not _keep(band, _span(1, end=300_000_000))

    tenant = one({"type": "string_attribute", "string_attribute": {"key": "tenant", "values": ["acme"]}})
    assert _keep(tenant, _span(1), _span(1, attrs={"tenant": "acme"}))
    assert _keep(tenant, _span(1, resource={"tenant": "acme"}))  # resource attributes count too
    assert not _keep(tenant, _span(1, attrs={"tenant": "other"}))
    regex = one({"type": "string_attribute",
                 "string_attribute": {"key": "route", "values": ["^/v1/"], "enabled_regex_matching": True}})  # fmt: skip
    assert _keep(regex, _span(1, attrs={"route": "/v1/chat"})) and not _keep(
        regex, _span(1, attrs={"route": "/v2"})
    )

    tokens = one({"type": "numeric_attribute", "numeric_attribute": {"key": "tokens", "min_value": 1000}})
    assert _keep(tokens, _span(1, attrs={"tokens": 5000}))
    assert not _keep(tokens, _span(1, attrs={"tokens": 10})) and not _keep(
        tokens, _span(1, attrs={"tokens": True})
    )

    flagged = one({"type": "boolean_attribute", "boolean_attribute": {"key": "debug", "value": True}})
    assert _keep(flagged, _span(1, attrs={"debug": True})) and not _keep(
        flagged, _span(1, attrs={"debug": False})
    )

    assert _keep(one({"type": "span_count", "span_count": {"min_spans": 2}}), _span(1), _span(1))
    assert not _keep(one({"type": "span_count", "span_count": {"min_spans": 2}}), _span(1))


def test_and_drop_and_invert_match_combine_as_in_the_collector():
    sampler = TailSampler.from_config(
        [
            {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
            {"name": "slow-chat", "type": "and", "and": {"and_sub_policy": [
                {"type": "latency", "latency": {"threshold_ms": 1000}},
                {"type": "string_attribute", "string_attribute": {"key": "route", "values": ["/chat"]}},
            ]}},
            {"name": "no-health", "type": "drop", "drop": {"drop_sub_policy": [
                {"type": "string_attribute", "string_attribute": {"key": "route", "values": ["/health"]}},
            ]}},
        ]
    )  # fmt: skip
    assert _keep(sampler, _span(1, status=StatusCode.ERROR))
    assert sampler.decide(Trace(1, [_span(1, status=StatusCode.ERROR)]))[1] == "errors"
    assert _keep(sampler, _span(1, end=2_000_000_000, attrs={"route": "/chat"}))
    assert not _keep(sampler, _span(1, end=2_000_000_000, attrs={"route": "/other"}))  # and: both needed
    # drop wins over any sampled decision: an erroring health check is still dropped.
    assert not _keep(sampler, _span(1, status=StatusCode.ERROR, attrs={"route": "/health"}))

    # invert_match: sampled when no value matches; an inverted "not sampled" drops the trace.
    inverted = TailSampler.from_config(
        [
            {"type": "always_sample"},
            {"type": "string_attribute",
             "string_attribute": {"key": "env", "values": ["test"], "invert_match": True}},
        ]
    )  # fmt: skip
    assert _keep(inverted, _span(1, attrs={"env": "prod"}))
    assert not _keep(inverted, _span(1, attrs={"env": "test"}))


def test_probabilistic_uses_the_head_samplers_rule_or_the_collectors_with_a_salt():
    head = TailSampler.from_config([{"type": "probabilistic", "probabilistic": {"sampling_percentage": 25}}])
    bound = TraceIdRatioBased.get_bound_for_rate(0.25)
    for _ in range(500):
        trace_id = random.getrandbits(128)
        assert _keep(head, _span(trace_id)) == ((trace_id & (2**64 - 1)) < bound)
    # Go's hash/fnv New64a test vectors.
    assert fnv1a_64(b"") == 0xCBF29CE484222325
    assert fnv1a_64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a_64(b"foobar") == 0x85944171F73967E8


# --- in the pipeline ---------------------------------------------------------------------------------
def test_every_error_trace_kept_and_ten_percent_of_the_rest(otlp_http, tmp_path, monkeypatch):
    policy = tmp_path / "tail.yaml"
    policy.write_text(POLICY)
    monkeypatch.setenv("MLFLOW_OTEL_TAIL_SAMPLING_CONFIG", str(policy))
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
    tracing.reset()
    rng = random.Random(7)
    errors = set(rng.sample(range(1000), 30))  # 3% of 1,000 traces fail

    @mlflow.trace
    def step(i: int) -> int:
        return i

    @mlflow.trace
    def request(i: int) -> int:
        step(i)
        if i in errors:
            raise RuntimeError("boom")
        return i

    trace_ids: dict[int, int] = {}
    for i in range(1000):
        try:
            request(i)
        except RuntimeError:
            pass
        trace_ids[i] = int(mlflow.get_last_active_trace_id()[3:], 16)
    bound = TraceIdRatioBased.get_bound_for_rate(0.10)
    expected = {i for i in range(1000) if i in errors or (trace_ids[i] & (2**64 - 1)) < bound}
    assert mlflow.flush_trace_async_logging(timeout_s=30)
    spans = otlp_http(2 * len(expected), timeout=30)
    kept = {int(s.trace_id, 16) for s in spans}
    assert len(spans) == 2 * len(expected)  # whole traces: root and child together
    assert {trace_ids[i] for i in errors} <= kept  # every error trace
    assert kept == {trace_ids[i] for i in expected}  # exactly the trace-id rule for the rest
    rest = len(expected) - len(errors)
    print(f"tail sampling: kept {len(errors)} error traces + {rest} of 970 others ({rest / 9.7:.1f}%)")
    assert 60 <= rest <= 140  # binomial(970, 0.1): 97 +- 4.3 sigma
    stats = tracing.stats()
    assert stats["traces_tail_kept"] == len(expected)
    assert stats["traces_tail_sampled_out"] == 1000 - len(expected)
    assert stats["spans_tail_sampled_out"] == 2 * (1000 - len(expected))
    assert stats["tail_policy.keep-errors"] == len(errors)
    # produced = delivered + sampled out + counted drops
    assert stats["spans_started"] == stats["spans_delivered"] + stats["spans_tail_sampled_out"] + sum(
        v for k, v in stats.items() if k.startswith("dropped.")
    )


def test_decided_off_the_app_thread_and_late_spans_follow_their_trace(otlp_http):
    threads: set[str] = set()

    def policy_spy(span):
        threads.add(threading.current_thread().name)

    tracing.configure(
        span_processors=[policy_spy],
        tail_sampling=[{"type": "string_attribute", "string_attribute": {"key": "keep", "values": ["yes"]}}],
    )
    with mlflow.start_span("kept-root") as root:
        root.set_attribute("keep", "yes")
        late = mlflow.start_span_no_context("late", parent_span=root)
    with mlflow.start_span("dropped-root") as other:
        dropped_late = mlflow.start_span_no_context("dropped-late", parent_span=other)
    assert mlflow.flush_trace_async_logging(timeout_s=10)
    late.end()  # ends after its local root: follows the decision made for its trace
    dropped_late.end()
    spans = otlp_http(2)
    names = sorted(s.name for s in spans)
    assert names == ["kept-root", "late"]
    assert threading.main_thread().name not in threads  # the chain and the decision ran elsewhere
    assert tracing.stats()["traces_tail_sampled_out"] == 1
    assert tracing.stats()["spans_tail_sampled_out"] == 2


def test_another_instrumentations_span_is_decided_with_the_trace_it_ended_in(receiver, tmp_path):
    """Joined to the app's provider, an httpx span (not ours, not autologged) ends OK inside our
    trace before the root fails: the error policy keeps the whole trace, that span included."""
    receiver.clear()
    policy = tmp_path / "tail.yaml"
    policy.write_text(
        "policies:\n  - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}\n"
    )
    code = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
trace.set_tracer_provider(TracerProvider())
import mlflow_otel as mlflow
try:
    with mlflow.start_span("handler"):
        with trace.get_tracer("opentelemetry.instrumentation.httpx").start_as_current_span("GET"):
            pass
        mlflow.flush_trace_async_logging(timeout_s=5)  # the GET span alone is not decided
        raise ValueError("boom")
except ValueError:
    pass
with mlflow.start_span("fine"):  # an OK trace: sampled out whole
    with trace.get_tracer("opentelemetry.instrumentation.httpx").start_as_current_span("GET ok"):
        pass
mlflow.flush_trace_async_logging(timeout_s=10)
"""
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_endpoint,
        "MLFLOW_USE_DEFAULT_TRACER_PROVIDER": "false",
        "MLFLOW_OTEL_TAIL_SAMPLING_CONFIG": str(policy),
    }
    result = run_python(code, env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(s.name for s in receiver.wait_for_spans(2)) == ["GET", "handler"]
    time.sleep(0.5)
    assert sorted(s.name for s in receiver.spans()) == ["GET", "handler"]


def test_an_unreadable_configuration_keeps_every_trace_and_says_why(otlp_http, caplog):
    tracing.configure(tail_sampling=[{"name": "oops", "type": "not"}])
    with mlflow.start_span("kept"):
        pass
    (span,) = otlp_http(1)
    assert span.name == "kept"
    assert "every trace is kept" in caplog.text and "'not'" in caplog.text


# --- the same file, run by the repository's collector build ------------------------------------------
@pytest.mark.backend
def test_the_same_policy_file_runs_in_the_repositorys_collector(tmp_path, receiver):
    try:
        otelcol_binary()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    policy = tmp_path / "tail.yaml"
    # With a hash_salt, the SDK uses the Collector's own probabilistic rule: both keep the same traces.
    policy.write_text(POLICY.replace("5s", "1s").replace("{sampling_percentage: 10}",
                                                          "{sampling_percentage: 30, hash_salt: shared}"))  # fmt: skip
    sdk = load_tail_sampler(str(policy))
    receiver.clear()
    collector = Otelcol.inline(tmp_path, "collector", {"tail_sampling": f"${{file:{policy}}}"},
                               receiver.grpc_endpoint.split("://")[1])  # fmt: skip
    validate = collector.validate()
    assert validate.returncode == 0, validate.stderr
    http = collector.http_port
    collector.start()
    try:
        from mlflow_otel.destinations import OtlpDestination

        tracing.set_destination(OtlpDestination(f"http://127.0.0.1:{http}/v1/traces"))
        sent: dict[int, bool] = {}
        for i in range(200):
            try:
                with mlflow.start_span("root") as span:
                    span.set_attribute("i", i)
                    if i % 20 == 0:
                        raise ValueError("boom")
            except ValueError:
                pass
            trace_id = int(mlflow.get_last_active_trace_id()[3:], 16)
            sent[trace_id] = sdk.decide(Trace(trace_id, [_span(trace_id, status=StatusCode.ERROR if i % 20 == 0
                                                                 else StatusCode.OK)]))[0]  # fmt: skip
        assert mlflow.flush_trace_async_logging(timeout_s=20)
        expected = {t for t, keep in sent.items() if keep}
        wait_until(lambda: len(receiver.spans()) >= len(expected), 30, "collector's sampled traces")
        time.sleep(2.5)  # the collector decides after decision_wait: nothing more is coming
        kept = {int(s.trace_id, 16) for s in receiver.spans()}
        assert kept == expected  # the Collector and the SDK made the same 200 decisions
        assert 10 <= len(expected) < 200
    finally:
        collector.stop()
