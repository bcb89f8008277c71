"""``mlflow-otel`` command line: look at what the embedded default sink recorded, or ship it.

    mlflow-otel show [--file F] [--limit N] [--trace-id ID] [--verbose]
    mlflow-otel show --html PAGE [--file F] [--trace-id ID | --last N]
    mlflow-otel stats [--file F]
    mlflow-otel push [FILE ...] --to DESTINATION [--experiment NAME] [--protocol P] [--semconv S]
                     [--filter F] [--trace-id ID ...] [--since T] [--dry-run]

Reads the OTLP JSON lines file (or any file the OTel Collector's ``file`` exporter wrote) and prints
the latest traces as trees, with durations, status and span types; with ``--html`` it writes them as
one self-contained page instead (``records/html.py``: span tree, timeline, per-span details).

``push`` replays recorded traces (the embedded default's file when no FILE is named, or files the
Collector's ``file`` exporter wrote) into an OTLP endpoint (``http(s)://host:port[/v1/traces]``,
``grpc://host:port``; headers from ``OTEL_EXPORTER_OTLP_*``) or, with ``--experiment``, an MLflow
server, through the exporters a live run uses (``_push.py``); it prints a summary and exits
non-zero if anything was refused. The replay logic is there; this module parses and prints.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Optional, TextIO

from mlflow_otel import _push as replay
from mlflow_otel import semconv as conv
from mlflow_otel._files import write_replace
from mlflow_otel._state import settings
from mlflow_otel.destinations import OtlpDestination
from mlflow_otel.exceptions import MlflowException
from mlflow_otel.otlp.ids import bare_hex
from mlflow_otel.otlp.json import decode_any_value
from mlflow_otel.records import html as trace_html
from mlflow_otel.records.otlp_file import read_traces

_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


@dataclass
class ShownSpan:
    trace_id: str
    span_id: str
    parent_id: Optional[str]
    name: str
    start_ns: int
    end_ns: int
    status: str
    message: str
    attributes: dict[str, Any]
    service: str
    children: list[ShownSpan] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e6


class Unreadable:
    """Lines skipped because they could not be used (torn, or JSON of another shape)."""

    def __init__(self) -> None:
        self.lines = 0


def _attributes(items: Any) -> dict[str, Any]:
    return {kv["key"]: decode_any_value(kv.get("value") or {}) for kv in items or () if "key" in kv}


def _line_spans(line: str) -> list[ShownSpan]:
    """The spans of one OTLP JSON line; raises ValueError (and the like) if it cannot be used."""
    request = json.loads(line)
    spans = []
    for rs in request.get("resourceSpans") or ():
        resource = _attributes((rs.get("resource") or {}).get("attributes"))
        service = str(resource.get("service.name", ""))
        for ss in rs.get("scopeSpans") or ():
            for s in ss.get("spans") or ():
                status = s.get("status") or {}
                spans.append(
                    ShownSpan(
                        trace_id=str(s.get("traceId", "")),
                        span_id=str(s.get("spanId", "")),
                        parent_id=str(s["parentSpanId"]) if s.get("parentSpanId") else None,
                        name=str(s.get("name", "")),
                        start_ns=int(s.get("startTimeUnixNano", 0)),
                        end_ns=int(s.get("endTimeUnixNano", 0)),
                        status=_STATUS.get(int(status.get("code", 0)), "UNSET"),
                        message=str(status.get("message", "")),
                        attributes=_attributes(s.get("attributes")),
                        service=service,
                    )
                )
    return spans


def read_spans(lines: Iterable[str], unreadable: Optional[Unreadable] = None) -> list[ShownSpan]:
    """Parse OTLP JSON lines; a line that cannot be used (a file may end mid-write; another tool's
    JSON) is skipped and counted in ``unreadable``."""
    spans: list[ShownSpan] = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            spans.extend(_line_spans(line))
        except (ValueError, TypeError, AttributeError, KeyError):
            if unreadable is not None:
                unreadable.lines += 1
    return spans


def _lines_from_end(fh: BinaryIO, chunk: int = 1 << 16) -> Iterator[str]:
    """The file's lines, last first, read in chunks from the end (a big file is not read whole)."""
    fh.seek(0, os.SEEK_END)
    position, rest = fh.tell(), b""
    while position > 0:
        step = min(chunk, position)
        position -= step
        fh.seek(position)
        data = fh.read(step) + rest
        lines = data.split(b"\n")
        rest = lines.pop(0)  # may continue in the previous chunk
        for line in reversed(lines):
            if line.strip():
                yield line.decode("utf-8", errors="replace")
    if rest.strip():
        yield rest.decode("utf-8", errors="replace")


#: After the latest traces' roots are found, lines read further back for their earlier spans.
_LOOK_BACK_LINES = 8


