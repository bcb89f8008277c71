"""OTLP exporters (HTTP/protobuf and gRPC) built from resolved settings.

The exporter classes are the OTel project's own, so what arrives at a receiver is byte-for-byte what
any OTel SDK sends. The gRPC stack is imported only when gRPC is chosen: it is the heaviest import
of the whole SDK and most users of OTLP/HTTP never need it.
"""

from __future__ import annotations

from opentelemetry.sdk.trace.export import SpanExporter

from mlflow_otel._settings import PROTOCOL_GRPC, OtlpSettings


class ExporterUnavailable(RuntimeError):
    """The exporter package for the configured protocol is not installed."""


def build_otlp_exporter(otlp: OtlpSettings) -> SpanExporter:
    if otlp.protocol == PROTOCOL_GRPC:
        try:
            from grpc import Compression as GrpcCompression
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError as exc:
            raise ExporterUnavailable(
                f"OTLP/gRPC needs opentelemetry-exporter-otlp-proto-grpc ({exc})"
            ) from exc
        endpoint = otlp.endpoint
        insecure = endpoint.startswith("http://")
        return GrpcExporter(
            endpoint=endpoint,
            insecure=insecure,
            headers=tuple(otlp.headers.items()) or None,
            timeout=otlp.timeout_s,
            compression=GrpcCompression.Gzip if otlp.compression == "gzip" else GrpcCompression.NoCompression,
        )
    try:
        from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
    except ImportError as exc:
        raise ExporterUnavailable(f"OTLP/HTTP needs opentelemetry-exporter-otlp-proto-http ({exc})") from exc
    return HttpExporter(
        endpoint=otlp.endpoint,
        headers=dict(otlp.headers) or None,
        timeout=otlp.timeout_s,
        compression=HttpCompression.Gzip if otlp.compression == "gzip" else HttpCompression.NoCompression,
    )
