"""One hook for objects that must start afresh in a child process after ``os.fork()``.

Threads do not survive a fork, and locks held at the fork stay held in the child: the batch stages,
the export pool and the MLflow merge each rebuild their state there. The hook holds the object
weakly, so registering it (``os.register_at_fork`` keeps hooks for the life of the process) never
keeps a replaced pipeline alive. A fork from C runs no hook; the stages notice it by process id.
"""

from __future__ import annotations

import os
import weakref
from typing import Any, Callable


def restart_in_child(method: Callable[..., Any], *args: Any) -> None:
    """After a Python ``os.fork()``, call the bound ``method(*args)`` in the child, while its object lives."""
    if not hasattr(os, "register_at_fork"):
        return
    ref = weakref.WeakMethod(method)

    def _after_in_child() -> None:
        bound = ref()
        if bound is not None:
            bound(*args)

    os.register_at_fork(after_in_child=_after_in_child)
