"""Rate limits (the ``limits`` library): the chain step after authentication.

``DIGITS_RATE_LIMIT`` (e.g. ``600/minute``) applies to every non-public route per client
id (per client address with ``DIGITS_AUTH=none``); ``/explain`` counts against its own,
stricter ``DIGITS_EXPLAIN_RATE_LIMIT`` (repeated explanations reveal the model). Fixed
windows; an exceeded limit is answered 429 with ``Retry-After``.

Where the counters live:

* no ``DIGITS_RATE_LIMIT_REDIS_URL``: each worker's memory. With N workers (and R
  replicas) a client can get up to N x R times the limit, spread over the workers.
* ``DIGITS_RATE_LIMIT_REDIS_URL``: shared by every worker and replica through Redis.

If Redis does not answer (down, timeout), the check **fails open to the worker's own
memory limits** for ``REDIS_RETRY_SECONDS``, then tries Redis again: a Redis outage must
not take predictions down (authentication still applies, and the per-worker limit still
bounds each client), and it never answers 500. Each fallback is counted in
``rate_limit_backend_errors_total`` and logged when it starts and ends.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.strategies import FixedWindowRateLimiter as SharedLimiter
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from litestar import Litestar
from litestar.types import ASGIApp, Receive, Scope, Send

from serving.access import AUTHENTICATED, EXPLAIN, PUBLIC
from serving.access_metrics import AccessMetrics
from serving.auth import CLIENT, Client
from serving.dispatch import ROUTE, Route
from serving.inputs import ClientError
from serving.settings import Settings
from serving.state import service_of

log = logging.getLogger("serving")
REDIS_TIMEOUT_SECONDS = 0.25
REDIS_RETRY_SECONDS = 5.0


class LocalStorage(MemoryStorage):
    """limits' in-memory storage without its expiry thread.

    ``MemoryStorage`` starts a ``threading.Timer`` (10 ms) from every hit whenever the last
    one has finished: under load that is ~100 thread starts a second competing for the GIL
    (-20 % single-row throughput here, docs/performance.md). Expired windows are already
    reset on read; this sweeps the stale keys inline, at most once per ``SWEEP_SECONDS``.
    The override hooks the locked limits version's ``__schedule_expiry`` (name-mangled);
    tests/unit/test_ratelimit.py pins that it is called and that no thread is started.
    """

    SWEEP_SECONDS = 1.0

    def __init__(self) -> None:
        super().__init__()
        self.timer.cancel()
        self._next_sweep = 0.0

    def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 - limits' hook name
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + self.SWEEP_SECONDS
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


class Limiter:
    """Counts hits per (limit, key): in Redis when configured, else (or on failure) locally."""

    def __init__(self, redis_url: str | None, metrics: AccessMetrics) -> None:
        self.local = FixedWindowRateLimiter(LocalStorage())
        self.shared: SharedLimiter | None = None
        if redis_url:
            storage: Any = storage_from_string(
                "async+" + redis_url,
                implementation="redispy",
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
            self.shared = SharedLimiter(storage)
        self.metrics = metrics
        self.redis_down_until = 0.0

    async def _shared_hit(
        self, shared: SharedLimiter, item: RateLimitItem, key: str
    ) -> float | None:
        if await shared.hit(item, key):
            return None
        stats = await shared.get_window_stats(item, key)
        return stats.reset_time - time.time()

    async def hit(self, item: RateLimitItem, key: str) -> float | None:
        """None when allowed, else the seconds until the window resets."""
        if self.shared is not None and time.monotonic() >= self.redis_down_until:
            try:
                result = await asyncio.wait_for(
                    self._shared_hit(self.shared, item, key), REDIS_TIMEOUT_SECONDS * 2
                )
            except Exception as exc:  # any store failure: fall back, never a 500
                self.metrics.rate_limit_backend_errors.inc()
                if self.redis_down_until == 0.0:
                    log.error(
                        "rate-limit store unavailable; failing open to per-worker limits: %r", exc
                    )
                self.redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
            else:
                if self.redis_down_until:
                    log.warning("rate-limit store reachable again; limits shared again")
                    self.redis_down_until = 0.0
                return result
        return self.local_hit(item, key)

    def local_hit(self, item: RateLimitItem, key: str) -> float | None:
        """:meth:`hit` in this worker's memory (no await: the path without Redis)."""
        if self.local.hit(item, key):
            return None
        return self.local.get_window_stats(item, key).reset_time - time.time()


def too_many(limit: RateLimitItem, wait: float) -> ClientError:
    seconds = max(1, math.ceil(wait))
    return ClientError(
        429,
        "rate_limited",
        f"Rate limit of {limit} exceeded; retry after {seconds} s",
        headers={"retry-after": str(seconds)},
    )


def _limits(settings: Settings) -> tuple[RateLimitItem | None, RateLimitItem | None]:
    general = parse(settings.rate_limit) if settings.rate_limit else None
    explain = parse(settings.explain_rate_limit) if settings.explain_rate_limit else general
    return general, explain


def rate_limit(inner: ASGIApp, app: Litestar) -> ASGIApp:
    """Chain step: 429 once a client exceeds its limit on a non-public route."""
    service = service_of(app)
    general, explain = _limits(service.settings)
    if general is None and explain is None:
        return inner
    limiter = Limiter(service.settings.rate_limit_redis_url, service.metrics.access)
    limited = service.metrics.access.rate_limited

    async def step(scope: Scope, receive: Receive, send: Send) -> None:
        route: Route | None = scope.get(ROUTE)  # type: ignore[assignment]
        needed = route.access if route is not None else AUTHENTICATED
        item = explain if needed == EXPLAIN else general
        if needed != PUBLIC and item is not None:
            client: Client = scope[CLIENT]  # type: ignore[literal-required]
            bucket = "explain" if needed == EXPLAIN else "all"
            key = f"{bucket}:{client.limit_key}"
            if limiter.shared is None:
                wait = limiter.local_hit(item, key)
            else:
                wait = await limiter.hit(item, key)
            if wait is not None:
                limited.labels(route.template if route is not None else "unmatched").inc()
                raise too_many(item, wait)
        await inner(scope, receive, send)

    return step
