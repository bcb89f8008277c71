"""The pytest plugin of ``mlflow_otel.testing`` (entry point ``pytest11``): the ``mlflow_traces``
fixture. Loading it costs an import; it does nothing until a test asks for the fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlflow_otel.testing import TraceCapture


@pytest.fixture
def mlflow_traces() -> Iterator[TraceCapture]:
    """The traces this test produces, captured in memory after the whole pipeline (see
    ``mlflow_otel.testing``); nothing is sent to the configured destinations meanwhile."""
    capture = TraceCapture().start()
    try:
        yield capture
    finally:
        capture.stop()
