"""Every way a process is forked or ends early, in one place: what must start afresh in a child, and
how a child that never runs ``atexit`` still flushes.

Threads do not survive a fork, and locks held at the fork stay held in the child: the batch stages,
the export pool, the MLflow merge and the running state register here (``in_child``) to rebuild
their state there, with empty queues (what the parent had queued is the parent's to send). A child
can come from:

* ``os.fork()`` (gunicorn, multiprocessing's ``fork`` start method): ``os.register_at_fork`` runs
  the hooks;
* a fork from C (uWSGI without ``lazy-apps``, ``ctypes.CDLL(None).fork()``): no Python hook runs, so
  the stages call ``check()`` (a process-id comparison) as they are used, and the first caller in
  the child runs the hooks; under uWSGI its ``postfork`` hook calls ``check()`` too, so a worker
  starts fresh before its first request.

multiprocessing's ``fork`` and ``forkserver`` children end with ``os._exit`` after the target
returns (``Process._bootstrap``), so ``atexit`` never runs there; multiprocessing's own exit path
does: ``util._exit_function`` runs the finalizers registered with an ``exitpriority``.
``at_exit`` registers the exit sequence with both. Hooks are held weakly, so registering one
(``os.register_at_fork`` keeps them for the life of the process) never keeps a replaced pipeline alive.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import weakref
from typing import Any, Callable

_pid = os.getpid()
_lock = threading.Lock()
_hooks: list[Callable[[], bool]] = []
_exit_registered = False
#: multiprocessing runs finalizers highest priority first; ours runs after the application's own
#: (priority 0 and up), which may still end spans.
_FINALIZER_PRIORITY = -10


def in_child(callback: Callable[..., Any], *args: Any) -> None:
    """In a forked child, call ``callback(*args)`` once; a bound method only while its object lives
    (hooks run in the order they were registered)."""
    ref: Callable[[], Any] = (
        weakref.WeakMethod(callback) if hasattr(callback, "__self__") else (lambda: callback)
    )

    def hook() -> bool:
        bound = ref()
        if bound is None:
            return False
        bound(*args)
        return True

    with _lock:
        _hooks.append(hook)
    watch()


def check() -> bool:
    """True if this process was forked since the hooks last ran (a fork from C): they have now run.
    Costs one ``os.getpid`` (a system call, about 250 ns) when nothing changed."""
    if os.getpid() == _pid:
        return False
    with _lock:
        if os.getpid() == _pid:  # another thread of the child ran them meanwhile
            return False
        _run_hooks()
    return True


def _run_hooks() -> None:
    global _pid
    _pid = os.getpid()
    _hooks[:] = [hook for hook in list(_hooks) if hook()]


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # a thread of the parent may have held it at the fork
    _run_hooks()


_watching = False


def watch() -> None:
    """Have ``os.fork`` run the hooks in its children; once per process, when the first hook is
    registered (a component that has state to restart: nothing at import, so a process that never
    traces installs nothing). A child forked before then has nothing to restart."""
    global _watching
    with _lock:
        if _watching or not hasattr(os, "register_at_fork"):
            return
        _watching = True
    os.register_at_fork(after_in_child=_after_fork_in_child)


def hook_uwsgi() -> None:
    """Under uWSGI (its ``uwsgi`` module exists only in its embedded interpreter), join the
    post-fork hooks of ``uwsgidecorators.postfork``, which chains every registered hook."""
    if "uwsgi" not in sys.modules:
        try:
            import uwsgi  # type: ignore[import-not-found]  # noqa: F401
        except ImportError:
            return
    try:
        from uwsgidecorators import postfork  # type: ignore[import-not-found]
    except ImportError:
        return
    postfork(check)


def at_exit(sequence: Callable[[], None]) -> None:
    """Run ``sequence`` when the process ends, once registered per process: at interpreter exit, and
    in multiprocessing children through multiprocessing's exit path: now if this process is one,
    and in every child it forks later (``util.register_after_fork`` runs after ``_bootstrap``
    cleared the parent's finalizers). ``sequence`` must be idempotent: a ``spawn`` child runs both."""
    global _exit_registered
    with _lock:
        if _exit_registered:
            return
        _exit_registered = True
    atexit.register(sequence)
    from multiprocessing import process, util

    def finalize(_: object = None) -> None:
        util.Finalize(None, sequence, exitpriority=_FINALIZER_PRIORITY)

    if process.parent_process() is not None:
        finalize()
    util.register_after_fork(_AFTER_FORK_KEY, finalize)


class _Key:
    """``util.register_after_fork`` holds its objects weakly: this one lives with the module."""


_AFTER_FORK_KEY = _Key()