def latest_spans(fh: BinaryIO, traces: int, unreadable: Optional[Unreadable] = None) -> list[ShownSpan]:
    """The spans of the latest ``traces`` traces (those written last), reading from the end of the
    file: a trace's spans are written in its root's batch or an earlier one, so the search goes a
    few lines past the last trace it needs."""
    chosen: list[str] = []
    spans: list[ShownSpan] = []
    quiet = 0
    for line in _lines_from_end(fh):
        found = read_spans([line], unreadable)
        if len(chosen) >= traces:
            found = [s for s in found if s.trace_id in chosen]
            quiet = 0 if found else quiet + 1
            if quiet > _LOOK_BACK_LINES:
                break
        for span in reversed(found):
            if span.trace_id not in chosen and len(chosen) < traces:
                chosen.append(span.trace_id)
        spans.extend(found)
    return [s for s in spans if s.trace_id in chosen]


def build_trees(spans: Sequence[ShownSpan]) -> list[tuple[str, list[ShownSpan]]]:
    """Group spans by trace; return (trace id, root spans) in order of the traces' start. A span
    whose parent chain loops (a broken or hostile file) is shown as a root: the tree stays a tree."""
    traces: dict[str, dict[str, ShownSpan]] = {}
    for span in spans:
        traces.setdefault(span.trace_id, {})[span.span_id] = span
    result = []
    for trace_id, by_id in traces.items():
        roots = []
        for span in by_id.values():
            parent = by_id.get(span.parent_id) if span.parent_id else None
            if parent is not None and _loops(span, by_id):
                parent = None
            (parent.children if parent is not None else roots).append(span)
        for span in by_id.values():
            span.children.sort(key=lambda c: c.start_ns)
        roots.sort(key=lambda r: r.start_ns)
        result.append((trace_id, roots))
    result.sort(key=lambda item: min((r.start_ns for r in item[1]), default=0))
    return result


def _loops(span: ShownSpan, by_id: dict[str, ShownSpan]) -> bool:
    """True if following ``span``'s parents comes back to it."""
    seen: set[str] = set()
    current = by_id.get(span.parent_id) if span.parent_id else None
    while current is not None and current.span_id not in seen:
        if current is span:
            return True
        seen.add(current.span_id)
        current = by_id.get(current.parent_id) if current.parent_id else None
    return False  # reached a root, a parent outside the file, or a loop elsewhere


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]}


def clean(text: str) -> str:
    """Text from a trace as the terminal may print it: control characters (escape sequences, line
    breaks) escaped, so traced input can neither move the cursor nor fake lines of output."""
    return text.translate(_CONTROL)


def _short(value: Any, limit: int = 100) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _usage(span: ShownSpan) -> Optional[dict[str, Any]]:
    """The span's ``mlflow.chat.tokenUsage`` (MLflow's ``input_tokens`` / ``output_tokens`` /
    ``total_tokens``), None if absent or unreadable."""
    value = span.attributes.get(conv.CHAT_TOKEN_USAGE)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def _tokens(usage: dict[str, Any]) -> str:
    total = usage.get("total_tokens")
    if total is None:
        total = sum(
            v for k, v in usage.items() if k in ("input_tokens", "output_tokens") and isinstance(v, int)
        )
    return f"{total} tokens ({usage.get('input_tokens', '?')} in, {usage.get('output_tokens', '?')} out)"


def _line(span: ShownSpan, verbose: bool) -> str:
    span_type = span.attributes.get("mlflow.spanType")
    parts = [clean(span.name)]
    if span_type:
        parts.append(f"[{clean(str(span_type))}]")
    parts.append(f"{span.duration_ms:.1f} ms")
    parts.append(span.status + (f" ({clean(span.message)})" if span.message else ""))
    usage = _usage(span)
    if usage is not None:
        parts.append(_tokens(usage))
    text = "  ".join(parts)
    if verbose:
        for key, label in (("mlflow.spanInputs", "in"), ("mlflow.spanOutputs", "out")):
            if key in span.attributes:
                text += f"\n      {label}: {clean(_short(span.attributes[key]))}"
    return text


def _print_tree(span: ShownSpan, prefix: str, last: bool, verbose: bool, out: TextIO, top: bool) -> None:
    branch = "" if top else ("└─ " if last else "├─ ")
    body = _line(span, verbose).replace("\n", "\n" + prefix + ("   " if last or top else "│  "))
    out.write(prefix + branch + body + "\n")
    child_prefix = prefix + ("" if top else ("   " if last else "│  "))
    for i, child in enumerate(span.children):
        _print_tree(child, child_prefix, i == len(span.children) - 1, verbose, out, False)


def _walk(spans: Sequence[ShownSpan]) -> Iterator[ShownSpan]:
    for span in spans:
        yield span
        yield from _walk(span.children)


