"""A small OTLP receiver (HTTP/protobuf and gRPC) that runs inside the tests.

It decodes every request with the OTLP protobuf definitions (opentelemetry-proto) and keeps it, so
tests can assert on exactly what went over the wire: span fields, attributes, resource, headers.
Real backends (Jaeger, MLflow, rotel) are exercised elsewhere; this one exists for exact bytes and
for fault injection.
"""

from __future__ import annotations

import gzip
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


def decode_any(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [decode_any(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: decode_any(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


@dataclass
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: Optional[str]
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    status_code: int
    status_message: str
    resource: dict[str, Any]
    scope: str
    transport: str
    headers: dict[str, str] = field(default_factory=dict)
    #: Span links: (trace id hex, span id hex, attributes).
    links: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return {0: "UNSET", 1: "OK", 2: "ERROR"}[self.status_code]


@dataclass
class Received:
    transport: str
    headers: dict[str, str]
    request: trace_service_pb2.ExportTraceServiceRequest
    size: int


class OtlpReceiver:
    """Listens on 127.0.0.1 (free ports) for OTLP/HTTP at ``/v1/traces`` and OTLP/gRPC."""

    def __init__(self, grpc_max_receive_bytes: int = 4 * 1024 * 1024) -> None:
        self._lock = threading.Condition()
        self.received: list[Received] = []
        #: Fault injection: answers to give (in order) before answering normally, e.g.
        #: ``[(503, {"Retry-After": "1"})]``; every request is also recorded in ``attempts``.
        self.http_faults: list[tuple[int, dict[str, str]]] = []
        self.attempts: list[float] = []
        #: gRPC faults: ``[(grpc.StatusCode.UNAVAILABLE, retry_delay_s_or_None)]``.
        self.grpc_faults: list[tuple[Any, Optional[float]]] = []
        #: HTTP bodies larger than this get 413, like a collector's max_request_body_size.
        self.max_http_body: Optional[int] = None
        #: Seconds to wait before answering (a slow collector).
        self.delay_s = 0.0
        #: Answer the next requests with an OTLP partial success: (rejected spans, message).
        self.partial_success: Optional[tuple[int, str]] = None
        self._grpc_max = grpc_max_receive_bytes
        self._http: Optional[ThreadingHTTPServer] = None
        self._grpc: Optional[grpc.Server] = None
        self.http_port = 0
        self.grpc_port = 0

    def _response(self) -> Any:
        response = trace_service_pb2.ExportTraceServiceResponse()
        if self.partial_success is not None:
            response.partial_success.rejected_spans = self.partial_success[0]
            response.partial_success.error_message = self.partial_success[1]
        return response

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> OtlpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                receiver.attempts.append(time.monotonic())
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                if receiver.http_faults:
                    status, headers = receiver.http_faults.pop(0)
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if receiver.max_http_body is not None and length > receiver.max_http_body:
                    self.send_response(413)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                raw_size = len(body)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = trace_service_pb2.ExportTraceServiceRequest()
                try:
                    request.ParseFromString(body)
                except Exception:
                    self.send_response(400)
                    self.end_headers()
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver._store(Received("http", headers, request, raw_size))
                payload = receiver._response().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                return

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.http_port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

        class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                receiver.attempts.append(time.monotonic())
                if receiver.grpc_faults:
                    code, retry_delay = receiver.grpc_faults.pop(0)
                    if retry_delay is not None:  # google.rpc.RetryInfo, as collectors send it
                        from google.protobuf import any_pb2, duration_pb2
                        from google.rpc import error_details_pb2, status_pb2

                        detail = any_pb2.Any()
                        info = error_details_pb2.RetryInfo(
                            retry_delay=duration_pb2.Duration(
                                seconds=int(retry_delay), nanos=int((retry_delay % 1) * 1e9)
                            )
                        )
                        detail.Pack(info)
                        status = status_pb2.Status(code=code.value[0], message="injected", details=[detail])
                        context.set_trailing_metadata(
                            (("grpc-status-details-bin", status.SerializeToString()),)
                        )
                    context.abort(code, "injected fault")
                headers = {k: v for k, v in context.invocation_metadata()}
                receiver._store(Received("grpc", headers, request, request.ByteSize()))
                return receiver._response()

        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4),
            options=[("grpc.max_receive_message_length", self._grpc_max)],
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Servicer(), self._grpc)
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._grpc is not None:
            self._grpc.stop(grace=None)

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    # --- data ------------------------------------------------------------------------------------
    def _store(self, item: Received) -> None:
        with self._lock:
            self.received.append(item)
            self._lock.notify_all()

    def clear(self) -> None:
        with self._lock:
            self.received.clear()
            self.attempts.clear()
            self.http_faults.clear()
            self.grpc_faults.clear()
            self.max_http_body = None
            self.delay_s = 0.0

    def spans(self) -> list[ReceivedSpan]:
        out: list[ReceivedSpan] = []
        with self._lock:
            items = list(self.received)
        for item in items:
            for rs in item.request.resource_spans:
                resource = {kv.key: decode_any(kv.value) for kv in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        out.append(
                            ReceivedSpan(
                                name=s.name,
                                trace_id=s.trace_id.hex(),
                                span_id=s.span_id.hex(),
                                parent_id=s.parent_span_id.hex() or None,
                                kind=s.kind,
                                start_ns=s.start_time_unix_nano,
                                end_ns=s.end_time_unix_nano,
                                attributes={kv.key: decode_any(kv.value) for kv in s.attributes},
                                events=[
                                    (e.name, {kv.key: decode_any(kv.value) for kv in e.attributes})
                                    for e in s.events
                                ],
                                status_code=s.status.code,
                                status_message=s.status.message,
                                resource=resource,
                                scope=ss.scope.name,
                                transport=item.transport,
                                headers=item.headers,
                                links=[
                                    (
                                        link.trace_id.hex(),
                                        link.span_id.hex(),
                                        {kv.key: decode_any(kv.value) for kv in link.attributes},
                                    )
                                    for link in s.links
                                ],
                            )
                        )
        return out

    def wait_for_spans(self, count: int, timeout: float = 10.0) -> list[ReceivedSpan]:
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if len(spans) >= count or time.monotonic() > deadline:
                return spans
            with self._lock:
                self._lock.wait(0.05)
