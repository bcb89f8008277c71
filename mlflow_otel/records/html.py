"""A trace set as one self-contained HTML page: the span tree (span types marked) beside a timeline,
and per span its inputs, outputs, attributes, events (errors highlighted, exception stacks shown),
token usage; per trace its state, tags, session and user.

Written by ``mlflow-otel show --html`` and shown by ``Trace._repr_html_`` in Jupyter (inside a
sandboxed ``<iframe srcdoc>``, so the page's CSS and script cannot touch the notebook).

Why it is built this way:

* **No network**: CSS and script are inline; a Content-Security-Policy (``default-src 'none'``)
  makes the browser refuse any request the page could make, so it opens offline and leaks nothing.
* **Every value from a span is escaped here, in Python** (``html.escape`` with quotes): names, span
  types, attribute keys and values, event names, tags, ids. The script never builds markup from
  data; it only clones what Python escaped. And it runs under a per-page CSP nonce, so even a
  ``<script>`` that escaped escaping would not run.
* **Fast with large traces**: the tree is one flat list of flex rows (indentation from the depth,
  subtrees collapse by walking siblings) that the browser lays out only when scrolled into view
  (``content-visibility: auto``); each span's details are parsed once as an inert ``<template>``
  and only the selected one is rendered. A 1,000-span trace renders in a fraction of
  a second (``tests/test_trace_view.py`` measures it in Chromium). After the first paint the script
  sets the ``performance.mark`` named :data:`RENDERED_MARK`.

The fields shown follow MLflow's trace UI (``mlflow.entities``: span type, inputs / outputs,
``mlflow.chat.tokenUsage``, the trace's tags and ``mlflow.trace.session`` / ``mlflow.trace.user``).
"""

from __future__ import annotations

import datetime
import html
import json
import secrets
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

from mlflow_otel import semconv as conv
from mlflow_otel.spans.types import SpanStatusCode, SpanType

if TYPE_CHECKING:  # model.py imports this module (``Trace._repr_html_``)
    from mlflow_otel.records.model import Span, Trace

#: The ``performance.mark`` the page's script sets once the page is rendered and painted.
RENDERED_MARK = "mlflow-otel-rendered"
#: Longest text shown for one value; the rest is counted, never silently dropped.
VALUE_MAX_CHARS = 100_000
#: Deepest indentation drawn in the tree (a deeper span shows its depth instead).
_MAX_INDENT = 24
_INDENT_PX = 14
#: Span types with their own colour; any other type is drawn in the neutral one.
_KNOWN_TYPES = frozenset(v for k, v in vars(SpanType).items() if k.isupper())
_PAYLOAD_KEYS = (conv.SPAN_INPUTS, conv.SPAN_OUTPUTS)
#: The GenAI semantic conventions' usage attributes (gen-ai-spans.md), for spans of other SDKs.
_GENAI_INPUT_TOKENS = "gen_ai.usage.input_tokens"
_GENAI_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"


def _e(value: Any) -> str:
    return html.escape(value if isinstance(value, str) else str(value), quote=True)


def _pretty(value: Any) -> str:
    """A value as readable text: JSON indented, strings as they are, cut at VALUE_MAX_CHARS."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    if len(text) > VALUE_MAX_CHARS:
        text = text[:VALUE_MAX_CHARS] + f"\n… ({len(text) - VALUE_MAX_CHARS:,} more characters not shown)"
    return text


def _ms(ns: float) -> str:
    ms = ns / 1e6
    if ms < 1:
        return f"{ms:.3f} ms"
    if ms < 1000:
        return f"{ms:.1f} ms"
    return f"{ms / 1000:.2f} s"


def _utc(ns: int) -> str:
    try:
        moment = datetime.datetime.fromtimestamp(ns / 1e9, tz=datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return str(ns)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _type_class(span_type: Any) -> str:
    return "ty ty-" + span_type if isinstance(span_type, str) and span_type in _KNOWN_TYPES else "ty"


def token_usage(span: Span) -> Optional[dict[str, int]]:
    """A span's token usage: MLflow's ``mlflow.chat.tokenUsage``, else the GenAI semantic
    conventions' ``gen_ai.usage.input_tokens`` / ``output_tokens``."""
    usage = span.get_attribute(conv.CHAT_TOKEN_USAGE)
    if isinstance(usage, Mapping):
        return {str(k): v for k, v in usage.items() if isinstance(v, (int, float))}
    attrs = span.raw_attributes
    found = {
        key: attrs[name]
        for key, name in (("input_tokens", _GENAI_INPUT_TOKENS), ("output_tokens", _GENAI_OUTPUT_TOKENS))
        if isinstance(attrs.get(name), (int, float))
    }
    if found and "total_tokens" not in found:
        found["total_tokens"] = sum(found.values())
    return found or None


