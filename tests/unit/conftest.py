"""The unit tier's rules, enforced: no socket is opened and nothing sleeps (time is a fake clock)."""

from __future__ import annotations

import socket
import time

import pytest


@pytest.fixture(autouse=True)
def no_sockets_no_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the unit tier opens no socket and never sleeps: use tests/unit/fakes.py")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "bind", refuse)
    monkeypatch.setattr(time, "sleep", refuse)