def render(
    spans: Sequence[ShownSpan], limit: int, trace_id: Optional[str], verbose: bool, out: TextIO
) -> int:
    trees = build_trees(spans)
    if trace_id:
        wanted = trace_id[3:] if trace_id.startswith("tr-") else trace_id
        trees = [t for t in trees if t[0] == wanted]
    trees = trees[-limit:] if limit > 0 else trees
    for tid, roots in trees:
        tags = {
            k[len("mlflow.traceTag.") :]: v
            for r in roots
            for k, v in r.attributes.items()
            if k.startswith("mlflow.traceTag.")
        }
        service = roots[0].service if roots else ""
        header = f"trace tr-{clean(tid)}"
        if service:
            header += f"  service={clean(service)}"
        if tags:
            header += "  tags=" + clean(",".join(f"{k}={v}" for k, v in tags.items()))
        usages = [u for u in map(_usage, _walk(roots)) if u is not None]
        if usages:  # usage is on the spans that made the calls, once (normalization demotes wrappers)
            header += "  " + _tokens(
                {
                    k: sum(int(u.get(k) or 0) for u in usages)
                    for k in ("input_tokens", "output_tokens", "total_tokens")
                }
            )
        out.write(header + "\n")
        for root in roots:
            _print_tree(root, "  ", True, verbose, out, True)
        out.write("\n")
    return len(trees)


def _stats(path: str) -> int:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"No stats at {path} ({exc}).\n")
        return 1
    processes = len(data.get("processes") or {}) or 1
    sys.stdout.write(
        f"{processes} process(es), last pid {data.get('pid')}  destinations: "
        f"{', '.join(data.get('destinations', []))}\n"
    )
    for name, value in sorted(data.get("counters", {}).items()):
        sys.stdout.write(f"  {name:32s} {value}\n")
    return 0


def _write_html(path: str, out_path: str, trace_id: Optional[str], last: int) -> int:
    """``show --html``: the chosen traces (the file and its rotated generation) as one page."""
    try:
        traces = read_traces(path, [trace_id] if trace_id else None)
    except FileNotFoundError:
        sys.stderr.write(f"No traces file at {path}: run a traced program first, or pass --file.\n")
        return 1
    if trace_id:
        traces = [t for t in traces if bare_hex(t.trace_id) == bare_hex(trace_id)]
    elif last > 0:
        traces = traces[-last:]
    if not traces:
        which = f"trace {trace_id}" if trace_id else "traces"
        sys.stderr.write(f"No {which} in {path}.\n")
        return 1
    document = trace_html.page(traces)
    try:
        write_replace(out_path, document.encode("utf-8"))  # the page holds the traces: 0600
    except OSError as exc:
        sys.stderr.write(f"Could not write {out_path}: {exc}\n")
        return 1
    spans = sum(len(t.data.spans) for t in traces)
    sys.stdout.write(f"Wrote {len(traces)} trace(s), {spans} span(s) to {out_path}\n")
    return 0


