"""The per-worker rate limit: limits' MemoryStorage without a thread per hit, and leases."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest
from limits import parse
from limits.strategies import FixedWindowRateLimiter
from prometheus_client import Counter, Gauge

from serving.access.ratelimit import LEASE_MAX, LEASE_SHARE, Limiter, LocalStorage, lease_size
from serving.monitoring.access_metrics import AccessMetrics

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


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("limit", ["5003/minute", "12805/minute", "3/second", "1999/minute"])
def test_leased_hits_answer_exactly_as_one_hit_per_request(
    monkeypatch: pytest.MonkeyPatch, limit: str
) -> None:
    """In a worker's memory, leases change how often the library is called, not an answer:
    the same requests are admitted, and refusals carry the same wait, over windows that
    end with leases unused and windows that run out."""
    clock = FakeClock()
    monkeypatch.setattr(time, "time", clock)
    item = parse(limit)
    leased = Limiter(None, AccessMetrics(Counter, Gauge))
    plain = FixedWindowRateLimiter(LocalStorage())
    rng = random.Random(7)
    window = item.get_expiry()
    admitted = refused = 0
    for phase in range(8):  # light windows (leases left over) and heavy ones (limit reached)
        per_window = item.amount * (0.6 if phase % 2 else 2.5)
        for _ in range(round(per_window)):
            key = rng.choice(("client:a", "client:b"))
            clock.now += rng.uniform(0, 2 * window / per_window)
            expected = (
                None
                if plain.hit(item, key)
                else plain.get_window_stats(item, key).reset_time - clock.now
            )
            assert leased.local_hit(item, key) == expected
            admitted += expected is None
            refused += expected is not None
    assert admitted > 0
    assert refused > 0
    size = lease_size(item)
    assert size == (1 if item.amount < 2 * LEASE_SHARE else min(LEASE_MAX, item.amount // 1000))
    assert bool(leased.local_leases.by_key) == (size > 1)


def test_leases_take_one_library_hit_per_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    item = parse("100000000/minute")
    limiter = Limiter(None, AccessMetrics(Counter, Gauge))
    calls: list[int] = []
    original = FixedWindowRateLimiter.hit

    def counting_hit(self: FixedWindowRateLimiter, *args: Any, cost: int = 1) -> bool:
        calls.append(cost)
        return original(self, *args, cost=cost)

    monkeypatch.setattr(FixedWindowRateLimiter, "hit", counting_hit)
    assert all(limiter.local_hit(item, "client:a") is None for _ in range(3 * LEASE_MAX))
    assert calls == [LEASE_MAX] * 3
    window = limiter.local.get_window_stats(item, "client:a")
    assert window.remaining == item.amount - 3 * LEASE_MAX