def _usage_text(usage: Mapping[str, Any]) -> str:
    labels = (("input_tokens", "in"), ("output_tokens", "out"), ("total_tokens", "total"))
    parts = [f"{label} {usage[key]:,}" for key, label in labels if isinstance(usage.get(key), (int, float))]
    parts += [f"{k} {v}" for k, v in usage.items() if k not in dict(labels)]
    return " · ".join(parts)


def _tree(spans: Sequence[Span]) -> Iterator[tuple[Span, int, bool]]:
    """Spans depth first, children by start time: (span, depth, has children). Iterative, so a
    trace nested thousands deep renders too."""
    ids = {s.span_id for s in spans}
    children: dict[Optional[str], list[Span]] = {}
    for span in spans:
        parent = span.parent_id if span.parent_id in ids and span.parent_id != span.span_id else None
        children.setdefault(parent, []).append(span)
    for items in children.values():
        items.sort(key=lambda s: s.start_time_ns, reverse=True)
    stack = [(root, 0) for root in children.get(None, [])]
    seen: set[str] = set()
    while stack:
        span, depth = stack.pop()
        if span.span_id in seen:  # a cycle in a hostile file
            continue
        seen.add(span.span_id)
        kids = children.get(span.span_id, [])
        yield span, depth, bool(kids)
        stack.extend((kid, depth + 1) for kid in kids)
    for span in spans:  # spans only reachable through a cycle
        if span.span_id not in seen:
            seen.add(span.span_id)
            yield span, 0, False


def _table(rows: Sequence[tuple[str, str]], cls: str = "kv") -> str:
    """Rows of already escaped (key, value) HTML."""
    if not rows:
        return ""
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="{cls}">{body}</table>'


def _value_cell(value: Any) -> str:
    text = _pretty(value)
    if "\n" in text or len(text) > 120:
        return f"<pre>{_e(text)}</pre>"
    return f"<code>{_e(text)}</code>"


def _event(event: Any, t0: int) -> str:
    attrs = dict(event.attributes or {})
    is_exc = event.name == "exception"
    head = (
        f'<div class="evh"><span class="evn">{_e(event.name)}</span>'
        f' <span class="off">+{_e(_ms(max(0, event.timestamp - t0)))}</span></div>'
    )
    body = ""
    if is_exc:
        kind, message = attrs.pop("exception.type", ""), attrs.pop("exception.message", "")
        stack = attrs.pop("exception.stacktrace", "")
        body += f'<div class="excm">{_e(kind)}: {_e(message)}</div>'
        if stack:
            body += f'<pre class="stack">{_e(_pretty(stack))}</pre>'
    body += _table([(_e(k), _value_cell(v)) for k, v in sorted(attrs.items())])
    return f'<div class="event{" exc" if is_exc else ""}">{head}{body}</div>'


def _details(span: Span, t0: int) -> str:
    raw = span.raw_attributes
    span_type = span.span_type
    error = span.status.status_code is SpanStatusCode.ERROR
    out = [
        "<h3>"
        + (f'<span class="{_type_class(span_type)}">{_e(span_type)}</span> ' if span_type else "")
        + f'<span class="dn">{_e(span.name)}</span> '
        f'<span class="st st-{span.status.status_code.value}">{_e(span.status.status_code.value)}</span></h3>'
    ]
    if error and span.status.description:
        out.append(f'<div class="errbox">{_e(span.status.description)}</div>')
    duration = _ms(span.end_time_ns - span.start_time_ns) if span.end_time_ns else "still open"
    facts = [
        ("span id", _e(span.span_id)),
        ("parent", _e(span.parent_id or "—")),
        ("start", f"+{_e(_ms(max(0, span.start_time_ns - t0)))} ({_e(_utc(span.start_time_ns))})"),
        ("duration", _e(duration)),
    ]
    usage = token_usage(span)
    if usage:
        facts.append(("tokens", _e(_usage_text(usage))))
    out.append(_table(facts, "kv facts"))
    for key, label in ((conv.SPAN_INPUTS, "Inputs"), (conv.SPAN_OUTPUTS, "Outputs")):
        if key in raw:
            out.append(f'<h4>{label}</h4><pre class="payload">{_e(_pretty(span.get_attribute(key)))}</pre>')
    attrs = [(k, v) for k, v in span.attributes.items() if k not in _PAYLOAD_KEYS]
    if attrs:
        out.append("<h4>Attributes</h4>")
        out.append(_table([(_e(k), _value_cell(v)) for k, v in sorted(attrs, key=lambda kv: kv[0])]))
    if span.events:
        out.append(f"<h4>Events ({len(span.events)})</h4>")
        out.extend(_event(ev, t0) for ev in span.events)
    if span.links:
        out.append("<h4>Links</h4>")
        out.append(
            _table(
                [
                    (_e(link.trace_id), _e(link.span_id) + _value_cell(link.attributes or {}))
                    for link in span.links
                ]
            )
        )
    return "".join(out)


