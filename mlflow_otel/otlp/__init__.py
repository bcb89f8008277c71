"""OTLP's two encodings of finished spans (``json.py``: OTLP/JSON lines, ``protobuf.py``: the wire
bytes of an export request) and trace/span id formats (``ids.py``). A leaf: it imports nothing of
this package, so the write side (exporters) and the read side (records, the CLI) share one codec."""
