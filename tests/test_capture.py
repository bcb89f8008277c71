"""Capture on the request path: whatever the application hands over, the cost is bounded by the
size limit and nothing is walked that should not be (mocks, proxies, framework objects).

Speed is measured in bench/ (the capture workload); these tests check the behaviour: the output
is valid JSON within the limit, cut with a marker, and built without asking a mock for attributes.
"""

# No `from __future__ import annotations` here: FastAPI resolves the endpoint's string annotations
# in the wrapper's module, so `request: Request` must be a real annotation.
import io
import json
import socket
import threading
import tracemalloc
from collections import namedtuple
from unittest import mock

import pytest

import mlflow_otel as mlflow
from mlflow_otel._serialize import dumps

LIMIT = 64 * 1024


class Proxy:
    """A lazy proxy: every attribute is a new proxy, like a mock or an ORM's lazy relation."""

    def __init__(self, depth: int = 0) -> None:
        self.depth = depth

    def __getattr__(self, name: str) -> "Proxy":
        return Proxy(self.depth + 1)

    def __repr__(self) -> str:
        return f"<Proxy depth={self.depth}>"


@pytest.mark.parametrize("obj", [mock.MagicMock(), mock.Mock(), mock.NonCallableMagicMock(), Proxy()])
def test_mocks_and_proxies_become_a_short_repr(obj):
    text = dumps({"arg": obj}, LIMIT)
    value = json.loads(text)["arg"]
    assert value.startswith("<") and len(value) < 100
    if isinstance(obj, mock.Mock):
        assert not obj.model_dump.called and not obj.tolist.called and not obj.to_dict.called


def test_a_traced_function_given_a_mock_returns_at_once_and_records_its_repr(mlflow_traces):
    @mlflow.trace
    def handle(client, request):
        return client.send(request)

    client = mock.MagicMock()
    client.send.return_value = mock.MagicMock()
    handle(client, mock.Mock())
    (span,) = mlflow_traces.wait(1)[0].data.spans
    assert span.inputs["client"].startswith("<MagicMock")
    assert span.outputs.startswith("<MagicMock")
    assert len(json.dumps(span.inputs)) < 200


def test_huge_text_is_cut_with_a_marker_and_its_size():
    text = dumps({"text": "abc" * 700_000}, LIMIT)  # no spaces: still text, still a head
    value = json.loads(text)["text"]
    assert len(text) <= LIMIT + 100  # one string: at most the limit
    assert value.startswith("abcabc") and value.endswith(f"of {3 * 700_000} chars]")


@pytest.mark.parametrize(
    "obj",
    [
        {str(i): i for i in range(200_000)},
        list(range(300_000)),
        {"rows": [{"id": i, "name": f"n{i}"} for i in range(50_000)]},
        {str(i): "y" * 10_000 for i in range(500)},
    ],
    ids=["flat dict", "flat list", "nested rows", "dict of long strings"],
)
def test_big_containers_are_cut_within_the_limit(obj):
    text = dumps(obj, LIMIT)
    json.loads(text)
    assert len(text.encode()) <= LIMIT * 4.4  # the capture budget: four limits, trimmed later
    assert "more keys truncated" in text or "more items truncated" in text or "truncated" in text


def test_a_huge_container_stops_at_the_time_budget_with_a_marker(monkeypatch):
    from mlflow_otel import _serialize

    big = {f"key-{i}": i for i in range(300_000)}
    monkeypatch.setattr(_serialize, "CAPTURE_TIME_BUDGET_S", 60.0)
    by_bytes = dumps({"d": big, "rows": [{"a": i} for i in range(50_000)]}, 1024 * 1024)
    monkeypatch.setattr(_serialize, "CAPTURE_TIME_BUDGET_S", 0.0)  # spent at once
    by_time = json.loads(dumps({"d": big, "rows": [{"a": i} for i in range(50_000)]}, 1024 * 1024))
    assert len(by_bytes) > 1024 * 1024  # the byte budget: a quarter over the limit
    assert by_time == {"…": "[2 more keys truncated]"}  # valid JSON, cut at once, counted


def test_memory_does_not_grow_with_what_is_thrown_away():
    big = {"text": "x" * 20_000_000}
    tracemalloc.start()
    try:
        dumps(big, LIMIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024  # a few copies of the kept head, never of the 20 MB


def test_small_values_are_unchanged():
    value = {"q": "hello", "n": 3, "nested": {"a": [1, 2.5, None, True]}}
    assert json.loads(dumps(value, LIMIT)) == value


def test_class_level_conversions_still_apply():
    pydantic = pytest.importorskip("pydantic")

    class Model(pydantic.BaseModel):
        a: int

    Point = namedtuple("Point", "x y")
    numpy = pytest.importorskip("numpy")
    decoded = json.loads(dumps({"m": Model(a=1), "p": Point(1, 2), "arr": numpy.arange(3)}, LIMIT))
    assert decoded == {"m": {"a": 1}, "p": [1, 2], "arr": [0, 1, 2]}


def test_handles_are_their_repr():
    lock, buffer = threading.Lock(), io.StringIO("secret file content")
    sock = socket.socket()
    try:
        decoded = json.loads(dumps({"lock": lock, "file": buffer, "sock": sock}, LIMIT))
    finally:
        sock.close()
    assert "secret file content" not in json.dumps(decoded)
    assert all(isinstance(v, str) and v.startswith("<") for v in decoded.values())


def test_a_fastapi_request_is_a_small_summary_and_secret_headers_are_masked(mlflow_traces):
    from fastapi import FastAPI, Request
    from fastapi.testclient import TestClient

    app = FastAPI()

    @app.post("/chat")
    @mlflow.trace
    def chat(request: Request) -> dict:
        return {"ok": True}

    with TestClient(app) as client:
        response = client.post(
            "/chat?session=42",
            headers={"cookie": "sessionid=abc123secret", "x-api-key": "key-that-must-not-leave"},
        )
    assert response.status_code == 200
    (span,) = mlflow_traces.wait(1)[0].data.spans
    request = span.inputs["request"]
    assert request["method"] == "POST" and request["path"] == "/chat" and request["query"] == "session=42"
    exported = json.dumps(span.inputs)
    assert "abc123secret" not in exported and "key-that-must-not-leave" not in exported
    assert "scope" not in exported and "asgi" not in exported  # not the ASGI internals
    assert len(exported) < 1500