def _duration_label(left: float, width: float, text: str) -> str:
    """A bar's duration beside it: after the bar when there is room, else before it, else on it."""
    if left + width <= 82:
        style, cls = f"left:{left + width:.3f}%", "dur"
    elif left >= 18:
        style, cls = f"right:{100 - left:.3f}%", "dur before"
    else:
        style, cls = f"left:{left:.3f}%", "dur on"
    return f'<span class="{cls}" style="{style}">{_e(text)}</span>'


def _axis(total_ns: int) -> str:
    ticks = "".join(
        f'<span class="tick" style="left:{frac * 100:.0f}%">{_e(_ms(total_ns * frac))}</span>'
        for frac in (0, 0.25, 0.5, 0.75)
    )
    return (
        f'<div class="axis"><div class="nm">span</div><div class="tl">{ticks}'
        f'<span class="tick end">{_e(_ms(total_ns))}</span></div></div>'
    )


def _trace_header(trace: Trace, spans: Sequence[Span]) -> str:
    info = trace.info
    root = next((s for s in spans if s.span_id and s.parent_id is None), spans[0] if spans else None)
    root_attrs = root.raw_attributes if root is not None else {}
    meta = info.trace_metadata
    session = meta.get(conv.MLFLOW_SESSION_KEY) or root_attrs.get(conv.SESSION_ID)
    user = meta.get(conv.MLFLOW_USER_KEY) or root_attrs.get(conv.USER_ID)
    name = info.tags.get(conv.TRACE_NAME) or (root.name if root is not None else "")
    state = info.state.value
    errors = sum(1 for s in spans if s.status.status_code is SpanStatusCode.ERROR)
    facts = [
        ("trace id", _e(info.trace_id)),
        ("start", _e(_utc(info.request_time * 1_000_000))),
        ("duration", _e(_ms(root.end_time_ns - root.start_time_ns) if root and root.end_time_ns else "open")),
        ("spans", _e(f"{len(spans):,}" + (f" ({errors} with errors)" if errors else ""))),
    ]
    if session:
        facts.append(("session", _e(session)))
    if user:
        facts.append(("user", _e(user)))
    if info.client_request_id:
        facts.append(("client request id", _e(info.client_request_id)))
    usage = info.token_usage
    if usage:
        facts.append(("tokens", _e(_usage_text(usage))))
    if info.request_preview:
        facts.append(("request", _e(info.request_preview)))
    if info.response_preview:
        facts.append(("response", _e(info.response_preview)))
    tags = [(k, v) for k, v in sorted(info.tags.items()) if k != conv.TRACE_NAME]
    metadata = sorted(meta.items())
    return (
        f'<header><h2><span class="st st-{_e(state)}">{_e(state)}</span> {_e(name)}</h2><div class="hgrid">'
        + _table(facts, "kv facts")
        + (
            f'<div class="tags"><h4>Tags</h4>{_table([(_e(k), _e(v)) for k, v in tags], "kv")}</div>'
            if tags
            else ""
        )
        + (
            f'<details class="meta"><summary>Metadata ({len(metadata)})</summary>'
            f"{_table([(_e(k), _value_cell(v)) for k, v in metadata])}</details>"
            if metadata
            else ""
        )
        + "</div></header>"
    )


