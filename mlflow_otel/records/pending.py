"""Assessments logged on a trace that is still open in this process.

MLflow attaches them to its in-memory trace and sends them with the trace's record
(``StartTraceV3``), so ``log_feedback`` inside a traced function works before the trace exists in
any store. Here they wait in this table, keyed by trace id, until the trace's record is written:
by the local store (``records/local.py``) or the MLflow destination (``exporters/mlflow_record.py``,
in the ``StartTraceV3`` body, as MLflow's SDK sends them). The table is bounded: a trace that never
reaches a store (dropped, sent only to an OTLP backend) leaves its entry to be evicted. A writer
that is handed no table (a store read by another process, ``mlflow-otel push``) has none waiting.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict

from mlflow_otel.records.assessment import Assessment


class PendingAssessments:
    """Assessments held by trace id until the trace's record is written: one table per process,
    owned by the runtime (``_runtime.Runtime``) and handed to the writers of records it builds."""

    #: Traces whose assessments wait at most (the oldest are forgotten first).
    MAX_TRACES = 10_000

    def __init__(self) -> None:
        self._held: OrderedDict[str, list[Assessment]] = OrderedDict()
        self._lock = threading.Lock()

    def hold(self, trace_id: str, assessment: Assessment) -> Assessment:
        """Keep ``assessment`` for the open trace ``trace_id`` (``tr-<32 hex>``), with the id and
        validity a store would give it, so the caller gets back what the store will hold."""
        assessment.trace_id = trace_id
        if assessment.assessment_id is None:
            assessment.assessment_id = "a-" + uuid.uuid4().hex
        if assessment.valid is None:
            assessment.valid = True
        with self._lock:
            held = self._held
            held.setdefault(trace_id, []).append(assessment)
            held.move_to_end(trace_id)
            while len(held) > self.MAX_TRACES:
                held.popitem(last=False)
        return assessment

    def clear(self) -> None:
        """Forget every assessment held (a forked child: they are its parent's to send; a lock the
        parent held at the fork would never be released here)."""
        self._held = OrderedDict()
        self._lock = threading.Lock()

    def take(self, trace_id: str) -> list[Assessment]:
        """The assessments held for ``trace_id``, handed over once (to whoever writes its record)."""
        if not self._held:  # the common case, without the lock
            return []
        with self._lock:
            return self._held.pop(trace_id, [])
