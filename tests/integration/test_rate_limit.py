"""Rate limits against a real redis-server and 2 granian workers.

A private ``redis-server`` (Debian package) runs on a free loopback port from a temp-dir
config and is stopped afterwards. The tests prove that one client's limit holds across
both workers through Redis (and does not without it), that /explain has its stricter
limit, and what happens when Redis goes away mid-run: the service fails open to each
worker's own memory limits, counts and logs it, and never answers 500.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from limits import parse

from serving.access.keys import add_key
from serving.access.ratelimit import LEASE_SHARE, lease_size
from serving.schemas import EXAMPLE_FLAT
from tests.integration.conftest import RunningServer
from tests.integration.redis_server import RedisServer

# serial: requests are counted inside one rate-limit window; a machine slowed by other tests
# could spread them over more windows.
pytestmark = [pytest.mark.integration, pytest.mark.serial, pytest.mark.timeout(180)]
BODY = json.dumps({"samples": [EXAMPLE_FLAT]}).encode()
LIMIT = 20


def post(server: RunningServer, path: str, key: str) -> tuple[int, dict[str, str], bytes]:
    """One request on a new connection (so the two workers share the traffic)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(
            "POST",
            path,
            body=BODY,
            headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
        )
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def workers_that_answered(decisions: Path) -> int:
    return sum(1 for path in decisions.glob("decisions-*.jsonl") if path.stat().st_size > 0)


def eventually_both_workers_recorded(decisions: Path, within: float = 10.0) -> bool:
    """Both workers' decision files hold records: they are written asynchronously (the
    writer's flush interval, then its encoder process), so wait for them, up to ``within``."""
    deadline = time.monotonic() + within
    while workers_that_answered(decisions) < 2:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return workers_that_answered(decisions) == 2


def start(
    serve: Callable[..., RunningServer], tmp_path: Path, redis_url: str | None, limit: int = LIMIT
) -> tuple[RunningServer, dict[str, str], Path]:
    keys_file = tmp_path / "keys.jsonl"
    keys = {name: add_key(keys_file, name, ["predict", "explain", "read"]) for name in ("a", "b")}
    keys["scraper"] = add_key(keys_file, "scraper", ["read"])  # /metrics needs read (auth on)
    decisions = tmp_path / f"decisions-{redis_url is not None}"
    env = {
        "DIGITS_AUTH": "api-key",
        "DIGITS_API_KEYS_FILE": str(keys_file),
        "DIGITS_RATE_LIMIT": f"{limit}/hour",
        "DIGITS_EXPLAIN_RATE_LIMIT": "5/hour",
        "DIGITS_DECISION_LOG_DIR": str(decisions),
        "DIGITS_DECISION_FLUSH_SECONDS": "0.05",
    }
    if redis_url:
        env["DIGITS_RATE_LIMIT_REDIS_URL"] = redis_url
    return serve(env, workers=2), keys, decisions


def test_a_limit_holds_across_workers_through_redis(
    serve: Callable[..., RunningServer], tmp_path: Path, redis_server: RedisServer
) -> None:
    server, keys, decisions = start(serve, tmp_path, redis_server.url)
    answers = [post(server, "/predict", keys["a"]) for _ in range(3 * LIMIT)]
    statuses = [status for status, _, _ in answers]
    assert statuses.count(200) == LIMIT, statuses
    assert set(statuses) == {200, 429}
    _, headers, body = next(answer for answer in answers if answer[0] == 429)
    error = json.loads(body)
    assert error["reason"] == "rate_limited"
    assert set(error) == {"status", "reason", "message", "location", "request_id"}
    assert 1 <= int(headers["retry-after"]) <= 3600
    assert eventually_both_workers_recorded(decisions)  # both workers served, one shared budget
    # Another client has its own budget; /explain has its own, stricter one.
    assert post(server, "/predict", keys["b"])[0] == 200
    explained = [post(server, "/explain", keys["b"])[0] for _ in range(10)]
    assert explained.count(200) == 5, explained
    metrics = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    metrics.request("GET", "/metrics", headers={"authorization": f"Bearer {keys['scraper']}"})
    text = metrics.getresponse().read().decode()
    assert f'rate_limited_requests_total{{route="/predict"}} {2 * LIMIT}.0' in text
    assert 'rate_limited_requests_total{route="/explain"} 5.0' in text

    # Redis goes away mid-run: fail open to each worker's own memory limit, never a 500.
    redis_server.stop()
    after = [post(server, "/predict", keys["a"])[0] for _ in range(3 * LIMIT)]
    assert 500 not in after
    assert set(after) <= {200, 429}
    # Each worker now allows LIMIT on its own (the traffic is spread over the two).
    assert LIMIT <= after.count(200) <= 2 * LIMIT, after
    metrics.request("GET", "/metrics", headers={"authorization": f"Bearer {keys['scraper']}"})
    text = metrics.getresponse().read().decode()
    assert "rate_limit_backend_errors_total" in text
    errors = [
        line for line in text.splitlines() if line.startswith("rate_limit_backend_errors_total ")
    ]
    assert errors
    assert float(errors[0].split()[1]) >= 1
    assert "failing open to per-worker limits" in server.log_text()
    metrics.close()


def test_leased_hits_never_exceed_a_shared_limit(
    serve: Callable[..., RunningServer], tmp_path: Path, redis_server: RedisServer
) -> None:
    """A limit large enough for leases (serving/access/ratelimit.py): each worker takes its hits
    from Redis a lease at a time, and the two together still admit at most the limit,
    short of it by no more than the unused part of one lease per worker."""
    limit = 2 * LEASE_SHARE + 101
    size = lease_size(parse(f"{limit}/hour"))
    assert size > 1
    server, keys, decisions = start(serve, tmp_path, redis_server.url, limit)
    statuses = [post(server, "/predict", keys["a"])[0] for _ in range(limit + 60)]
    assert set(statuses) == {200, 429}
    assert limit - 2 * (size - 1) <= statuses.count(200) <= limit
    assert eventually_both_workers_recorded(decisions)


def test_without_redis_each_worker_counts_alone(
    serve: Callable[..., RunningServer], tmp_path: Path
) -> None:
    """The documented difference: per-worker memory lets a client get up to workers x limit."""
    server, keys, decisions = start(serve, tmp_path, None)
    statuses = [post(server, "/predict", keys["a"])[0] for _ in range(3 * LIMIT)]
    assert eventually_both_workers_recorded(decisions)
    assert LIMIT < statuses.count(200) <= 2 * LIMIT, statuses
