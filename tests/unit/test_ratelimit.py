"""The per-worker rate-limit storage: limits' MemoryStorage without a thread per hit."""

from __future__ import annotations

import threading
import time

import pytest
from limits import parse
from limits.strategies import FixedWindowRateLimiter

from serving.ratelimit import LocalStorage

pytestmark = pytest.mark.unit


def test_local_storage_counts_windows_without_starting_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage = LocalStorage()
    limiter = FixedWindowRateLimiter(storage)
    item = parse("3/second")
    started: list[threading.Thread] = []
    original = threading.Thread.start

    def counting_start(thread: threading.Thread) -> None:
        started.append(thread)
        original(thread)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    assert [limiter.hit(item, "a") for _ in range(5)] == [True, True, True, False, False]
    assert limiter.hit(item, "b")  # another key has its own window
    assert started == []
    time.sleep(1.1)
    assert limiter.hit(item, "a")  # the window expired and was reset


def test_stale_keys_are_swept(monkeypatch: pytest.MonkeyPatch) -> None:
    storage = LocalStorage()
    limiter = FixedWindowRateLimiter(storage)
    limiter.hit(parse("5/second"), "old")
    assert any("old" in key for key in storage.storage)
    time.sleep(1.1)
    monkeypatch.setattr(LocalStorage, "SWEEP_SECONDS", 0.0)
    storage._next_sweep = 0.0
    limiter.hit(parse("5/second"), "new")  # any hit may sweep
    assert not any("old" in key for key in storage.storage)