class _Bar:
    """A progress bar on stderr, only on a terminal, redrawn at most ten times a second."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._on = out.isatty()
        self._last = 0.0
        self._start = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self._on or (now - self._last < 0.1 and done < total):
            return
        self._last = now
        share = done / total if total else 1.0
        rate = done / max(now - self._start, 1e-6)
        filled = int(share * 30)
        self._out.write(
            f"\r[{'#' * filled}{' ' * (30 - filled)}] {share:4.0%} {done:,}/{total:,} spans {rate:,.0f}/s"
        )
        self._out.flush()

    def end(self) -> None:
        if self._on:
            self._out.write("\n")


def _push(args: argparse.Namespace) -> int:
    paths = args.files or [settings().traces_file]
    try:
        since = replay.parse_since(args.since) if args.since else None
        recorded = replay.read_recorded(paths)
        selected = replay.select(recorded, args.trace_id or (), since, args.filter)
        semconv = OtlpDestination("x", semconv=args.semconv).semconv if args.semconv else None
        if args.experiment:
            target = replay.mlflow_target(settings(), args.to, args.experiment, create=not args.dry_run)
        else:
            target = replay.otlp_target(settings(), args.to, args.protocol, semconv)
    except (replay.PushError, MlflowException, ValueError) as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    spans = sum(len(recorded.traces[t]) for t in selected)
    source = ", ".join(recorded.files)
    if recorded.unreadable:
        sys.stderr.write(f"Skipped {recorded.unreadable} unreadable line(s) of {source}.\n")
    if args.dry_run:
        sys.stdout.write(
            f"Would push {len(selected)} trace(s), {spans} span(s) of {len(recorded.traces)} recorded in "
            f"{source} to {target.description}.\n"
        )
        lines = replay.describe(recorded, selected)
        sys.stdout.write("".join(line + "\n" for line in lines))
        if len(selected) > len(lines):
            sys.stdout.write(f"  ... and {len(selected) - len(lines)} more\n")
        return 0
    if not selected:
        sys.stderr.write(f"No traces to push in {source}.\n")
        return 1
    bar = _Bar(sys.stderr)
    result = replay.push(recorded, selected, target, bar)
    bar.end()
    rate = result.delivered / result.seconds if result.seconds else 0.0
    sys.stdout.write(
        f"Pushed {result.traces} trace(s) to {result.destination}: {result.delivered} of {result.spans} "
        f"span(s) delivered in {result.seconds:.1f} s ({rate:,.0f} spans/s).\n"
    )
    for reason, count in sorted(result.dropped.items()):
        sys.stdout.write(f"  refused: {count} span(s), {reason}\n")
    for outcome, count in sorted(result.records.items()):
        sys.stdout.write(f"  MLflow records {outcome}: {count}\n")
    for message in result.reasons:
        sys.stdout.write(f"  reason: {clean(message)}\n")
    if recorded.unreadable:
        sys.stdout.write(f"  unreadable lines skipped: {recorded.unreadable}\n")
    return 1 if result.failed else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="mlflow-otel", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show", help="print the latest traces from the local traces file as trees")
    show.add_argument(
        "--file",
        default=None,
        help="OTLP JSON lines file (default: $MLFLOW_OTEL_TRACES_FILE or ./mlflow-otel-traces.jsonl)",
    )
    show.add_argument(
        "--limit",
        "--last",
        dest="limit",
        type=int,
        default=None,
        help="how many of the latest traces (0: all; default 5, with --html 1)",
    )
    show.add_argument("--trace-id", default=None, help="only this trace (tr-<hex> or hex)")
    show.add_argument("-v", "--verbose", action="store_true", help="also print inputs and outputs")
    show.add_argument(
        "--html",
        metavar="PAGE",
        default=None,
        help="write the traces as one self-contained HTML page (tree, timeline, details) to PAGE",
    )
    stats = sub.add_parser("stats", help="print the self-telemetry counters the SDK last wrote")
    stats.add_argument("--file", default=None, help="stats file (default: beside the traces file)")
    push = sub.add_parser("push", help="replay recorded traces into an OTLP endpoint or an MLflow server")
    push.add_argument(
        "files", nargs="*", metavar="FILE", help="OTLP JSON lines files (default: the local file)"
    )
    push.add_argument(
        "--to",
        required=True,
        help="OTLP endpoint (http(s)://host:port[/v1/traces], grpc://host:port) or, "
        "with --experiment, an MLflow tracking URI",
    )
    push.add_argument("--experiment", default=None, help="MLflow experiment name (created if missing)")
    push.add_argument("--protocol", choices=("http/protobuf", "grpc"), default=None, help="OTLP protocol")
    push.add_argument(
        "--semconv", default=None, help="conventions the OTLP endpoint gets (e.g. openinference for Phoenix)"
    )
    push.add_argument(
        "--filter", default=None, help="MLflow's search_traces filter, e.g. \"tags.env = 'prod'\""
    )
    push.add_argument("--trace-id", action="append", default=None, help="only this trace (repeatable)")
    push.add_argument("--since", default=None, help="only traces started since: 30m, 2h, 1d or an ISO time")
    push.add_argument("--dry-run", action="store_true", help="say what would go where, send nothing")
    args = parser.parse_args(argv)

    if args.command == "push":
        return _push(args)
    if args.command == "stats":
        return _stats(args.file or settings().stats_file or settings().traces_file + ".stats.json")
    path = args.file or settings().traces_file
    if args.html:
        if args.trace_id and args.limit is not None:
            parser.error("--trace-id and --last are alternatives")
        return _write_html(path, args.html, args.trace_id, 1 if args.limit is None else args.limit)
    limit = 5 if args.limit is None else args.limit
    unreadable = Unreadable()
    try:
        with open(path, "rb") as fh:
            if limit > 0 and not args.trace_id:
                spans = latest_spans(fh, limit, unreadable)
            else:
                spans = read_spans((line.decode("utf-8", errors="replace") for line in fh), unreadable)
    except FileNotFoundError:
        sys.stderr.write(f"No traces file at {path}: run a traced program first, or pass --file.\n")
        return 1
    if unreadable.lines:
        sys.stderr.write(f"Skipped {unreadable.lines} line(s) of {path} that are not OTLP JSON traces.\n")
    shown = render(spans, limit, args.trace_id, args.verbose, sys.stdout)
    if shown == 0:
        sys.stderr.write(f"No traces in {path}.\n")
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
