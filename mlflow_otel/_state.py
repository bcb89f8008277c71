"""The one object that holds what application code set, and the settings in force.

Everything a user sets from code lives on :data:`STATE` (structlog's model: one configuration object,
one ``reset()``): the on/off switch, settings overrides (``set_tracking_uri``, ``set_experiment``),
routing (``tracing.set_destination`` / ``add_destination``), the processor chain's configuration
(``tracing.configure``) and the content-capture flag the span builders read. Settings from the
environment are parsed once by ``_settings.load()`` and cached here; code-level values beat them
(docs/architecture.md, "Settings").

Fields read on the request path (``enabled``, ``start_processors``, the capture flag) are plain
attributes, replaced whole under the lock and read without it.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, Optional

from mlflow_otel import _settings

#: Marks where the built-in processors go in ``configure(span_processors=[...])``.
BUILTINS_MARKER_NAME = "BUILTINS"


class _Builtins:
    """The marker's type: ``configure(span_processors=[early, BUILTINS, late])``."""

    def __repr__(self) -> str:
        return BUILTINS_MARKER_NAME


BUILTINS = _Builtins()


class State:
    """What code set, plus the cached settings. One lock; ``reset()`` forgets everything set here
    (a capture of ``mlflow_otel.testing`` is the runtime's: ``_runtime.capture_all``)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._settings: Optional[_settings.Settings] = None
        self.reset()

    def reset(self) -> None:
        with self.lock:
            #: Settings fields set in code (``set_tracking_uri``, ``set_experiment``).
            self.overrides: dict[str, Any] = {}
            #: ``tracing.set_destination(dest)``: replaces the default destinations (None: defaults).
            self.destinations: Optional[tuple[Any, ...]] = None
            #: ``tracing.add_destination(dest)``: sent to beside the default destinations.
            self.extra_destinations: tuple[Any, ...] = ()
            #: A configured redaction policy could not be loaded: content capture is off (fail
            #: closed) until the chain is configured again or the environment re-read.
            self.policy_failed = False
            #: ``configure(span_processors=...)``: MLflow-style callables around ``BUILTINS``.
            self.hooks: tuple[Any, ...] = ()
            #: OpenTelemetry ``SpanProcessor`` objects from ``configure``: ``on_start`` on the app
            #: thread (read by the tracer on every span start), ``on_end`` after the built-ins.
            self.start_processors: tuple[Any, ...] = ()
            self.end_processors: tuple[Any, ...] = ()
            #: ``configure(capture_content=..., redaction=..., ...)``: built-in processor options.
            self.builtin_options: dict[str, Any] = {}
            #: Bumped by every ``configure``: the process stage rebuilds its chain when it changes.
            self.chain_version = 0
            #: ``tracing.enable_notebook_display()`` / ``disable_notebook_display()``.
            self.notebook_display = True
            self.reload()

    # --- settings ------------------------------------------------------------------------------
    def settings(self) -> _settings.Settings:
        """The environment's settings with the code-level overrides on top, parsed at the first use
        after a (re)load and cached: the pipeline is built from them at the first span."""
        settings = self._settings
        if settings is None:
            with self.lock:
                if self._settings is None:
                    loaded = _settings.load()
                    self._settings = (
                        dataclasses.replace(loaded, **self.overrides) if self.overrides else loaded
                    )
                    self._refresh_capture()
                settings = self._settings
        return settings

    def reload(self) -> None:
        """Read the environment again (``tracing.reset()``): the switch now, the rest at first use."""
        with self.lock:
            self._settings = None
            self.policy_failed = False
            provisional = _settings.load()
            #: Read on every decorated call; flipped by ``tracing.enable()`` / ``disable()``.
            self.enabled: bool = provisional.tracing_enabled
            self._refresh_capture(provisional)

    def override(self, **values: Any) -> None:
        with self.lock:
            self.overrides.update(values)
            self._settings = None

    def _refresh_capture(self, settings: Optional[_settings.Settings] = None) -> None:
        option = self.builtin_options.get("capture_content")
        if option is None:
            settings = settings or self._settings or _settings.load()
            option = settings.processors.capture_content
        #: Read on the request path: with content capture off, payloads are not even encoded.
        self.capture_content: bool = bool(option) and not self.policy_failed
        #: Bytes of a payload captured on the request path: what trimming would let through anyway.
        settings = settings or self._settings or _settings.load()
        budget = self.builtin_options.get("max_attribute_bytes")
        self.capture_limit: int = int(budget or settings.processors.max_attribute_bytes)

    def fail_closed(self) -> None:
        """A configured redaction policy could not be loaded (found by the process worker, which
        the runtime hands this method): no payload is captured until the chain is configured again
        or the environment re-read."""
        with self.lock:
            self.policy_failed = True
            self.capture_content = False

    # --- the processor chain's configuration -----------------------------------------------------
    def configure_chain(
        self, hooks: Optional[tuple[Any, ...]], options: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Apply ``tracing.configure``; returns what was in force before (for the context manager)."""
        with self.lock:
            previous = (self.hooks, dict(self.builtin_options))
            if hooks is not None:
                self.hooks = hooks
            self.builtin_options = {**self.builtin_options, **options}
            self._apply_chain()
            return previous

    def restore_chain(self, previous: tuple[tuple[Any, ...], dict[str, Any]]) -> None:
        with self.lock:
            self.hooks, self.builtin_options = previous[0], dict(previous[1])
            self._apply_chain()

    def _apply_chain(self) -> None:
        self.start_processors = tuple(h for h in self.hooks if is_otel_processor(h))
        self.end_processors = self.start_processors
        self.chain_version += 1
        self.policy_failed = False  # the new chain loads its policy again
        self._refresh_capture()


def is_otel_processor(item: Any) -> bool:
    """An OpenTelemetry ``SpanProcessor`` (duck-typed: ``on_start`` and ``on_end`` methods), as
    opposed to an MLflow-style callable hook."""
    return callable(getattr(type(item), "on_end", None)) and callable(getattr(type(item), "on_start", None))


#: The process-wide state.
STATE = State()


def settings() -> _settings.Settings:
    return STATE.settings()


def reset() -> None:
    """Forget everything set from code and re-read the environment (tests)."""
    STATE.reset()
