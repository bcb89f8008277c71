"""Files that hold traces are private: created 0600 (folders 0700) whatever the umask.

Traces carry prompts, documents and user data; a umask of 022 (the usual default) would leave them
readable by every user of the machine. A folder we did not create is used only if it is ours and
nobody else can enter it (the read-only-directory fallback is a per-user folder in the shared
temporary directory, where another user could have made it first).
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any, Callable

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: writers are not serialised there
    fcntl = None  # type: ignore[assignment]

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: str) -> None:
    """Make ``path`` (and missing parents) 0700; raise ``PermissionError`` if it exists and another
    user owns it or can enter it."""
    if not path:
        return
    if not os.path.isdir(path):
        parent = os.path.dirname(os.path.abspath(path))
        if parent != path and not os.path.isdir(parent):
            private_dir(parent)  # every folder made here is private, not only the last
        try:
            os.mkdir(path, DIR_MODE)
            os.chmod(path, DIR_MODE)  # mkdir's mode is reduced by the umask
            return
        except FileExistsError:
            pass
    if not _ours(path):
        raise PermissionError(
            f"{path} belongs to another user or others can enter it: no traces are kept there"
        )


def _ours(path: str) -> bool:
    """A folder this process may keep traces in: the current working directory's tree and any folder
    the user made are trusted as they are; only a folder in a world-writable (sticky) parent, such
    as ``/tmp``, must be ours and closed to others."""
    parent = os.stat(os.path.dirname(os.path.abspath(path)) or ".")
    if not (parent.st_mode & stat.S_IWOTH):
        return True
    info = os.lstat(path)
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.getuid()
        and not (info.st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    )


def open_append(path: str) -> int:
    """A descriptor appending to ``path``, created 0600 (its folder 0700) if it does not exist."""
    private_dir(os.path.dirname(path))
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)  # read: the last byte
    try:
        if os.fstat(fd).st_size == 0:  # new (or empty): private whatever the umask made of it
            os.fchmod(fd, FILE_MODE)
    except OSError:
        os.close(fd)
        raise
    return fd


def create_private(path: str) -> None:
    """Create ``path`` empty and 0600 unless it exists (before SQLite opens it: its -wal and -shm
    files take the database's permissions)."""
    private_dir(os.path.dirname(path))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def write_replace(path: str, data: bytes) -> None:
    """Write ``path`` whole through a temporary file and a rename (readers never see half of it),
    0600."""
    private_dir(os.path.dirname(path))
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def update_locked(path: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Rewrite the JSON object at ``path`` as ``change(current)`` while holding a lock beside it
    (``<path>.lock``), so writers in several processes never lose each other's part."""
    private_dir(os.path.dirname(path))
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            with open(path, encoding="utf-8") as fh:
                current = json.load(fh)
        except (OSError, ValueError):
            current = {}
        write_replace(
            path,
            json.dumps(change(current if isinstance(current, dict) else {}), indent=1, sort_keys=True).encode(
                "utf-8"
            ),
        )
    finally:
        os.close(fd)  # releases the lock
