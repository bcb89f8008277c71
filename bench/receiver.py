"""A counting OTLP receiver for the benchmark, in its own process (HTTP at /v1/traces and gRPC).

It decodes every request (so a malformed one would show) and counts spans, requests and bytes.
Control: GET /count returns them as JSON; POST /reset zeroes them. Usage:
    python bench/receiver.py HTTP_PORT GRPC_PORT
"""

from __future__ import annotations

import gzip
import json
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

_lock = threading.Lock()
_counts = {"spans": 0, "requests": 0, "bytes": 0}
_EMPTY = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()


def _count(request: trace_service_pb2.ExportTraceServiceRequest, size: int) -> None:
    spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    with _lock:
        _counts["spans"] += spans
        _counts["requests"] += 1
        _counts["bytes"] += size


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _reply(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        with _lock:
            body = json.dumps(_counts).encode()
        self._reply(200, body, "application/json")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        if self.path == "/reset":
            with _lock:
                for key in _counts:
                    _counts[key] = 0
            self._reply(200, b"{}", "application/json")
            return
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = trace_service_pb2.ExportTraceServiceRequest()
        request.ParseFromString(body)
        _count(request, length)
        self._reply(200, _EMPTY, "application/x-protobuf")

    def log_message(self, *args: object) -> None:
        return


class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request, context):  # the generated service's method name
        _count(request, request.ByteSize())
        return trace_service_pb2.ExportTraceServiceResponse()


def main() -> None:
    http_port, grpc_port = int(sys.argv[1]), int(sys.argv[2])
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Servicer(), server)
    server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    server.start()
    httpd = ThreadingHTTPServer(("127.0.0.1", http_port), Handler)
    httpd.daemon_threads = True
    print("ready", flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