def _trace_section(trace: Trace, index: int) -> str:
    spans = trace.data.spans
    t0 = min((s.start_time_ns for s in spans), default=0)
    t_end = max((s.end_time_ns or s.start_time_ns for s in spans), default=t0)
    total = max(t_end - t0, 1)
    rows: list[str] = []
    templates: list[str] = []
    for i, (span, depth, has_kids) in enumerate(_tree(spans)):
        error = span.status.status_code is SpanStatusCode.ERROR
        span_type = span.span_type
        end = span.end_time_ns if span.end_time_ns else t_end
        left = (span.start_time_ns - t0) * 100.0 / total
        width = max(end - span.start_time_ns, 0) * 100.0 / total
        usage = token_usage(span)
        usage_total = usage.get("total_tokens") if usage else None
        depth_note = f'<span class="deep">{depth}</span>' if depth > _MAX_INDENT else ""
        duration = _ms(span.end_time_ns - span.start_time_ns) if span.end_time_ns else "open"
        tid = f"s{index}-{i}"
        rows.append(
            f'<div class="row{" err" if error else ""}" data-d="{depth}" data-t="{tid}">'
            f'<div class="nm" style="padding-left:{min(depth, _MAX_INDENT) * _INDENT_PX + 4}px">'
            f'<span class="tg">{"▾" if has_kids else ""}</span>{depth_note}'
            + (f'<span class="{_type_class(span_type)}">{_e(span_type)}</span>' if span_type else "")
            + f'<span class="sn">{_e(span.name)}</span>'
            + ('<span class="bang" title="error">!</span>' if error else "")
            + (f'<span class="tok">{_e(f"{usage_total:,}")} tok</span>' if usage_total else "")
            + f'</div><div class="tl"><span class="bar{"" if span.end_time_ns else " open"}" '
            f'style="left:{left:.3f}%;width:{width:.3f}%"></span>'
            f"{_duration_label(left, width, duration)}</div></div>"
        )
        templates.append(f'<template id="{tid}">{_details(span, t0)}</template>')
    return (
        f'<section class="trace" id="t{index}" data-trace-id="{_e(trace.trace_id)}">'
        + _trace_header(trace, spans)
        # The inert templates before the rows: parsed while nothing below the header needs layout.
        + "".join(templates)
        + '<div class="body"><div class="tree" tabindex="0">'
        + _axis(total)
        + "".join(rows)
        + '</div><aside class="detail"></aside></div>'
        + "</section>"
    )


def _index(traces: Sequence[Trace]) -> str:
    rows = "".join(
        f'<tr><td><a href="#t{i}">{_e(t.info.tags.get(conv.TRACE_NAME, t.trace_id))}</a></td>'
        f'<td><span class="st st-{_e(t.info.state.value)}">{_e(t.info.state.value)}</span></td>'
        f"<td>{_e(_utc(t.info.request_time * 1_000_000))}</td>"
        f"<td>{_e(t.info.execution_duration if t.info.execution_duration is not None else '—')} ms</td>"
        f"<td>{len(t.data.spans):,}</td><td><code>{_e(t.trace_id)}</code></td></tr>"
        for i, t in enumerate(traces)
    )
    return (
        '<nav><table class="index"><tr><th>trace</th><th>state</th><th>start</th><th>duration</th>'
        f"<th>spans</th><th>id</th></tr>{rows}</table></nav>"
    )


