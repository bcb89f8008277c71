"""The trace view: ``mlflow-otel show --html`` (``mlflow_otel/records/html.py``), the OTLP/JSON file
reader behind it (``records/otlp_file.py``) and ``Trace._repr_html_`` in notebooks.

The page is checked twice: as markup here (every value from a span escaped, nothing that could
make a request), and in headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by
Selenium with the driver path given; installed by tests/backends/install.sh): the tree, the
timeline and an error span visible, a hostile input shown as text, a 1,000-span trace rendered in
under a second, screenshots kept under the test's tmp_path.
"""

from __future__ import annotations

import base64
import html.parser
import json
import os
import time
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import mlflow_otel as mlflow
from mlflow_otel import cli, tracing
from mlflow_otel.destinations import FileDestination
from mlflow_otel.entities import SpanEvent, SpanType
from mlflow_otel.records import html as trace_html
from mlflow_otel.records.from_spans import trace_from_otel
from mlflow_otel.records.otlp_file import read_spans, read_traces
from tests.backends.browser import chromium

# Hostile values in every place a span's data reaches the page. Any of them that ran would set
# window.__pwned or add an element the page never uses (img, svg, iframe, b).
HOSTILE_INPUT = "<script>window.__pwned=1</script>"
HOSTILE_NAME = '<img src=x onerror="window.__pwned=2">'
HOSTILE_KEY = '<svg onload="window.__pwned=3">'
HOSTILE_VALUE = "<b>bold</b>"
HOSTILE_EVENT = "<script>window.__pwned=4</script>"
HOSTILE_TAG = '"><iframe src="javascript:window.__pwned=5">'
HOSTILE_ERROR = "</pre><script>window.__pwned=6</script>"


@mlflow.trace(span_type=SpanType.RETRIEVER)
def retrieve(query):
    return [{"doc": "OpenTelemetry is a CNCF project", "score": 0.9}]


@mlflow.trace(span_type=SpanType.TOOL)
def flaky_tool(arg):
    raise ValueError(f"tool failed: {HOSTILE_ERROR}")


@mlflow.trace(span_type=SpanType.CHAT_MODEL)
def chat(messages):
    mlflow.get_current_active_span().set_attribute(
        "mlflow.chat.tokenUsage", {"input_tokens": 12, "output_tokens": 30, "total_tokens": 42}
    )
    return {"choices": [{"message": {"role": "assistant", "content": "It is a CNCF project."}}]}


def app(question):
    """A small agent: a retriever, a failing tool (caught), a chat model; hostile data throughout."""
    with mlflow.start_span("agent", span_type=SpanType.AGENT) as root:
        root.set_inputs({"question": question})
        mlflow.update_current_trace(
            tags={"environment": "test", "note": HOSTILE_TAG}, session_id="session-7", user="alice"
        )
        retrieve(question)
        try:
            flaky_tool(question)
        except ValueError:
            pass
        with mlflow.start_span(HOSTILE_NAME, span_type=SpanType.PARSER) as span:
            span.set_inputs(HOSTILE_INPUT)
            span.set_attribute(HOSTILE_KEY, HOSTILE_VALUE)
            span.add_event(SpanEvent(HOSTILE_EVENT, attributes={HOSTILE_KEY: HOSTILE_VALUE}))
        answer = chat([{"role": "user", "content": question}])
        root.set_outputs(answer)


def big_trace(spans: int = 1000):
    """One trace of ``spans`` spans: a root, 9 steps, 110 calls under each; every 97th fails."""
    assert (spans - 10) % 9 == 0
    per_step = (spans - 10) // 9
    with mlflow.start_span("pipeline", span_type=SpanType.CHAIN) as root:
        root.set_inputs({"batch": list(range(20))})
        for step in range(9):
            with mlflow.start_span(f"step-{step}", span_type=SpanType.AGENT):
                for call in range(per_step):
                    n = step * per_step + call
                    kind = (SpanType.LLM, SpanType.TOOL, SpanType.RETRIEVER)[n % 3]
                    try:
                        with mlflow.start_span(f"call-{n}", span_type=kind) as span:
                            span.set_inputs({"prompt": f"question {n} " + "lorem ipsum " * 10})
                            span.set_outputs({"text": f"answer {n}"})
                            if n % 97 == 0:
                                raise RuntimeError(f"call {n} failed")
                    except RuntimeError:
                        pass


