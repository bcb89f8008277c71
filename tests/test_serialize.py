"""Inputs and outputs never break the app, and always arrive as valid JSON encoded once."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import math
import uuid

import numpy as np
import pydantic
from hypothesis import given, settings
from hypothesis import strategies as st

import mlflow_otel as mlflow
from mlflow_otel import _serialize
from mlflow_otel._serialize import dumps
from tests.conftest import decoded


class Hostile:
    def __str__(self):
        raise RuntimeError("no str for you")

    def __repr__(self):
        raise RuntimeError("no repr either")


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Doc:
    title: str
    score: float
    when: datetime.date


class Message(pydantic.BaseModel):
    role: str
    content: str


def test_hostile_inputs_never_raise_and_arrive_as_json(otlp_http, monkeypatch):
    # What arrives is checked member by member: the capture's 4 ms time budget (tests/test_capture.py
    # has its own test) would cut the members after it on a loaded CI machine.
    monkeypatch.setattr(_serialize, "CAPTURE_TIME_BUDGET_S", 60.0)
    cyclic_list: list = [1]
    cyclic_list.append(cyclic_list)
    cyclic_dict: dict = {"name": "loop"}
    cyclic_dict["self"] = cyclic_dict

    @mlflow.trace
    def handle(a, b, c, d, e, f, g, h, i, j, k):
        return {"echo": cyclic_dict, "hostile": Hostile()}

    handle(
        cyclic_list,
        cyclic_dict,
        Hostile(),
        b"\x00\xffbinary" * 100,
        {3, 1, 2},
        datetime.datetime(2026, 1, 2, 3, 4, 5),
        Doc("t", 0.5, datetime.date(2026, 1, 1)),
        [Message(role="user", content="hi")],
        np.arange(3),
        {"nan": math.nan, "inf": -math.inf, ("tuple", "key"): 1, 5: "int key"},
        [Color.RED, decimal.Decimal("1.5"), uuid.UUID(int=1)],
    )
    (span,) = otlp_http(1)
    inputs = decoded(span, "mlflow.spanInputs")
    assert inputs["a"] == [1, "<cycle>"]
    assert inputs["b"] == {"name": "loop", "self": "<cycle>"}
    assert inputs["c"] == "<unserializable Hostile>"
    assert inputs["d"] == "<800 bytes>"
    assert sorted(inputs["e"]) == [1, 2, 3]
    assert inputs["f"] == "2026-01-02T03:04:05"
    assert inputs["g"] == {"title": "t", "score": 0.5, "when": "2026-01-01"}
    assert inputs["h"] == [{"role": "user", "content": "hi"}]
    assert inputs["i"] == [0, 1, 2]
    assert inputs["j"]["nan"] == "NaN" and inputs["j"]["inf"] == "-Infinity" and inputs["j"]["5"] == "int key"
    assert inputs["k"] == ["red", "1.5", "00000000-0000-0000-0000-000000000001"]
    outputs = decoded(span, "mlflow.spanOutputs")
    assert outputs["echo"]["self"] == "<cycle>" and outputs["hostile"] == "<unserializable Hostile>"


def test_json_is_encoded_exactly_once(otlp_http):
    @mlflow.trace
    def passthrough(payload):
        return payload

    passthrough('{"already": "json"}')
    (span,) = otlp_http(1)
    # A JSON string input stays a string: one json.loads gives back exactly what the user passed.
    assert json.loads(span.attributes["mlflow.spanInputs"]) == {"payload": '{"already": "json"}'}
    assert json.loads(span.attributes["mlflow.spanOutputs"]) == '{"already": "json"}'
    assert span.attributes["mlflow.spanType"] == "UNKNOWN"  # plain, not '"UNKNOWN"'


def test_deep_nesting_is_bounded():
    deep: list = []
    node = deep
    for _ in range(100_000):
        child: list = []
        node.append(child)
        node = child
    text = dumps(deep)
    assert "<max depth exceeded>" in text
    json.loads(text)


json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.binary(max_size=300),
    st.datetimes(),
    st.builds(Hostile),
    st.sampled_from([Color.RED, decimal.Decimal("2")]),
)
nested = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.tuples(children, children),
        st.dictionaries(
            st.one_of(st.text(max_size=5), st.integers(), st.tuples(st.integers())), children, max_size=5
        ),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(nested)
def test_dumps_never_raises_and_is_valid_json(value):
    text = dumps(value)

    def literal(name: str) -> None:
        raise AssertionError(f"{name} literal in {text!r}")

    json.loads(text, parse_constant=literal)  # valid JSON, with no NaN/Infinity literals


@settings(max_examples=100, deadline=None)
@given(nested)
def test_dumps_with_cycles_never_raises(value):
    container = [value]
    container.append(container)
    holder = {"v": value, "c": container}
    holder["me"] = holder
    json.loads(dumps(holder))


def test_dumps_writes_mlflows_text():
    """MLflow's ``json.dumps`` text (default separators, not ASCII-escaped) on both paths: the C
    encoder's fast path and the budgeted walk (a value too large for the fast path)."""
    small = {"x": 2, "y": [1, "é", None, True], "z": {"a": 1.5}}
    assert dumps(small) == json.dumps(small, ensure_ascii=False)
    walked = {f"k{i}": [i, {"v": "w"}] for i in range(300)}  # over the fast path's node count
    assert dumps(walked) == json.dumps(walked, ensure_ascii=False)
    flat = {f"k{i}": i for i in range(5000)}  # the walk's bulk chunks
    assert dumps(flat) == json.dumps(flat, ensure_ascii=False)
