"""Finished traces as MLflow's entities: ``Trace``, ``TraceInfo``, ``TraceData``, ``Span``,
``TraceState`` (``mlflow.entities``' names and the attributes MLflow's docs read).

One model for every place a finished trace is read: the pytest fixture (spans as the pipeline
exports them), the embedded local store and an MLflow server. A span keeps its attributes as they
were on the wire and decodes them on read, as MLflow's ``Span`` does.
"""

from __future__ import annotations

import json
import re
import sys
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional, Union

from mlflow_otel import semconv as conv
from mlflow_otel._serialize import loads_or_raw
from mlflow_otel._state import STATE
from mlflow_otel.records.html import notebook_html
from mlflow_otel.spans.types import (
    Link,
    SpanEvent,
    SpanReads,
    SpanStatus,
    SpanStatusCode,
    decode_attribute,
)


def _decoded(key: str, value: Any) -> Any:
    """A finished span's attribute as MLflow reads it: MLflow writes objects as JSON, so a string
    holding a JSON object or array reads back as the object (a live span knows which keys it
    encoded; a finished one goes by the value). The JSON keys (inputs, outputs, ...) are decoded
    exactly once: a function that returned JSON text reads back as that text, as in MLflow."""
    if key in conv.JSON_KEYS:
        return decode_attribute(key, value)
    value = decode_attribute(key, value)
    if isinstance(value, str) and value[:1] in ("{", "["):
        return loads_or_raw(value)
    return value


class TraceState(str, Enum):
    """A trace's state (MLflow's ``mlflow.entities.TraceState``)."""

    STATE_UNSPECIFIED = "STATE_UNSPECIFIED"
    OK = "OK"
    ERROR = "ERROR"
    IN_PROGRESS = "IN_PROGRESS"

    def __str__(self) -> str:
        return self.value