def write_page(tmp_path: Path, name: str, *args: str) -> Path:
    out = tmp_path / name
    assert cli.main(["show", "--html", str(out), *args]) == 0
    return out


# --- reading the OTLP/JSON file --------------------------------------------------------------------------
def test_file_traces_equal_what_the_pipeline_exported(tmp_path):
    path = tmp_path / "both.jsonl"
    memory = InMemorySpanExporter()
    tracing.set_destination([FileDestination(str(path)), memory])
    app("What is OpenTelemetry?")
    assert mlflow.flush_trace_async_logging()
    (from_file,) = read_traces(str(path))
    from_memory = trace_from_otel(memory.get_finished_spans())
    # Same record and spans, whichever way they were read (tuples and lists alike in JSON).
    assert json.loads(from_file.to_json()) == json.loads(from_memory.to_json())
    assert from_file.info.state == "OK" and from_file.info.tags["environment"] == "test"
    tool = from_file.search_spans(span_type=SpanType.TOOL)[0]
    assert tool.status.status_code == "ERROR" and tool.events[0].name == "exception"


def test_reader_skips_broken_lines_and_reads_base64_ids_and_the_rotated_file(tmp_path):
    tid, sid = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    span = {"traceId": tid, "spanId": sid, "name": "root", "startTimeUnixNano": "1", "endTimeUnixNano": "2"}
    b64 = dict(span, traceId=base64.b64encode(bytes.fromhex(tid)).decode(), name="b64")
    b64["spanId"] = base64.b64encode(bytes.fromhex("00000000000000aa")).decode()
    b64["parentSpanId"] = base64.b64encode(bytes.fromhex(sid)).decode()
    request = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    path = tmp_path / "t.jsonl"
    (tmp_path / "t.jsonl.1").write_text(json.dumps(request) + "\n")
    path.write_text(
        "{not json\n\n"
        + json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [b64, "junk"]}]}]})
        + '\n{"resourceSpans": 3}\n{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "x"'
    )
    (trace,) = read_traces(str(path))
    assert trace.trace_id == "tr-" + tid
    assert [(s.name, s.span_id, s.parent_id) for s in trace.data.spans] == [
        ("root", sid, None),
        ("b64", "00000000000000aa", sid),
    ]
    assert read_spans(path.read_text().splitlines(), ["tr-" + "1" * 32]) == []
    with pytest.raises(FileNotFoundError):
        read_traces(str(tmp_path / "none.jsonl"))


# --- the command -----------------------------------------------------------------------------------------
def test_show_html_picks_traces_by_id_or_latest(tmp_path, capsys):
    for i in range(3):
        with mlflow.start_span(f"request-{i}"):
            pass
    assert mlflow.flush_trace_async_logging()
    traces = read_traces(os.environ["MLFLOW_OTEL_TRACES_FILE"])
    assert [t.data.spans[0].name for t in traces] == ["request-0", "request-1", "request-2"]

    latest = write_page(tmp_path, "latest.html").read_text()
    assert latest.count('<section class="trace"') == 1 and "request-2" in latest
    assert "Wrote 1 trace(s), 1 span(s)" in capsys.readouterr().out

    two = write_page(tmp_path, "two.html", "--last", "2").read_text()
    assert two.count('<section class="trace"') == 2 and "request-0" not in two
    assert '<a href="#t0">request-1</a>' in two  # the index of a trace set

    one = write_page(tmp_path, "one.html", "--trace-id", traces[0].trace_id).read_text()
    assert one.count('<section class="trace"') == 1 and "request-0" in one
    bare = write_page(tmp_path, "bare.html", "--trace-id", traces[0].trace_id[3:]).read_text()
    assert 'data-trace-id="' + traces[0].trace_id in bare

    assert cli.main(["show", "--html", str(tmp_path / "x.html"), "--trace-id", "tr-" + "0" * 32]) == 1
    assert "No trace tr-" in capsys.readouterr().err
    assert cli.main(["show", "--html", str(tmp_path / "x.html"), "--file", str(tmp_path / "no")]) == 1
    with pytest.raises(SystemExit):
        cli.main(["show", "--html", str(tmp_path / "x.html"), "--trace-id", "tr-1", "--last", "2"])
    # the text view keeps its own default and accepts --last as well
    assert cli.main(["show", "--last", "1"]) == 0
    assert capsys.readouterr().out.count("trace tr-") == 1


