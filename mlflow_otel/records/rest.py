"""MLflow's read API on an MLflow tracking server, over its REST API (no ``mlflow`` import).

Endpoints (MLflow 3.18, ``mlflow/server/handlers.py``; the same on 3.17):

* search: ``POST /api/3.0/mlflow/traces/search`` (``SearchTracesV3``: records only, at most 500 a
  page), then the spans of each page with ``GET /api/3.0/mlflow/traces/batchGet`` (10 traces a call,
  as MLflow's client asks);
* one trace: ``GET /api/3.0/mlflow/traces/get`` (``GetTrace``: record and spans);
* ``POST /api/3.0/mlflow/traces/delete-traces``; tags with ``PATCH`` / ``DELETE``
  ``/api/2.0/mlflow/traces/{id}/tags`` (the paths MLflow's client uses);
* assessments: ``POST /api/3.0/mlflow/traces/{id}/assessments``, ``GET`` / ``DELETE``
  ``.../assessments/{assessment_id}``.

Answers are protobuf JSON: records are ``TraceInfoV3`` (times as RFC 3339 timestamps and durations),
spans are OTLP ``Span`` messages with base64 ids and ``AnyValue`` attributes that the server decoded
from MLflow's JSON strings; they become the same ``Span`` entities the other stores give (MLflow's
JSON-valued attributes such as ``mlflow.spanInputs`` are JSON strings again, decoded on read).

Errors are the user's to see: one ``MlflowException`` with the server's message
(``_mlflow_server.RestClient``).
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from mlflow_otel import semconv as conv
from mlflow_otel._mlflow_server import (
    DEFAULT_EXPERIMENT_ID,
    RESOURCE_DOES_NOT_EXIST,
    Experiment,
    MlflowServerError,
    RestClient,
    duration_from_json,
    timestamp_from_json,
)
from mlflow_otel._settings import Settings
from mlflow_otel.exceptions import MlflowException
from mlflow_otel.otlp.ids import decode_wire_id
from mlflow_otel.records.assessment import Assessment
from mlflow_otel.records.model import Span, Trace, TraceData, TraceInfo, TraceState
from mlflow_otel.spans.types import Link, SpanEvent, SpanStatus, SpanStatusCode

#: The server's page limit for ``SearchTracesV3`` and MLflow's ``batchGet`` size.
MAX_PAGE = 500
BATCH_GET = 10
_STATUS = {
    "STATUS_CODE_UNSET": SpanStatusCode.UNSET,
    "STATUS_CODE_OK": SpanStatusCode.OK,
    "STATUS_CODE_ERROR": SpanStatusCode.ERROR,
    0: SpanStatusCode.UNSET,
    1: SpanStatusCode.OK,
    2: SpanStatusCode.ERROR,
}


# --- decoding MLflow's protobuf JSON ---------------------------------------------------------------


def any_value(value: Mapping[str, Any]) -> Any:
    """An OTLP ``AnyValue`` in protobuf JSON (snake_case or camelCase field names) as Python."""
    for key in ("string_value", "stringValue"):
        if key in value:
            return value[key]
    for key in ("bool_value", "boolValue"):
        if key in value:
            return bool(value[key])
    for key in ("int_value", "intValue"):
        if key in value:
            return int(value[key])
    for key in ("double_value", "doubleValue"):
        if key in value:
            return float(value[key])
    for key in ("array_value", "arrayValue"):
        if key in value:
            return [any_value(v) for v in (value[key] or {}).get("values", [])]
    for key in ("kvlist_value", "kvlistValue"):
        if key in value:
            return {
                kv["key"]: any_value(kv.get("value") or {}) for kv in (value[key] or {}).get("values", [])
            }
    for key in ("bytes_value", "bytesValue"):
        if key in value:
            return base64.b64decode(value[key])
    return None


def _attributes(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in items or ():
        key = str(kv.get("key", ""))
        value = any_value(kv.get("value") or {})
        # MLflow's JSON-valued attributes travel as JSON strings here, as they do on our wire.
        out[key] = json.dumps(value, ensure_ascii=False) if key in conv.JSON_KEYS else value
    return out


def span_from_proto_json(data: Mapping[str, Any]) -> Span:
    """One span of a ``GetTrace`` / ``BatchGetTraces`` answer as MLflow's ``Span``."""
    status = data.get("status") or {}
    parent = data.get("parent_span_id") or data.get("parentSpanId")
    end = data.get("end_time_unix_nano", data.get("endTimeUnixNano"))
    return Span(
        trace_id="tr-" + decode_wire_id(data.get("trace_id", data.get("traceId")), 32),
        span_id=decode_wire_id(data.get("span_id", data.get("spanId")), 16),
        parent_id=decode_wire_id(parent, 16) if parent else None,
        name=str(data.get("name", "")),
        start_time_ns=int(data.get("start_time_unix_nano", data.get("startTimeUnixNano")) or 0),
        end_time_ns=int(end) if end not in (None, "", 0, "0") else None,
        status=SpanStatus(
            _STATUS.get(status.get("code", 0), SpanStatusCode.UNSET), status.get("message", "")
        ),
        attributes=_attributes(data.get("attributes")),
        events=[
            SpanEvent(
                str(e.get("name", "")),
                int(e.get("time_unix_nano", e.get("timeUnixNano")) or 0),
                _attributes(e.get("attributes")),
            )
            for e in data.get("events") or ()
        ],
        links=[
            Link(
                "tr-" + decode_wire_id(link.get("trace_id", link.get("traceId")), 32),
                decode_wire_id(link.get("span_id", link.get("spanId")), 16),
                _attributes(link.get("attributes")) or None,
            )
            for link in data.get("links") or ()
        ],
    )


