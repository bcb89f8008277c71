"""Logging for the SDK: one logger, and warnings that cannot flood the application's logs.

A failure on a hot path (a hook raising on every span, a dead collector) would otherwise log once per
span. ``warn_limited`` logs the first occurrence of each kind at once, then at most one summary per
interval saying how many were suppressed.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

logger = logging.getLogger("mlflow_otel")

#: Seconds between two warnings of the same kind.
WARN_INTERVAL_S = 60.0

_lock = threading.Lock()
_last: dict[str, float] = {}
_suppressed: dict[str, int] = {}


_USERINFO = re.compile(r"(://)[^/@\s]*@")
_QUERY_VALUE = re.compile(r"([?&][^=&#\s]+=)[^&#\s]*")


def masked_url(url: str) -> str:
    """An endpoint or tracking URI as it may be printed or stored: ``user:password@`` and every
    query-string value left out (``?api_key=...`` is how some gateways take their key)."""
    return _QUERY_VALUE.sub(r"\1REDACTED", _USERINFO.sub(r"\1", url))


def warn_limited(kind: str, message: str, *args: Any) -> None:
    """Log ``message`` at WARNING unless a warning of this ``kind`` was logged within the interval."""
    now = time.monotonic()
    with _lock:
        last = _last.get(kind)
        if last is not None and now - last < WARN_INTERVAL_S:
            _suppressed[kind] = _suppressed.get(kind, 0) + 1
            return
        _last[kind] = now
        skipped = _suppressed.pop(kind, 0)
    if skipped:
        message += f" ({skipped} similar warnings suppressed in the last {WARN_INTERVAL_S:.0f} s)"
    logger.warning(message, *args)


def reset_limits() -> None:
    with _lock:
        _last.clear()
        _suppressed.clear()


def ensure_visible() -> None:
    """Make the SDK's INFO lines (where traces go) visible when the app configured no logging.

    Like MLflow, which gives its logger a handler of its own: without it, Python's last-resort handler
    shows only WARNING and above, and the one line telling a user where their traces went is lost.
    """
    if logger.handlers or logging.getLogger().handlers:
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