# --- the markup ------------------------------------------------------------------------------------------
class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


PAGE_TAGS = {
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "h4", "nav", "table", "tr", "th",
    "td", "a", "section", "header", "div", "span", "details", "summary", "aside", "template", "pre",
    "code", "script", "p",
}  # fmt: skip


def test_every_value_from_a_span_is_escaped_and_the_page_is_self_contained():
    with TraceCaptureOf() as traces:
        app(HOSTILE_INPUT)
    document = trace_html.page(traces)
    parser = _Tags()
    parser.feed(document)
    used = {tag for tag, _ in parser.tags}
    assert used <= PAGE_TAGS, used - PAGE_TAGS  # no element came from a span's data
    assert [t for t, _ in parser.tags].count("script") == 1  # ours, with the page's nonce
    (script_attrs,) = [a for t, a in parser.tags if t == "script"]
    csp = next(a["content"] for t, a in parser.tags if a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp and f"'nonce-{script_attrs['nonce']}'" in csp
    # No attribute can load anything: no src, no external href, no event handler.
    for _tag, attrs in parser.tags:
        assert "src" not in attrs and not any(k.startswith("on") for k in attrs)
        assert attrs.get("href", "#").startswith("#")
    assert "url(" not in document and "@import" not in document
    # Every hostile string is there, as text.
    text = "".join(parser.text)
    for value in (
        HOSTILE_INPUT,
        HOSTILE_NAME,
        HOSTILE_KEY,
        HOSTILE_VALUE,
        HOSTILE_EVENT,
        HOSTILE_TAG,
        HOSTILE_ERROR,
    ):
        assert value in text or json.dumps(value)[1:-1] in text, value
    # The trace's facts: tags, session, user, token usage; the span tree with types.
    assert "session-7" in text and "alice" in text and "in 12 · out 30 · total 42" in text
    assert {"AGENT", "RETRIEVER", "TOOL", "PARSER", "CHAT_MODEL"} <= set(parser.text)


def test_notebook_display_follows_the_switch():
    with TraceCaptureOf() as traces:
        app("hi")
    (trace,) = traces
    shown = trace._repr_html_()
    assert shown.startswith('<iframe sandbox="allow-scripts" srcdoc="&lt;!DOCTYPE html&gt;')
    parser = _Tags()
    parser.feed(shown)
    assert [t for t, _ in parser.tags] == ["iframe"]  # the whole page is inside the attribute
    assert 'class="row' in parser.tags[0][1]["srcdoc"]
    tracing.disable_notebook_display()
    assert trace._repr_html_() is None
    tracing.enable_notebook_display()
    again = trace._repr_html_()
    assert again.startswith("<iframe") and len(again) == len(shown)  # the same page, a fresh nonce


class TraceCaptureOf:
    """The traces produced inside the block (the fixture's machinery, reused outside pytest's)."""

    def __enter__(self) -> list:
        from mlflow_otel.testing import TraceCapture

        self._capture = TraceCapture().start()
        self._traces: list = []
        return self._traces

    def __exit__(self, *exc) -> None:
        self._traces.extend(self._capture.wait(1))
        self._capture.stop()


def test_deep_and_cyclic_traces_render(tmp_path):
    from mlflow_otel.records.model import Span, Trace, TraceData, TraceInfo, TraceState
    from mlflow_otel.spans.types import SpanStatus, SpanStatusCode

    def span(i, parent):
        return Span(
            trace_id="tr-" + "a" * 32,
            span_id=f"{i:016x}",
            parent_id=None if parent is None else f"{parent:016x}",
            name=f"s{i}",
            start_time_ns=1000 + i,
            end_time_ns=5000,
            status=SpanStatus(SpanStatusCode.OK),
            attributes={"mlflow.spanType": ["not", "a", "string"]},
        )

    chain = [span(0, None)] + [span(i, i - 1) for i in range(1, 3000)]  # 3,000 deep
    cycle = [span(5000, 5001), span(5001, 5000)]  # a broken file: each the other's parent
    info = TraceInfo(trace_id="tr-" + "a" * 32, request_time=0, state=TraceState.OK)
    document = trace_html.page([Trace(info, TraceData(chain + cycle))])
    assert document.count('class="row') == 3002
    assert 'data-d="2999"' in document and '<span class="deep">2999</span>' in document


# --- in a real browser -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    yield from chromium("1400,900", 30)


def open_page(driver, path: Path) -> dict:
    """Navigate to the page and wait for its rendered mark; the timings from navigation start."""
    from selenium.webdriver.support.ui import WebDriverWait

    began = time.perf_counter()
    driver.get(path.as_uri())
    WebDriverWait(driver, 30, poll_frequency=0.01).until(
        lambda d: d.execute_script("return document.documentElement.getAttribute('data-rendered')") == "true"
    )
    wall_ms = (time.perf_counter() - began) * 1000
    timings = driver.execute_script(
        """const nav = performance.getEntriesByType('navigation')[0];
        const mark = performance.getEntriesByName(arguments[0])[0];
        return {rendered_ms: mark.startTime, dom_content_loaded_ms: nav.domContentLoadedEventEnd,
                load_ms: nav.loadEventEnd, resources: performance.getEntriesByType('resource').length,
                rows: document.querySelectorAll('.row').length};""",
        trace_html.RENDERED_MARK,
    )
    timings["wall_ms"] = wall_ms
    return timings


def keep_screenshot(driver, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / name
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    return shot


@pytest.mark.backend
def test_page_in_chromium_tree_timeline_error_and_hostile_input(browser, tmp_path):
    from selenium.webdriver.common.by import By

    app(HOSTILE_INPUT)
    assert mlflow.flush_trace_async_logging()
    timings = open_page(browser, write_page(tmp_path, "trace.html"))
    assert timings["resources"] == 0 and timings["rows"] == 5  # no request made; five spans

    rows = browser.find_elements(By.CSS_SELECTOR, ".tree .row")
    assert all(row.is_displayed() for row in rows)
    names = [row.find_element(By.CSS_SELECTOR, ".sn").text for row in rows]
    assert names == ["agent", "retrieve", "flaky_tool", HOSTILE_NAME, "chat"]  # the hostile name, as text
    types = [row.find_element(By.CSS_SELECTOR, ".ty").text for row in rows]
    assert types == ["AGENT", "RETRIEVER", "TOOL", "PARSER", "CHAT_MODEL"]
    # The timeline: a visible bar per span, the root spanning it, children later in start order.
    bars = [row.find_element(By.CSS_SELECTOR, ".bar") for row in rows]
    assert all(bar.is_displayed() and bar.size["width"] >= 2 for bar in bars)
    assert bars[0].size["width"] > 0.9 * rows[0].find_element(By.CSS_SELECTOR, ".tl").size["width"]
    starts = [bar.location["x"] for bar in bars[1:]]
    assert starts == sorted(starts)
    # The error span: marked in the tree, red on the timeline, selected first with its stack shown.
    (err,) = browser.find_elements(By.CSS_SELECTOR, ".row.err")
    assert err.is_displayed() and "flaky_tool" in err.text and "sel" in err.get_attribute("class")
    assert (
        err.find_element(By.CSS_SELECTOR, ".bar").value_of_css_property("background-color")
        == "rgba(198, 40, 40, 1)"
    )
    detail = browser.find_element(By.CSS_SELECTOR, ".detail")
    assert detail.find_element(By.CSS_SELECTOR, ".errbox").text == f"ValueError: tool failed: {HOSTILE_ERROR}"
    stack = detail.find_element(By.CSS_SELECTOR, "pre.stack")
    assert stack.is_displayed() and stack.text.startswith("Traceback (most recent call last)")
    keep_screenshot(browser, tmp_path, "trace-error.png")

    # The hostile span: its input, attribute and event shown as text; nothing ran, nothing was added.
    rows[3].click()
    text = detail.text
    for value in (HOSTILE_INPUT, HOSTILE_KEY, HOSTILE_VALUE, HOSTILE_EVENT):
        assert value in text or json.dumps(value) in text, value
    assert browser.execute_script("return window.__pwned === undefined")
    assert browser.execute_script("return document.querySelectorAll('img,svg,iframe,b').length") == 0
    assert browser.execute_script("return document.scripts.length") == 1
    header = browser.find_element(By.CSS_SELECTOR, "header").text
    assert HOSTILE_TAG in header and "session-7" in header and "alice" in header and "total 42" in header
    keep_screenshot(browser, tmp_path, "trace-hostile.png")

    # Collapse the root: its subtree hides; expand: it is back.
    rows[0].find_element(By.CSS_SELECTOR, ".tg").click()
    assert [row.is_displayed() for row in rows] == [True, False, False, False, False]
    rows[0].find_element(By.CSS_SELECTOR, ".tg").click()
    assert all(row.is_displayed() for row in rows)


@pytest.mark.backend
def test_thousand_span_trace_opens_in_under_a_second(browser, tmp_path):
    from selenium.webdriver.common.by import By

    big_trace(1000)
    assert mlflow.flush_trace_async_logging()
    page = write_page(tmp_path, "big.html")
    timings = open_page(browser, page)
    (tmp_path / "timings.json").write_text(json.dumps(timings))
    print(f"\n1,000-span page ({page.stat().st_size:,} bytes): {json.dumps(timings)}")
    assert timings["rows"] == 1000 and timings["resources"] == 0
    assert timings["rendered_ms"] < 1000, timings
    errors = browser.find_elements(By.CSS_SELECTOR, ".row.err")
    assert len(errors) == len(range(0, 990, 97)) and errors[0].is_displayed()
    assert browser.find_element(By.CSS_SELECTOR, ".detail pre.stack").is_displayed()
    keep_screenshot(browser, tmp_path, "trace-1000.png")


@pytest.mark.backend
def test_notebook_iframe_renders_in_chromium(browser, tmp_path):
    from selenium.webdriver.common.by import By

    with TraceCaptureOf() as traces:
        app(HOSTILE_INPUT)
    notebook = tmp_path / "notebook.html"
    notebook.write_text(f"<!DOCTYPE html><html><body>{traces[0]._repr_html_()}</body></html>", "utf-8")
    browser.get(notebook.as_uri())
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
    try:
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(browser, 30).until(
            lambda d: (
                d.execute_script("return document.documentElement.getAttribute('data-rendered')") == "true"
            )
        )
        assert len(browser.find_elements(By.CSS_SELECTOR, ".row")) == 5
        assert browser.find_element(By.CSS_SELECTOR, ".row.err").is_displayed()
        assert browser.execute_script("return window.__pwned === undefined")
    finally:
        browser.switch_to.default_content()
    keep_screenshot(browser, tmp_path, "notebook.png")
