"""The MLflow UI (3.18) on traces this SDK sent, in a real browser: headless Chromium and its driver
from Debian's packages, driven by Selenium (no driver download: the network is loopback only).

What a person sees: the traces table with our custom request preview, the session, the user and
source columns, the user's tags and none of the OTel SDK's resource defaults; the trace's span tree with each span's type; each span's log level as the UI reads it
(``mlflow.spanLogLevel``, an int on the wire: the value MLflow 3.18's verbosity filter compares),
DEBUG for a chain step, INFO for the model call, ERROR for the tool that raised. A screenshot of the
trace is kept in the test's temp dir.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import urllib.request
import uuid

import pytest

import mlflow_otel as mlflow
from mlflow_otel import tracing
from mlflow_otel.entities import SpanType
from tests.backends.browser import chromium

pytestmark = pytest.mark.backend


@pytest.fixture(scope="module")
def browser():
    yield from chromium("1700,1000", 60)


@mlflow.trace(name="support_agent", span_type=SpanType.AGENT)
def support_agent(question: str) -> str:
    mlflow.update_current_trace(
        request_preview="customer asks about refunds",
        session_id="session-ui-7",
        user="ann-ui",
        tags={"environment": "production"},
    )
    with mlflow.start_span("format_prompt", span_type=SpanType.CHAIN) as span:
        span.set_inputs({"question": question})
        span.set_outputs("Answer briefly: " + question)
    with mlflow.start_span("search_docs", span_type=SpanType.RETRIEVER) as span:
        span.set_outputs(["refunds.md"])
    try:
        with mlflow.start_span("lookup_order", span_type=SpanType.TOOL):
            raise LookupError("order 42 not found")
    except LookupError:
        pass
    with mlflow.start_span("call_model", span_type=SpanType.CHAT_MODEL) as span:
        span.set_inputs({"messages": [{"role": "user", "content": question}]})
        span.set_outputs({"choices": [{"message": {"role": "assistant", "content": "Within 30 days."}}]})
    return "Within 30 days."


def _wait(driver, condition, timeout: float = 30.0, what: str = "the page"):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(
        lambda d: condition(d), f"waited for {what}"
    )


def _text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def _click_text(driver, text: str, timeout: float = 20.0) -> None:
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    def clicked(d):
        for element in d.find_elements(By.XPATH, f"//*[normalize-space(text())='{text}']"):
            try:
                if element.is_displayed():
                    element.click()
                    return True
            except WebDriverException:
                continue
        return False

    _wait(driver, clicked, timeout, f"{text!r} to click")


def _dismiss_popups(driver) -> None:
    """MLflow's first-visit guidance and its assistant panel (neither is part of the trace view)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    for selector in ("button[data-component-id='mlflow.detect_issues.guidance.got_it']",
                     "button[data-component-id='mlflow.assistant.chat_panel.close']"):  # fmt: skip
        for button in driver.find_elements(By.CSS_SELECTOR, selector):
            try:
                if button.is_displayed():
                    button.click()
                    time.sleep(0.3)
            except WebDriverException:
                pass  # covered by the drawer: not in the way either


