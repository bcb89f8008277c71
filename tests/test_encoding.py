"""Our direct OTLP protobuf encoder produces what the OTel project's encoder produces."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from mlflow_otel.otlp.protobuf import encode_request

scalars = st.one_of(
    st.text(max_size=30),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
)
values = st.one_of(
    scalars, st.lists(st.text(max_size=10), max_size=4), st.lists(st.integers(-1000, 1000), max_size=4)
)
attributes = st.dictionaries(st.text(min_size=1, max_size=20), values, max_size=6)
ids = st.integers(min_value=1, max_value=2**64 - 1)


@st.composite
def spans(draw):
    trace_id = draw(st.integers(min_value=1, max_value=2**128 - 1))
    state = TraceState([("vendor", "x1")]) if draw(st.booleans()) else None
    ctx = SpanContext(trace_id, draw(ids), False, TraceFlags(1), state)
    parent = (
        SpanContext(trace_id, draw(ids), draw(st.booleans()), TraceFlags(1)) if draw(st.booleans()) else None
    )
    code = draw(st.sampled_from(list(StatusCode)))
    events = [
        Event(draw(st.text(max_size=10)), draw(attributes), draw(st.integers(0, 2**63)))
        for _ in range(draw(st.integers(0, 2)))
    ]
    links = [
        Link(SpanContext(draw(st.integers(1, 2**128 - 1)), draw(ids), draw(st.booleans())), draw(attributes))
        for _ in range(draw(st.integers(0, 2)))
    ]
    return ReadableSpan(
        name=draw(st.text(max_size=20)),
        context=ctx,
        parent=parent,
        resource=draw(st.sampled_from(RESOURCES)),
        attributes=draw(attributes),
        events=events,
        links=links,
        kind=draw(st.sampled_from(list(SpanKind))),
        status=Status(code, draw(st.text(max_size=10)) if code is StatusCode.ERROR else None),
        start_time=draw(st.integers(0, 2**63)),
        end_time=draw(st.integers(0, 2**63)),
        instrumentation_scope=draw(st.sampled_from(SCOPES)),
    )


RESOURCES = [
    Resource.create({"service.name": "a"}),
    Resource({"service.name": "b", "n": 3}, "https://schema/1"),
]
SCOPES = [
    InstrumentationScope("mlflow_otel", "0.1.0"),
    InstrumentationScope("other", None, "https://s", {"k": "v"}),
]


@settings(max_examples=300, deadline=None)
@given(st.lists(spans(), min_size=1, max_size=6))
def test_encoding_equals_the_otel_encoders(batch):
    ours = ExportTraceServiceRequest.FromString(encode_request(batch))
    assert ours == encode_spans(batch)


def test_ids_in_every_form_they_take():
    from mlflow_otel.otlp import ids

    tid, sid = 0x0AF7651916CD43DD8448EB211C80319C, 0x00F067AA0BA902B7
    assert ids.trace_hex(tid) == "0af7651916cd43dd8448eb211c80319c"
    assert ids.span_hex(sid) == "00f067aa0ba902b7"
    assert ids.mlflow_trace_id(tid) == "tr-0af7651916cd43dd8448eb211c80319c"
    assert ids.parse_trace_id(ids.mlflow_trace_id(tid)) == tid == ids.parse_trace_id(ids.trace_hex(tid))
    assert ids.parse_trace_id("tr-nothex") is None and ids.parse_trace_id(None) is None
    assert ids.parse_span_id("00f067aa0ba902b7") == sid and ids.parse_span_id("zz") is None
    assert ids.bare_hex(" TR-0AF7651916CD43DD8448EB211C80319C ".lower()) == ids.trace_hex(tid)
    # OTLP/JSON's hex, protobuf JSON's base64 (MLflow's REST API), and anything else left as it was.
    assert ids.decode_wire_id("0AF7651916CD43DD8448EB211C80319C", 32) == ids.trace_hex(tid)
    assert ids.decode_wire_id("AAAAAAAAAAE=", 16) == "0000000000000001"
    assert ids.decode_wire_id("AAE=", 16) == "AAE="  # base64 of the wrong width
    assert ids.decode_wire_id("not an id", 16) == "not an id"