def trace_info_from_json(data: Mapping[str, Any]) -> TraceInfo:
    """A ``TraceInfoV3`` in protobuf JSON as MLflow's ``TraceInfo``."""
    state = str(data.get("state") or "STATE_UNSPECIFIED")
    return TraceInfo(
        trace_id=str(data.get("trace_id", "")),
        trace_location=data.get("trace_location"),
        request_time=timestamp_from_json(data.get("request_time")) or 0,
        execution_duration=duration_from_json(data.get("execution_duration")),
        state=TraceState(state) if state in TraceState.__members__ else TraceState.STATE_UNSPECIFIED,
        request_preview=data.get("request_preview"),
        response_preview=data.get("response_preview"),
        client_request_id=data.get("client_request_id"),
        trace_metadata=dict(data.get("trace_metadata") or {}),
        tags=dict(data.get("tags") or {}),
        assessments=[Assessment.from_dictionary(a) for a in data.get("assessments") or ()],
    )


def trace_from_json(data: Mapping[str, Any]) -> Trace:
    spans = [span_from_proto_json(s) for s in data.get("spans") or ()]
    spans.sort(key=lambda s: (s.start_time_ns, s.parent_id is not None))
    return Trace(trace_info_from_json(data.get("trace_info") or {}), TraceData(spans))


def _path_id(value: str) -> str:
    return urllib.parse.quote(str(value), safe="")


