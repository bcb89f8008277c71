"""When the process goes away: the exit report and SIGTERM.

Interpreter exit runs ``atexit`` (``_runtime.py``): open traces are ended and exported
(``assembly.end_open_traces``), the pipeline flushes within its budgets (``build.Pipeline.shutdown``),
and whatever exit could not deliver is announced here in one WARNING line, with counts by reason.

SIGTERM is what ``docker stop``, Kubernetes and process supervisors send, and Python's default
action kills the process without running ``atexit``: every span still queued was lost. So, when the
application has no SIGTERM handler of its own (the handler is ``SIG_DFL``), ours runs the same exit
sequence within the exit budget, then restores ``SIG_DFL`` and raises SIGTERM again: the process
dies of SIGTERM exactly as before, and its supervisor sees the same exit status. The exit sequence
runs on a helper thread that the handler waits for with a deadline, so a lock the interrupted main
thread happens to hold can delay the process's death by the budget at most, never hang it. When the
application has a handler, it is chained, not replaced: ours starts a flush in the background and
calls it (the application then exits its own way, and ``atexit`` flushes the rest). ``SIG_IGN`` is
left alone. ``MLFLOW_OTEL_HANDLE_SIGTERM=false`` switches all of this off.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any, Callable, Optional

from mlflow_otel._log import logger

#: Marks a handler of ours (``signal.getsignal`` returns it to whoever asks).
MARK = "mlflow_otel_sigterm"


def dropped_since(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Spans dropped between two counter snapshots, by reason."""
    out = {}
    for key, value in after.items():
        if key.startswith("dropped."):
            delta = value - before.get(key, 0)
            if delta > 0:
                out[key[len("dropped.") :]] = delta
    return out


def announce(
    before: dict[str, int],
    after: dict[str, int],
    spool_dir: Optional[str],
    cut: Optional[dict[str, int]] = None,
) -> None:
    """One line saying what exit could not deliver (WARNING), with the destinations whose queue the
    exit deadline cut, or what it spooled (INFO)."""
    drops = dropped_since(before, after)
    spooled = after.get("spans_spooled", 0) - before.get("spans_spooled", 0)
    kept = f"; {spooled} spans spooled to {spool_dir} for the next run" if spooled else ""
    where = "".join(f"; {n} left queued for {name}" for name, n in sorted((cut or {}).items()))
    records = sum(
        after.get(k, 0) - before.get(k, 0)
        for k in ("mlflow_records_failed", "mlflow_records_dropped", "mlflow_records_skipped")
    )
    if records > 0:
        logger.warning(
            "At exit, %d MLflow trace records were not sent (their traces lack client_request_id, "
            "custom previews and metadata on the server). See tracing.stats().",
            records,
        )
    if drops:
        logger.warning(
            "At exit, %d spans were not delivered (%s)%s%s. See tracing.stats() / `mlflow-otel stats`.",
            sum(drops.values()),
            ", ".join(f"{reason}: {n}" for reason, n in sorted(drops.items())),
            where,
            kept,
        )
    elif spooled:
        logger.info("At exit, %d spans could not be delivered and were spooled to %s.", spooled, spool_dir)


def install_sigterm(
    exit_now: Callable[[], None],
    flush_soon: Callable[[], None],
    budget_s: Callable[[], float],
    exiting_here: Callable[[], bool] = lambda: False,
) -> bool:
    """Handle SIGTERM as the module docstring says; True if a handler of ours is in place.

    ``exit_now`` runs the exit sequence (bounded by ``budget_s()`` seconds); ``flush_soon`` flushes
    what has finished so far (used when chaining an application's handler); ``exiting_here()`` is
    True when the signal interrupted the exit sequence itself (``atexit``, or a multiprocessing
    child's exit path, as ``Pool.terminate`` signals its workers): the handler then returns, and
    the sequence re-raises SIGTERM once it ends. Only the main thread can install signal handlers:
    elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        current = signal.getsignal(signal.SIGTERM)
    except (ValueError, OSError):
        return False
    if getattr(current, MARK, False):
        return True
    if current == signal.SIG_DFL:
        handler = _terminating(exit_now, budget_s, exiting_here)
    elif callable(current):
        handler = _chained(current, flush_soon)
    else:  # SIG_IGN, or a handler installed from C: the application's choice
        return False
    try:
        signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):
        return False
    return True


def _terminating(
    exit_now: Callable[[], None], budget_s: Callable[[], float], exiting_here: Callable[[], bool]
) -> Callable[[int, Any], None]:
    def on_sigterm(signum: int, frame: Any) -> None:
        if exiting_here():
            return
        worker = threading.Thread(target=_quietly(exit_now), name="mlflow-otel-sigterm", daemon=True)
        worker.start()
        worker.join(budget_s() + 1.0)
        die_of_sigterm()

    setattr(on_sigterm, MARK, True)
    return on_sigterm


def die_of_sigterm() -> None:
    """End the process as SIGTERM's default action would: its supervisor sees the same status."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.raise_signal(signal.SIGTERM) if hasattr(signal, "raise_signal") else os.kill(
        os.getpid(), signal.SIGTERM
    )


def _chained(
    app_handler: Callable[[int, Any], Any], flush_soon: Callable[[], None]
) -> Callable[[int, Any], Any]:
    def on_sigterm(signum: int, frame: Any) -> Any:
        threading.Thread(target=_quietly(flush_soon), name="mlflow-otel-sigterm-flush", daemon=True).start()
        return app_handler(signum, frame)

    setattr(on_sigterm, MARK, True)
    on_sigterm.chained = app_handler  # type: ignore[attr-defined]
    return on_sigterm


def _quietly(work: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            work()
        except Exception as exc:  # a signal must never turn into a traceback in the application
            logger.warning("mlflow-otel: handling SIGTERM failed: %r", exc)

    return run