class Span(SpanReads):
    """A finished span (MLflow's ``mlflow.entities.Span``): read-only."""

    __slots__ = (
        "_attributes",
        "end_time_ns",
        "events",
        "links",
        "name",
        "parent_id",
        "span_id",
        "start_time_ns",
        "status",
        "trace_id",
    )

    def __init__(
        self,
        *,
        trace_id: str,
        span_id: str,
        parent_id: Optional[str],
        name: str,
        start_time_ns: int,
        end_time_ns: Optional[int],
        status: SpanStatus,
        attributes: Mapping[str, Any],
        events: Sequence[SpanEvent] = (),
        links: Sequence[Link] = (),
    ) -> None:
        self.trace_id = trace_id
        # Interned: one string object per id, as MLflow's cached id encoding gives (its tests
        # compare a child's parent_id to its parent's span_id with ``is``).
        self.span_id = sys.intern(span_id)
        self.parent_id = sys.intern(parent_id) if parent_id is not None else None
        self.name = name
        self.start_time_ns = start_time_ns
        self.end_time_ns = end_time_ns
        self.status = status
        self._attributes = dict(attributes)
        self.events = list(events)
        self.links = list(links)

    request_id = property(lambda self: self.trace_id)  # MLflow 2's name

    @property
    def _trace_id(self) -> str:
        """The OTel trace id in hex (MLflow's ``Span._trace_id``, which MLflow's own tests read)."""
        return self.trace_id[3:] if self.trace_id.startswith("tr-") else self.trace_id

    def get_attribute(self, key: str) -> Any:
        return _decoded(key, self._attributes.get(key))

    @property
    def attributes(self) -> dict[str, Any]:
        return {key: _decoded(key, value) for key, value in self._attributes.items()}

    @property
    def raw_attributes(self) -> dict[str, Any]:
        """The attributes as they were on the wire (MLflow's JSON strings undecoded)."""
        return dict(self._attributes)

    @property
    def span_type(self) -> Optional[str]:
        return self.get_attribute(conv.SPAN_TYPE)

    @property
    def duration_ms(self) -> Optional[float]:
        if self.end_time_ns is None:
            return None
        return (self.end_time_ns - self.start_time_ns) / 1e6

    def to_dict(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "name": self.name,
            "start_time_ns": self.start_time_ns,
            "end_time_ns": self.end_time_ns,
            "status": {"status_code": self.status.status_code.value, "description": self.status.description},
            "attributes": self._attributes,
            "events": [
                {"name": e.name, "timestamp": e.timestamp, "attributes": e.attributes} for e in self.events
            ],
            "links": [link.to_dict() for link in self.links],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Span:
        if "context" in data:  # MLflow 2's span (schema v2 traces, older serving endpoints)
            return cls._from_v2_dict(data)
        status = data.get("status") or {}
        return cls(
            trace_id=data["trace_id"],
            span_id=data["span_id"],
            parent_id=data.get("parent_id"),
            name=data["name"],
            start_time_ns=int(data["start_time_ns"]),
            end_time_ns=None if data.get("end_time_ns") is None else int(data["end_time_ns"]),
            status=SpanStatus(
                SpanStatusCode(status.get("status_code", "UNSET")), status.get("description", "")
            ),
            attributes=data.get("attributes") or {},
            events=[
                SpanEvent(e["name"], e["timestamp"], e.get("attributes") or {})
                for e in data.get("events") or ()
            ],
            links=[Link.from_dict(link) for link in data.get("links") or ()],
        )

    @classmethod
    def _from_v2_dict(cls, data: Mapping[str, Any]) -> Span:
        """MLflow 2's shape: ``context`` with ``0x``-prefixed hex ids, ``start_time`` /
        ``end_time`` in ns, ``status_code`` / ``status_message``."""

        def hex_id(value: Any, width: int) -> Optional[str]:
            return format(int(str(value), 16), f"0{width}x") if value else None

        context = data["context"]
        return cls(
            trace_id="tr-" + (hex_id(context["trace_id"], 32) or ""),
            span_id=hex_id(context["span_id"], 16) or "",
            parent_id=hex_id(data.get("parent_id"), 16),
            name=data["name"],
            start_time_ns=int(data["start_time"]),
            end_time_ns=None if data.get("end_time") is None else int(data["end_time"]),
            status=SpanStatus(
                SpanStatusCode(data.get("status_code") or "UNSET"), data.get("status_message") or ""
            ),
            attributes=data.get("attributes") or {},
            events=[
                SpanEvent(e["name"], e["timestamp"], e.get("attributes") or {})
                for e in data.get("events") or ()
            ],
        )

    def __repr__(self) -> str:
        return f"Span(name={self.name!r}, span_type={self.span_type!r}, span_id={self.span_id!r})"


@dataclass
class TraceInfo:
    """A trace's record (MLflow's ``TraceInfo``, schema v3). Times are milliseconds."""

    trace_id: str
    request_time: int
    state: TraceState
    trace_location: Optional[dict[str, Any]] = None
    request_preview: Optional[str] = None
    response_preview: Optional[str] = None
    client_request_id: Optional[str] = None
    execution_duration: Optional[int] = None
    trace_metadata: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    assessments: list[Any] = field(default_factory=list)

    @property
    def request_id(self) -> str:
        return self.trace_id

    @property
    def experiment_id(self) -> Optional[str]:
        location = self.trace_location or {}
        experiment = location.get("mlflow_experiment") or {}
        return experiment.get("experiment_id")

    @property
    def timestamp_ms(self) -> int:
        return self.request_time

    @property
    def execution_time_ms(self) -> Optional[int]:
        return self.execution_duration

    @property
    def status(self) -> TraceState:
        return self.state

    @property
    def request_metadata(self) -> dict[str, str]:
        return self.trace_metadata

    @property
    def token_usage(self) -> Optional[dict[str, int]]:
        raw = self.trace_metadata.get("mlflow.trace.tokenUsage")
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "trace_location": self.trace_location,
            "request_time": self.request_time,
            "state": self.state.value,
            "request_preview": self.request_preview,
            "response_preview": self.response_preview,
            "client_request_id": self.client_request_id,
            "execution_duration_ms": self.execution_duration,
            "trace_metadata": dict(self.trace_metadata),
            "tags": dict(self.tags),
            "assessments": [
                a.to_dictionary() if hasattr(a, "to_dictionary") else a for a in self.assessments
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TraceInfo:
        if "trace_id" not in data and "request_id" in data:  # MLflow 2's TraceInfo (schema v2)
            experiment_id = data.get("experiment_id")
            return cls(
                trace_id=data["request_id"],
                trace_location=(
                    {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}}
                    if experiment_id is not None
                    else None
                ),
                request_time=int(data["timestamp_ms"]),
                state=TraceState(
                    data.get("status")
                    if data.get("status") in ("OK", "ERROR", "IN_PROGRESS")
                    else "STATE_UNSPECIFIED"
                ),
                execution_duration=data.get("execution_time_ms"),
                trace_metadata=dict(data.get("request_metadata") or {}),
                tags=dict(data.get("tags") or {}),
            )
        return cls(
            trace_id=data["trace_id"],
            trace_location=data.get("trace_location"),
            request_time=int(data["request_time"]),
            state=TraceState(data.get("state") or "STATE_UNSPECIFIED"),
            request_preview=data.get("request_preview"),
            response_preview=data.get("response_preview"),
            client_request_id=data.get("client_request_id"),
            execution_duration=data.get("execution_duration_ms"),
            trace_metadata=dict(data.get("trace_metadata") or {}),
            tags=dict(data.get("tags") or {}),
            assessments=list(data.get("assessments") or []),
        )


class TraceData:
    """A trace's spans (MLflow's ``TraceData``), root first when it is among them."""

    def __init__(self, spans: Optional[list[Span]] = None) -> None:
        self.spans = list(spans or [])

    def _root(self) -> Optional[Span]:
        ids = {span.span_id for span in self.spans}
        return next((s for s in self.spans if s.parent_id is None or s.parent_id not in ids), None)

    @property
    def request(self) -> Optional[str]:
        """The root span's inputs, as the JSON string on the wire."""
        root = self._root()
        return root.raw_attributes.get(conv.SPAN_INPUTS) if root else None

    @property
    def response(self) -> Optional[str]:
        root = self._root()
        return root.raw_attributes.get(conv.SPAN_OUTPUTS) if root else None

    @property
    def intermediate_outputs(self) -> Optional[dict[str, Any]]:
        """What ``log_trace(intermediate_outputs=...)`` recorded on the root; else the outputs of the
        other spans by name (``name_1``, ``name_2`` for a repeated name, in span order). MLflow 3.6
        deprecated it for ``trace.search_spans(name=...)``, with this ``FutureWarning``."""
        warnings.warn(
            "``intermediate_outputs`` is deprecated since 3.6.0. Use ``trace.search_spans(name=...)``.",
            FutureWarning,
            stacklevel=2,
        )
        root = self._root()
        recorded = root.get_attribute(conv.INTERMEDIATE_OUTPUTS) if root else None
        if recorded:
            return recorded
        if len(self.spans) < 2:
            return None
        counts = Counter(span.name for span in self.spans)
        seen: Counter[str] = Counter()
        result: dict[str, Any] = {}
        for span in self.spans:
            seen[span.name] += 1
            key = f"{span.name}_{seen[span.name]}" if counts[span.name] > 1 else span.name
            if span.parent_id and span.outputs is not None:
                result[key] = span.outputs
        return result

    def to_dict(self) -> dict[str, Any]:
        return {"spans": [span.to_dict() for span in self.spans]}


@dataclass
class Trace:
    """A finished trace: its record and its spans (MLflow's ``mlflow.entities.Trace``)."""

    info: TraceInfo
    data: TraceData

    @property
    def trace_id(self) -> str:
        return self.info.trace_id

    def search_spans(
        self,
        span_type: Optional[str] = None,
        name: Union[str, re.Pattern[str], None] = None,
        span_id: Optional[str] = None,
    ) -> list[Span]:
        """Spans matching every criterion given (``name`` a string or a compiled pattern)."""

        def matches(span: Span) -> bool:
            if span_type is not None and span.span_type != span_type:
                return False
            if span_id is not None and span.span_id != span_id:
                return False
            if isinstance(name, str):
                return span.name == name
            if name is not None:
                return bool(name.search(span.name))
            return True

        return [span for span in self.data.spans if matches(span)]

    def to_dict(self) -> dict[str, Any]:
        return {"info": self.info.to_dict(), "data": self.data.to_dict()}

    def to_json(self, pretty: bool = False) -> str:
        return json.dumps(self.to_dict(), indent=2 if pretty else None, default=str)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trace:
        spans = [Span.from_dict(s) for s in (data.get("data") or {}).get("spans") or ()]
        return cls(TraceInfo.from_dict(data["info"]), TraceData(spans))

    def __repr__(self) -> str:
        return (
            f"Trace(trace_id={self.trace_id!r}, state={self.info.state.value}, spans={len(self.data.spans)})"
        )

    def _repr_html_(self) -> Optional[str]:
        """Jupyter's rich display: the trace view of ``records/html.py`` (span tree, timeline,
        details) in a sandboxed iframe. ``tracing.disable_notebook_display()`` turns it off (MLflow's
        switch): None makes Jupyter show the plain ``repr``."""
        if not STATE.notebook_display:
            return None
        return notebook_html([self])