class RestStore:
    """MLflow's read API on one tracking server (``records/store.py``'s ``TraceStore``)."""

    def __init__(
        self,
        tracking_uri: str,
        settings: Settings,
        experiment_id: Optional[str] = None,
        experiment_name: Optional[str] = None,
    ) -> None:
        self.client = RestClient(tracking_uri, settings.tracking_auth)
        self.tracking_uri = self.client.tracking_uri
        self._experiment_id = experiment_id
        self._experiment_name = experiment_name

    def describe(self) -> str:
        return f"the MLflow server at {self.client.shown_uri}"

    def default_experiment_ids(self) -> list[str]:
        """MLflow's default search location: the experiment set (by id, else by name), else 0."""
        if self._experiment_id:
            return [str(self._experiment_id)]
        if self._experiment_name:
            found = self.client.get_experiment_by_name(self._experiment_name)
            if found is None:
                raise MlflowException(
                    f"Experiment {self._experiment_name!r} does not exist on {self.client.shown_uri}.",
                    error_code=RESOURCE_DOES_NOT_EXIST,
                )
            return [found.experiment_id]
        return [DEFAULT_EXPERIMENT_ID]

    # --- reads -------------------------------------------------------------------------------------
    def get_trace(self, trace_id: str) -> Optional[Trace]:
        try:
            data = self.client.call("GET", "/api/3.0/mlflow/traces/get", params={"trace_id": trace_id})
        except MlflowServerError as exc:
            if exc.error_code == RESOURCE_DOES_NOT_EXIST or exc.status == 404:
                return None
            raise
        trace = data.get("trace")
        return trace_from_json(trace) if trace else None

    def search_traces(
        self,
        experiment_ids: Optional[Sequence[str]],
        filter_string: Optional[str],
        max_results: Optional[int],
        order_by: Optional[Sequence[str]],
        page_token: Optional[str] = None,
        include_spans: bool = True,
    ) -> tuple[list[Trace], Optional[str]]:
        """One page: at most ``max_results`` (and at most 500, the server's limit)."""
        ids = [str(e) for e in experiment_ids] if experiment_ids else self.default_experiment_ids()
        body: dict[str, Any] = {
            "locations": [
                {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": e}} for e in ids
            ],
            "max_results": min(MAX_PAGE, max_results) if max_results is not None else MAX_PAGE,
        }
        if filter_string:
            body["filter"] = filter_string
        if order_by:
            body["order_by"] = list(order_by)
        if page_token:
            body["page_token"] = page_token
        data = self.client.call("POST", "/api/3.0/mlflow/traces/search", body)
        infos = [trace_info_from_json(t) for t in data.get("traces") or ()]
        token = data.get("next_page_token") or None
        if not infos and not page_token and experiment_ids:
            self._check_experiments(ids)
        if not include_spans:
            return [Trace(info, TraceData([])) for info in infos], token
        full = self.batch_get([info.trace_id for info in infos])
        return [
            Trace(info, full[info.trace_id].data) if info.trace_id in full else Trace(info, TraceData([]))
            for info in infos
        ], token

    def _check_experiments(self, ids: list[str]) -> None:
        """An empty search of an experiment that does not exist is a mistake worth saying."""
        for experiment_id in ids:
            if self.client.get_experiment(experiment_id) is None:
                raise MlflowException(
                    f"Experiment with ID '{experiment_id}' does not exist on {self.client.shown_uri}.",
                    error_code=RESOURCE_DOES_NOT_EXIST,
                )

    def batch_get(self, trace_ids: Sequence[str]) -> dict[str, Trace]:
        out: dict[str, Trace] = {}
        for start in range(0, len(trace_ids), BATCH_GET):
            chunk = list(trace_ids[start : start + BATCH_GET])
            data = self.client.call("GET", "/api/3.0/mlflow/traces/batchGet", params={"trace_ids": chunk})
            for item in data.get("traces") or ():
                trace = trace_from_json(item)
                out[trace.info.trace_id] = trace
            for missing in (t for t in chunk if t not in out):  # spans kept elsewhere (artifacts)
                trace = self.get_trace(missing)
                if trace is not None:
                    out[missing] = trace
        return out

    def get_experiment_by_name(self, name: str) -> Optional[Experiment]:
        return self.client.get_experiment_by_name(name)

    # --- writes ------------------------------------------------------------------------------------
    def delete_traces(
        self,
        experiment_id: Optional[str],
        max_timestamp_millis: Optional[int] = None,
        max_traces: Optional[int] = None,
        trace_ids: Optional[Sequence[str]] = None,
    ) -> int:
        body: dict[str, Any] = {"experiment_id": str(experiment_id or self.default_experiment_ids()[0])}
        if max_timestamp_millis is not None:
            body["max_timestamp_millis"] = int(max_timestamp_millis)
        if max_traces is not None:
            body["max_traces"] = int(max_traces)
        if trace_ids:
            body["request_ids"] = list(trace_ids)
        data = self.client.call("POST", "/api/3.0/mlflow/traces/delete-traces", body)
        return int(data.get("traces_deleted") or 0)

    def set_trace_tag(self, trace_id: str, key: str, value: str) -> None:
        self.client.call(
            "PATCH", f"/api/2.0/mlflow/traces/{_path_id(trace_id)}/tags", {"key": key, "value": value}
        )

    def delete_trace_tag(self, trace_id: str, key: str) -> None:
        self.client.call("DELETE", f"/api/2.0/mlflow/traces/{_path_id(trace_id)}/tags", {"key": key})

    def log_assessment(self, trace_id: str, assessment: Assessment) -> Assessment:
        assessment.trace_id = trace_id
        data = self.client.call(
            "POST",
            f"/api/3.0/mlflow/traces/{_path_id(trace_id)}/assessments",
            {"assessment": assessment.to_dictionary()},
        )
        return Assessment.from_dictionary(data.get("assessment") or {})

    def update_assessment(self, trace_id: str, assessment_id: str, assessment: Assessment) -> Assessment:
        """MLflow's ``UpdateAssessment``: name, value, rationale and metadata of ``assessment``."""
        data = assessment.to_dictionary()
        changed: dict[str, Any] = {"assessment_id": assessment_id, "trace_id": trace_id}
        paths = []
        for key in ("assessment_name", "expectation", "feedback", "rationale", "metadata"):
            if key in data:
                changed[key] = data[key]
                paths.append(key)
        body = {"assessment": changed, "update_mask": ",".join(paths)}
        path = f"/api/3.0/mlflow/traces/{_path_id(trace_id)}/assessments/{_path_id(assessment_id)}"
        return Assessment.from_dictionary(self.client.call("PATCH", path, body).get("assessment") or {})

    def get_assessment(self, trace_id: str, assessment_id: str) -> Assessment:
        data = self.client.call(
            "GET", f"/api/3.0/mlflow/traces/{_path_id(trace_id)}/assessments/{_path_id(assessment_id)}"
        )
        return Assessment.from_dictionary(data.get("assessment") or {})

    def delete_assessment(self, trace_id: str, assessment_id: str) -> None:
        self.client.call(
            "DELETE", f"/api/3.0/mlflow/traces/{_path_id(trace_id)}/assessments/{_path_id(assessment_id)}"
        )
