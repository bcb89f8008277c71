"""The opt-in on-disk spool: OTLP requests that could not be delivered, kept for a later try.

With ``MLFLOW_OTEL_SPOOL_DIR`` set, a request that exhausts its retries, or is still queued or being
retried when the process exits, is written to the spool encoded (the exact request body, before
compression), and replayed, oldest first and at most once, when the destination answers again: by
this process, or by the next one started with the same directory. It plays the part of the OTel
Collector's persistent sending queue (``file_storage``) for a process that has no collector beside it.

Layout: ``<dir>/<destination>/<time_ns>-<pid>-<token>-<seq>-<spans>.otlp``, where ``<destination>``
is a digest of the destination's identity (endpoint, protocol, headers): header values, which may be
credentials, never reach the disk in clear, and a file is only ever replayed to the destination it
was meant for. Several processes may share one directory:

* **crash-safe writes**: a request is written to a hidden temporary name, fsync'ed, then renamed
  (``os.replace`` is atomic), so a file under its final name is always whole;
* **at most once**: a sender claims a file by renaming it (``.sending-<pid>-<token>``); only one
  process can win the rename. Delivered, the file is deleted; refused for a retryable reason, it is
  renamed back. A claim older than ``STALE_CLAIM_S`` belongs to a process that ended mid-send: it
  may well have been delivered (the answer was never read), so it is deleted and counted as
  ``spool_in_doubt``, never resent, and never reported as lost: nobody can know it was;
* **bounded**: over ``MLFLOW_OTEL_SPOOL_MAX_BYTES`` (the whole directory; processes writing at the
  same instant may overshoot it by those requests) the oldest requests are deleted first, each
  claimed first so exactly one process counts it (``dropped.spool_evicted``).

Counters: ``spans_spooled`` (written), ``spans_replayed`` (delivered from the spool, by whichever
process wrote them). Spans never written: ``dropped.spool_unwritable`` (the disk refused),
``dropped.too_large`` (a request over the cap). Spooled spans lost later: ``dropped.spool_evicted``,
``dropped.spool_rejected`` (the destination refused the replay for good),
``dropped.spool_unreadable``; neither delivered nor lost for sure: ``spool_in_doubt``. Across the
processes sharing a directory: spooled = replayed + those four + what is still on disk; and each
process's produced spans = delivered + spooled + its other drops.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Callable, Optional

from mlflow_otel._files import FILE_MODE, private_dir
from mlflow_otel._log import logger, warn_limited
from mlflow_otel._telemetry import Counters

SUFFIX = ".otlp"
CLAIM = ".sending-"
#: A claim older than this was left by a process that died while sending (a send is bounded by the
#: request timeout, 10 s by default).
STALE_CLAIM_S = 300.0
#: How often a process looks for files other processes spooled, while its own exports succeed.
RESCAN_INTERVAL_S = 5.0
#: Files replayed after one successful export, at most (the live queue goes first).
REPLAY_FILES_PER_EXPORT = 16

#: Writers of this process take turns (processes sharing a directory may overshoot the cap by the
#: requests they write at the same instant).
_WRITE_LOCK = threading.Lock()

#: A replay attempt's answer: "ok" (with spans the server rejected), "retry" or "fail".
SendResult = tuple[str, int]


def _spans_in(name: str) -> int:
    try:
        return int(name.split(CLAIM, 1)[0][: -len(SUFFIX)].rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


class Spool:
    """One destination's directory in the spool."""

    def __init__(self, root: str, identity: str, max_bytes: int, counters: Counters) -> None:
        self._counters = counters
        self.root = root
        self.dir = os.path.join(root, hashlib.sha256(identity.encode()).hexdigest()[:16])
        self.max_bytes = max_bytes
        self._token = secrets.token_hex(4)
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._last_scan = 0.0
        self._pending = True  # until a scan finds nothing

    # --- writing -----------------------------------------------------------------------------------
    def write(self, body: bytes, spans: int) -> bool:
        """Keep one encoded request; False (and counted as dropped) if it cannot be kept."""
        if len(body) > self.max_bytes:
            self._counters.add("dropped.too_large", spans)
            warn_limited("spool_full", "A request of %d bytes exceeds the spool's cap.", len(body))
            return False
        name = f"{time.time_ns():020d}-{os.getpid()}-{self._token}-{next(self._seq):06d}-{spans}{SUFFIX}"
        tmp = os.path.join(self.dir, f".{name}.tmp")
        try:
            with _WRITE_LOCK:  # room made and used by one writer of this process at a time
                private_dir(self.dir)
                self._make_room(len(body))
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
                with open(fd, "wb") as fh:
                    os.fchmod(fd, FILE_MODE)  # private whatever the umask
                    fh.write(body)
                    fh.flush()
                    os.fsync(fd)
                os.replace(tmp, os.path.join(self.dir, name))
        except OSError as exc:
            self._counters.add("dropped.spool_unwritable", spans)
            warn_limited("spool_error", "Could not write to the spool %s: %s", self.dir, exc)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return False
        self._counters.add("spans_spooled", spans)
        self._pending = True
        return True

    def _files(self) -> Iterator[tuple[str, str, int]]:
        """(path, name, size) of every spooled request under the root, claimed ones included."""
        try:
            folders = [e.path for e in os.scandir(self.root) if e.is_dir()]
        except OSError:
            return
        for folder in folders:
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                if entry.name.startswith(".") or SUFFIX not in entry.name:
                    continue
                try:
                    yield entry.path, entry.name, entry.stat().st_size
                except OSError:
                    continue

    def _make_room(self, incoming: int) -> None:
        """Delete the oldest requests (of any destination) until ``incoming`` bytes fit the cap."""
        files = sorted(self._files(), key=lambda f: f[1])
        total = sum(size for _, _, size in files)
        for path, name, size in files:
            if total + incoming <= self.max_bytes:
                return
            if CLAIM in name:  # being sent: its sender decides
                continue
            if self._delete_claimed(path, name, "dropped.spool_evicted"):
                warn_limited(
                    "spool_evict", "Spool over %d bytes: dropped its oldest requests.", self.max_bytes
                )
            total -= size

    def _delete_claimed(self, path: str, name: str, counter: str) -> bool:
        claimed = f"{path}{CLAIM}{os.getpid()}-{self._token}"
        try:
            os.rename(path, claimed)  # only one process wins: only one counts
        except OSError:
            return False
        with contextlib.suppress(OSError):
            os.unlink(claimed)
        self._counters.add(counter, _spans_in(name))
        return True

    # --- replay ------------------------------------------------------------------------------------
    def due(self) -> bool:
        """Worth a look: something was spooled here, or other processes may have spooled since."""
        return self._pending or time.monotonic() - self._last_scan > RESCAN_INTERVAL_S

    def replay(self, send: Callable[[bytes], SendResult], stop: Callable[[], bool], limit: int) -> int:
        """Send up to ``limit`` of this destination's requests, oldest first; stops at the first
        one the destination does not take. Returns how many requests were delivered."""
        if not self._lock.acquire(blocking=False):  # another worker of ours is replaying
            return 0
        try:
            self._last_scan = time.monotonic()
            try:
                names = sorted(e.name for e in os.scandir(self.dir) if not e.name.startswith("."))
            except OSError:
                names = []
            ready = [n for n in names if n.endswith(SUFFIX)]
            self._reap_stale([n for n in names if CLAIM in n])
            self._pending = len(ready) > limit
            delivered = 0
            for name in ready[:limit]:
                if stop():
                    self._pending = True
                    break
                result = self._replay_one(name, send)
                if result is None:
                    continue
                if not result:
                    self._pending = True
                    break
                delivered += 1
            return delivered
        finally:
            self._lock.release()

    def _replay_one(self, name: str, send: Callable[[bytes], SendResult]) -> Optional[bool]:
        """True: delivered (or refused for good); False: the destination did not take it (kept);
        None: another process claimed it first."""
        path = os.path.join(self.dir, name)
        claimed = f"{path}{CLAIM}{os.getpid()}-{self._token}"
        try:
            os.rename(path, claimed)
        except OSError:
            return None
        with contextlib.suppress(OSError):
            os.utime(claimed)  # the claim's age, not the request's, tells a stale claim
        spans = _spans_in(name)
        try:
            with open(claimed, "rb") as fh:
                body = fh.read()
        except OSError as exc:
            self._counters.add("dropped.spool_unreadable", spans)
            warn_limited("spool_read", "Could not read spooled request %s: %s", claimed, exc)
            return True
        try:
            kind, rejected = send(body)
        except Exception as exc:
            kind, rejected = "retry", 0
            warn_limited("spool_send", "Replaying a spooled request failed: %r", exc)
        if kind == "retry":
            with contextlib.suppress(OSError):
                os.rename(claimed, path)  # unclaim: the next answer gets it
            return False
        with contextlib.suppress(OSError):
            os.unlink(claimed)
        if kind == "ok":
            self._counters.add("spans_replayed", spans - rejected)
            if rejected:
                self._counters.add("dropped.spool_rejected", rejected)
        else:
            self._counters.add("dropped.spool_rejected", spans)
            warn_limited("spool_rejected", "The destination refused a spooled request of %d spans.", spans)
        return True

    def _reap_stale(self, claimed: list[str]) -> None:
        now = time.time()
        for name in claimed:
            path = os.path.join(self.dir, name)
            try:
                if now - os.stat(path).st_mtime < STALE_CLAIM_S:
                    continue
                os.unlink(path)
            except OSError:
                continue
            self._counters.add("spool_in_doubt", _spans_in(name))
            logger.info(
                "Deleted %s: its sender ended mid-send, so it may have been delivered; it is not sent "
                "again (at most once).",
                path,
            )


def open_spool(root: Optional[str], identity: str, max_bytes: int, counters: Counters) -> Optional[Spool]:
    """The spool of one destination, or None when no spool directory is configured."""
    return Spool(root, identity, max_bytes, counters) if root else None