def test_the_mlflow_ui_shows_our_trace(mlflow_server, browser, monkeypatch, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    experiment = f"ui-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", experiment)
    tracing.reset()
    support_agent("How do refunds work?")
    trace = mlflow.get_trace(mlflow.get_last_active_trace_id())
    experiment_id = trace.info.experiment_id
    assert experiment_id

    # The traces table: our preview in the Input column, the session, and (once shown) the user.
    browser.get(f"{mlflow_server.uri}/#/experiments/{experiment_id}/traces")
    _wait(browser, lambda d: "customer asks about refunds" in _text(d), 60, "the traces table")
    _dismiss_popups(browser)
    table = _text(browser)
    assert "session-ui-7" in table and "Within 30 days." in table
    # The trace's tags as MLflow's SDK leaves them: the user's only, no resource defaults of the
    # OTel SDK (MLflow 3.18 files resource attributes as trace tags).
    assert "environment: production" in table
    assert "unknown_service" not in table and "service.instance.id" not in table, table
    browser.find_element(By.CSS_SELECTOR, "button[aria-label='Display']").click()
    _click_text(browser, "Columns")
    _click_text(browser, "User")
    _click_text(browser, "Source")
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    _wait(browser, lambda d: "ann-ui" in _text(d), 20, "the user column")
    # The Source column: the entry point's file name, from mlflow.source.name as MLflow sets it.
    source = os.path.basename(trace.info.trace_metadata["mlflow.source.name"])
    assert source and trace.info.trace_metadata["mlflow.source.type"] == "LOCAL"
    headers = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "[role=columnheader]")]
    rows = [r.text.split("\n") for r in browser.find_elements(By.CSS_SELECTOR, "[role=row]")]
    row = next(r for r in rows if "customer asks about refunds" in r)
    cells = dict(zip([h for h in headers if h], row))
    assert cells.get("Source") == source, (headers, row)
    browser.save_screenshot(str(tmp_path / "mlflow-traces-table.png"))

    # The trace: its span tree, every span with its type.
    _click_text(browser, "customer asks about refunds")
    _wait(browser, lambda d: "call_model" in _text(d) and "lookup_order" in _text(d), 30, "the span tree")
    tree = _text(browser)
    for name in ("support_agent", "format_prompt", "search_docs", "lookup_order", "call_model"):
        assert name in tree
    browser.find_element(By.CSS_SELECTOR, "button[aria-label='Trace display settings']").click()
    _click_text(browser, "Filter by span type")
    menus = _wait(
        browser,
        lambda d: [
            m.text
            for m in d.find_elements(By.CSS_SELECTOR, "[data-radix-popper-content-wrapper]")
            if "Show all parent spans" in m.text
        ],
        10,
        "the span type filter",
    )
    types_shown = set(menus[0].splitlines())
    assert {"Agent", "Chain", "Retriever", "Tool", "Chat model"} <= types_shown, types_shown
    for _ in range(3):  # close the menu and its submenu
        if not browser.find_elements(By.CSS_SELECTOR, "[data-radix-popper-content-wrapper]"):
            break
        browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
        time.sleep(0.5)
    if "lookup_order" not in _text(browser):  # Escape also closed the trace: open it again
        _click_text(browser, "customer asks about refunds")
    _wait(browser, lambda d: "lookup_order" in _text(d), 20, "the span tree again")

    # The failed tool call is marked in the tree (MLflow draws errored spans in red).
    colour = browser.execute_script(
        "const el = Array.from(document.querySelectorAll('span,div'))"
        ".find(e => e.textContent.trim() === 'lookup_order' && e.children.length === 0);"
        "return el ? getComputedStyle(el).color : null"
    )
    red, green, blue = (int(c) for c in colour[colour.index("(") + 1 : colour.index(")")].split(",")[:3])
    assert red > 150 and green < 100 and blue < 120, colour
    browser.save_screenshot(str(tmp_path / "mlflow-trace.png"))

    # Each span's log level as the UI loads it (its own ajax API, in the page): the number MLflow
    # 3.18's verbosity filter compares ("Minimum log level"; its trace drawer does not show the
    # attribute, and only its classic explorer shows the slider). DEBUG for the chain step, INFO for
    # the agent and the model call, ERROR for the tool that raised.
    loaded = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('ajax-api/3.0/mlflow/traces/get?trace_id=' + arguments[0]).then(r => r.json())"
        ".then(j => done(j.trace.spans.map(s => [s.name, (s.attributes.find(a => a.key === 'mlflow.spanLogLevel') || {}).value])))"
        ".catch(e => done(String(e)));",
        trace.info.trace_id,
    )
    levels = {name: value for name, value in loaded}
    assert levels == {
        "support_agent": {"int_value": 20},
        "format_prompt": {"int_value": 10},
        "search_docs": {"int_value": 20},
        "lookup_order": {"int_value": 40},
        "call_model": {"int_value": 20},
    }, levels
    assert (tmp_path / "mlflow-trace.png").stat().st_size > 10_000


def test_the_mlflow_ui_shows_one_trace_across_two_services(mlflow_server, browser, tmp_path):
    # examples/two_services.py against MLflow 3.18: the gateway's trace, with the agent service's
    # spans in its tree and the agent's tag merged into the record (tests/test_distributed.py reads
    # the same back with MLflow's client).
    from tests.test_distributed import run_two_services_on_mlflow

    experiment, trace_ids = run_two_services_on_mlflow(mlflow_server, tmp_path)
    (trace,) = [
        t for t in mlflow_server.wait_for_traces(experiment, 2) if t["client_request_id"] == "req-manual"
    ]
    assert trace["trace_id"] in trace_ids
    query = urllib.parse.urlencode({"experiment_name": experiment})
    with urllib.request.urlopen(f"{mlflow_server.uri}/api/2.0/mlflow/experiments/get-by-name?{query}") as r:
        experiment_id = json.load(r)["experiment"]["experiment_id"]
    browser.get(f"{mlflow_server.uri}/#/experiments/{experiment_id}/traces")
    _wait(browser, lambda d: "what is MLflow?" in _text(d), 60, "the traces table")
    _dismiss_popups(browser)
    table = _text(browser)
    # One row per request (the agent never made a second record).
    assert table.count('{"question": "what is MLflow?"}') == 1 and "2 of 2 traces" in table, table
    # The record as the page loads it (its own ajax API): the gateway's tag kept, the agent's merged.
    loaded = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('ajax-api/3.0/mlflow/traces/get?trace_id=' + arguments[0]).then(r => r.json())"
        ".then(j => done(j.trace.trace_info.tags)).catch(e => done(String(e)));",
        trace["trace_id"],
    )
    assert loaded["tier"] == "gateway" and loaded["served_by"] == "agent-service", loaded
    _click_text(browser, '{"question": "what is MLflow?"}')
    _wait(browser, lambda d: "retrieve" in _text(d) and "answer" in _text(d), 30, "the span tree")
    tree = _text(browser)
    assert "gateway_manual" in tree
    browser.save_screenshot(str(tmp_path / "mlflow-distributed-trace.png"))
