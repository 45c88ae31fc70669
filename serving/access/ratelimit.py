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

Leases: for a limit of at least ``2 x LEASE_SHARE`` hits per window, a client's hits are
taken from the limiter ``lease_size`` at a time (one ``hit(cost=n)``, after ``test``
says the window has room for all ``n``) and then used one per request until the window
the limiter counted them in ends. Counting, windows and storage stay the library's; the
lease only calls it less often (one call per ``n`` requests, a Redis round trip saved
per request with Redis). A lease is taken only when all of it fits, and a window's
unused lease ends with it, so a worker never admits more than the limit. In a worker's
memory the answers are exactly those of one hit per request
(tests/unit/test_ratelimit.py); with Redis, hits another worker holds unused (at most
``lease_size - 1`` each, <= 0.1 % of the limit) are not available to this worker, so a
client can be refused up to that many requests early, and never admitted more.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable
from typing import Any, NoReturn

from limits import RateLimitItem, parse
from limits.aio.strategies import FixedWindowRateLimiter as SharedLimiter
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from litestar import Litestar
from litestar.types import ASGIApp, Receive, Scope, Send

from serving.access import AUTHENTICATED, EXPLAIN, PUBLIC
from serving.access.auth import CLIENT, Client
from serving.http.dispatch import ROUTE, Route
from serving.inference.inputs import ClientError
from serving.monitoring.access_metrics import AccessMetrics
from serving.settings import Settings
from serving.state import service_of

log = logging.getLogger("serving")
REDIS_TIMEOUT_SECONDS = 0.25
REDIS_RETRY_SECONDS = 5.0
LEASE_MAX = 64  # hits taken from the limiter at once, at most
LEASE_SHARE = 1000  # and at most this share of the limit (1/1000)


def lease_size(item: RateLimitItem) -> int:
    """Hits one lease takes: 1 (a hit per request) below ``2 x LEASE_SHARE`` per window."""
    return max(1, min(LEASE_MAX, item.amount // LEASE_SHARE))


class Lease:
    """Hits the limiter has counted for one key in the window ending at ``until`` (epoch
    seconds, the limiter's reset time), ``left`` of them not yet used."""

    __slots__ = ("item", "left", "until")

    def __init__(self, item: RateLimitItem, left: int, until: float) -> None:
        self.item, self.left, self.until = item, left, until


class Leases:
    """Unused leases by key; expired ones are swept at most once per ``SWEEP_SECONDS``."""

    SWEEP_SECONDS = 1.0

    def __init__(self) -> None:
        self.by_key: dict[str, Lease] = {}
        self._next_sweep = 0.0

    def use(self, item: RateLimitItem, key: str) -> bool:
        """Use one leased hit of ``key`` for ``item``, if a lease has one left."""
        lease = self.by_key.get(key)
        if lease is None or not lease.left or lease.item is not item:
            return False
        if time.time() >= lease.until:
            return False
        lease.left -= 1
        return True

    def keep(self, item: RateLimitItem, key: str, left: int, until: float) -> None:
        """The ``left`` unused hits of a lease just taken (one was used by its request)."""
        now = time.time()
        if now >= self._next_sweep:
            self._next_sweep = now + self.SWEEP_SECONDS
            self.by_key = {k: v for k, v in self.by_key.items() if v.until > now}
        self.by_key[key] = Lease(item, left, until)


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
        self.local_leases = Leases()
        self.shared: SharedLimiter | None = None
        self.shared_leases = Leases()
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
        size = lease_size(item)
        if (
            size > 1
            and await shared.test(item, key, cost=size)
            and await shared.hit(item, key, cost=size)
        ):
            stats = await shared.get_window_stats(item, key)
            self.shared_leases.keep(item, key, size - 1, stats.reset_time)
            return None
        if await shared.hit(item, key):
            return None
        stats = await shared.get_window_stats(item, key)
        return stats.reset_time - time.time()

    async def hit(self, item: RateLimitItem, key: str) -> float | None:
        """None when allowed, else the seconds until the window resets."""
        if self.shared is not None and time.monotonic() >= self.redis_down_until:
            if self.shared_leases.use(item, key):
                return None
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
        if self.local_leases.use(item, key):
            return None
        local = self.local
        size = lease_size(item)
        if size > 1 and local.test(item, key, cost=size) and local.hit(item, key, cost=size):
            reset = local.get_window_stats(item, key).reset_time
            self.local_leases.keep(item, key, size - 1, reset)
            return None
        if local.hit(item, key):
            return None
        return local.get_window_stats(item, key).reset_time - time.time()


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


def _limit_for(
    needed: str, general: RateLimitItem | None, explain: RateLimitItem | None
) -> RateLimitItem | None:
    if needed == PUBLIC:
        return None
    return explain if needed == EXPLAIN else general


def route_limit(needed: str, settings: Settings) -> RateLimitItem | None:
    """The limit a route that needs ``needed`` (:mod:`serving.access`) counts against; None
    when it is not limited (a public route, or no limit set). The OpenAPI document's 429s
    follow it (:mod:`serving.openapi_access`)."""
    return _limit_for(needed, *_limits(settings))


def rate_limit(inner: ASGIApp, app: Litestar) -> ASGIApp:
    """Chain step: 429 once a client exceeds its limit on a non-public route."""
    service = service_of(app)
    general, explain = _limits(service.settings)
    if general is None and explain is None:
        return inner
    limiter = Limiter(service.settings.rate_limit_redis_url, service.metrics.access)
    limited = service.metrics.access.rate_limited

    def step(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        route: Route | None = scope.get(ROUTE)  # type: ignore[assignment]
        needed = route.access if route is not None else AUTHENTICATED
        item = _limit_for(needed, general, explain)
        if item is None:
            return inner(scope, receive, send)
        client: Client = scope[CLIENT]  # type: ignore[literal-required]
        key = f"{'explain' if needed == EXPLAIN else 'all'}:{client.limit_key}"
        if limiter.shared is not None:
            return shared_step(scope, receive, send, route, item, key)
        wait = limiter.local_hit(item, key)
        if wait is not None:
            refuse(route, item, wait)
        return inner(scope, receive, send)

    async def shared_step(
        scope: Scope,
        receive: Receive,
        send: Send,
        route: Route | None,
        item: RateLimitItem,
        key: str,
    ) -> None:
        wait = await limiter.hit(item, key)
        if wait is not None:
            refuse(route, item, wait)
        await inner(scope, receive, send)

    def refuse(route: Route | None, item: RateLimitItem, wait: float) -> NoReturn:
        limited.labels(route.template if route is not None else "unmatched").inc()
        raise too_many(item, wait)

    return step