_CSS = """
:root{--fg:#1d2433;--mut:#5d6b82;--line:#e3e7ee;--sel:#e8f0fe;--err:#c62828;--errbg:#fdecea;--ok:#2e7d32;
--bar:#4a7bd0;font:13px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg)}
body{margin:0;padding:12px 16px;background:#fff}
h1{font-size:16px;margin:0 0 8px}h2{font-size:15px;margin:4px 0 6px}h3{font-size:14px;margin:0 0 8px}
h4{font-size:12px;margin:12px 0 4px;color:var(--mut);text-transform:uppercase;letter-spacing:.04em}
code,pre{font:12px/1.35 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{margin:0;padding:6px 8px;background:#f6f8fa;border:1px solid var(--line);border-radius:4px;
white-space:pre-wrap;word-break:break-word;max-height:360px;overflow:auto}
section.trace{border-top:2px solid var(--line);padding-top:8px;margin-bottom:24px}
table.kv{border-collapse:collapse;width:100%}table.kv th{text-align:left;vertical-align:top;
font-weight:500;color:var(--mut);padding:2px 10px 2px 0;white-space:nowrap;width:1%}
table.kv td{padding:2px 0;word-break:break-word}table.kv td pre{max-height:200px}
table.facts{width:auto}table.facts td{padding-right:16px}
table.index{border-collapse:collapse;margin-bottom:12px}table.index td,table.index th{padding:2px 10px;
border-bottom:1px solid var(--line);text-align:left}
details.meta{margin-top:4px}details.meta summary{cursor:pointer;color:var(--mut)}
.st{display:inline-block;padding:0 6px;border-radius:8px;font-size:11px;font-weight:600;background:#eceff4}
.st-OK{background:#e6f4ea;color:var(--ok)}.st-ERROR{background:var(--errbg);color:var(--err)}
.body{display:grid;grid-template-columns:minmax(0,3fr) minmax(300px,2fr);gap:12px;margin-top:10px;
align-items:start}
.hgrid{display:flex;flex-wrap:wrap;gap:4px 40px;align-items:flex-start}.hgrid h4{margin-top:0}
.tree{border:1px solid var(--line);border-radius:4px;max-height:78vh;overflow:auto;outline:none}
.row,.axis{display:flex;align-items:center;min-height:22px;border-bottom:1px solid #f1f3f6;cursor:pointer}
.row{content-visibility:auto;contain-intrinsic-size:auto 23px}
.row>.nm,.axis>.nm{flex:0 0 42%;min-width:220px}.row>.tl,.axis>.tl{flex:1 1 0;min-width:0}
.row[hidden]{display:none}.row:hover{background:#f7f9fc}.row.sel{background:var(--sel)}
.axis{position:sticky;top:0;background:#fafbfc;z-index:2;cursor:default;color:var(--mut);font-size:11px}
.nm{white-space:nowrap;overflow:hidden;text-overflow:ellipsis;padding-right:6px}
.axis .nm{padding-left:8px}
.tl{position:relative;height:22px;margin-right:8px}
.tick{position:absolute;top:4px;border-left:1px solid var(--line);padding-left:3px;white-space:nowrap}
.tick.end{right:0;border:0}
.bar{position:absolute;top:6px;height:10px;min-width:2px;background:var(--bar);border-radius:2px}
.bar.open{background:repeating-linear-gradient(45deg,var(--bar),var(--bar) 4px,#9db7e6 4px,#9db7e6 8px)}
.row.err .bar{background:var(--err)}.row.err .sn{color:var(--err);font-weight:600}
.dur{position:absolute;top:4px;margin:0 4px;font-size:11px;line-height:14px;color:var(--mut);
white-space:nowrap}
.dur.on{top:5px;color:#fff;font-size:10px;line-height:12px}
.tg{display:inline-block;width:12px;color:var(--mut)}.row.collapsed .tg{transform:rotate(-90deg)}
.deep{font-size:10px;color:var(--mut);margin-right:3px}
.ty{display:inline-block;font-size:10px;font-weight:600;padding:0 4px;margin-right:5px;border-radius:3px;
background:#eceff4;color:#4c566a;vertical-align:1px}
.ty-LLM,.ty-CHAT_MODEL{background:#ede7f6;color:#5e35b1}.ty-TOOL{background:#fff3e0;color:#e65100}
.ty-RETRIEVER,.ty-RERANKER,.ty-EMBEDDING{background:#e0f2f1;color:#00695c}
.ty-AGENT,.ty-CHAIN,.ty-WORKFLOW,.ty-TASK{background:#e3f2fd;color:#1565c0}
.ty-PARSER,.ty-MEMORY{background:#f3e5f5;color:#8e24aa}.ty-GUARDRAIL,.ty-EVALUATOR{background:#fce4ec;color:#ad1457}
.bang{display:inline-block;margin-left:5px;padding:0 5px;border-radius:8px;background:var(--err);color:#fff;
font-weight:700;font-size:10px}
.tok{margin-left:6px;font-size:11px;color:var(--mut)}
.detail{border:1px solid var(--line);border-radius:4px;padding:10px;max-height:78vh;overflow:auto;min-width:0}
.errbox{background:var(--errbg);color:var(--err);border-left:3px solid var(--err);padding:6px 8px;
margin:0 0 8px;font-weight:600;word-break:break-word}
.event{border:1px solid var(--line);border-radius:4px;padding:6px;margin:4px 0}
.event.exc{border-color:#f5c2c0;background:#fffafa}.evn{font-weight:600}.off{color:var(--mut);font-size:11px}
.excm{color:var(--err);font-weight:600;margin:4px 0;word-break:break-word}
pre.stack{background:#fff;border-color:#f5c2c0;color:#5b1a18;max-height:300px}
.payload{max-height:300px}
"""

