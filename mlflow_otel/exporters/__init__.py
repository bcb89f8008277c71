"""Exporters: the last pipeline stage. Each is an OTel ``SpanExporter``, so any from the OTel
ecosystem plugs in beside ours."""
