"""The pytest plugin of ``mlflow_otel.testing`` (entry point ``pytest11``): the ``mlflow_traces``
fixture. Loading it costs an import; it does nothing until a test asks for the fixture, and
``-p no:mlflow_otel`` switches it off like any plugin.

Each test gets its own capture: nothing it traces reaches the configured destinations, and nothing
another test traced reaches it. Under pytest-xdist every worker is its own process with its own
pipeline, so captures never mix across workers either.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlflow_otel.testing import TraceCapture


@pytest.fixture
def mlflow_traces() -> Iterator[TraceCapture]:
    """The traces this test produces, captured in memory after the whole pipeline (see
    ``mlflow_otel.testing``): ``.wait(n)`` / ``await .wait_async(n)``, ``.traces``,
    ``.spans(name=..., span_type=...)``, ``.get_trace(id)``, ``.clear()``, ``.write_html(path)``."""
    capture = TraceCapture().start()
    try:
        yield capture
    finally:
        capture.stop()