# The script only moves nodes Python built and escaped: it never turns data into markup.
_SCRIPT = """
(function(){
function select(sec,row){
 if(!row)return;var prev=sec.querySelector('.row.sel');if(prev)prev.classList.remove('sel');
 row.classList.add('sel');var tpl=document.getElementById(row.getAttribute('data-t'));
 var pane=sec.querySelector('.detail');pane.textContent='';
 if(tpl)pane.appendChild(tpl.content.cloneNode(true));
}
function toggle(row){
 var d=+row.getAttribute('data-d'),collapse=!row.classList.contains('collapsed');
 var hideBelow=collapse?d:Infinity;
 row.classList.toggle('collapsed',collapse);
 for(var r=row.nextElementSibling;r&&+r.getAttribute('data-d')>d;r=r.nextElementSibling){
  var rd=+r.getAttribute('data-d');
  if(collapse||rd>hideBelow){r.hidden=true;continue;}
  hideBelow=Infinity;r.hidden=false;if(r.classList.contains('collapsed'))hideBelow=rd;
 }
}
function step(sec,dir){
 var r=sec.querySelector('.row.sel');if(!r)return;
 do{r=dir>0?r.nextElementSibling:r.previousElementSibling;}while(r&&(r.hidden||!r.classList.contains('row')));
 if(r){select(sec,r);r.scrollIntoView({block:'nearest'});}
}
var sections=document.querySelectorAll('section.trace');
for(var i=0;i<sections.length;i++)(function(sec){
 var tree=sec.querySelector('.tree');
 tree.addEventListener('click',function(ev){
  var row=ev.target.closest('.row');if(!row)return;
  if(ev.target.closest('.tg')&&ev.target.closest('.tg').textContent){toggle(row);return;}
  select(sec,row);
 });
 tree.addEventListener('keydown',function(ev){
  if(ev.key==='ArrowDown'){step(sec,1);ev.preventDefault();}
  else if(ev.key==='ArrowUp'){step(sec,-1);ev.preventDefault();}
  else if(ev.key==='Enter'){var s=sec.querySelector('.row.sel');if(s)toggle(s);}
 });
 select(sec,sec.querySelector('.row.err')||sec.querySelector('.row'));
})(sections[i]);
requestAnimationFrame(function(){setTimeout(function(){
 performance.mark('%(mark)s');document.documentElement.setAttribute('data-rendered','true');
},0);});
})();
"""


def page(traces: Sequence[Trace], title: Optional[str] = None, heading: bool = True) -> str:
    """One self-contained HTML page showing ``traces`` (oldest first); ``heading=False`` leaves
    out the page's own title line (a notebook cell has its context already)."""
    nonce = secrets.token_urlsafe(16)
    title = title or (f"Trace {traces[0].trace_id}" if len(traces) == 1 else f"{len(traces)} traces")
    csp = (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"script-src 'nonce-{nonce}'; img-src data:; base-uri 'none'; form-action 'none'"
    )
    body = "".join(_trace_section(trace, i) for i, trace in enumerate(traces))
    document = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        + (f"<h1>{_e(title)}</h1>" if heading else "")
        + (_index(traces) if len(traces) > 1 else "")
        + (body or "<p>No traces.</p>")
        + f'<script nonce="{nonce}">{_SCRIPT % {"mark": RENDERED_MARK}}</script></body></html>'
    )
    # Lone surrogates (from a hostile or broken file) cannot be written as UTF-8: replace them.
    return document.encode("utf-8", "replace").decode("utf-8")


def notebook_html(traces: Sequence[Trace]) -> str:
    """The page inside a sandboxed iframe (scripts only: no same-origin access to the notebook),
    as Jupyter's ``text/html`` output."""
    spans = sum(len(t.data.spans) for t in traces)
    height = max(560, min(900, 360 + 24 * spans + (28 * len(traces) if len(traces) > 1 else 0)))
    return (
        f'<iframe sandbox="allow-scripts" srcdoc="{_e(page(traces, heading=False))}" '
        f'style="width:100%;height:{height}px;border:1px solid #e3e7ee;border-radius:4px"></iframe>'
    )
