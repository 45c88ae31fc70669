"""The Redis feedback index against a real ``redis-server``: what two workers see, how long
an entry lives, and what Redis holds per decision."""

from __future__ import annotations

import asyncio
import itertools

import redis

from serving.feedback.index import BUCKET, KEY_PREFIX, Decided, RedisIndex, bucket_of
from tests.integration.redis_server import RedisServer

PREFIX = "0123456789abcdef0123"  # a worker's id prefix (serving.http.observe.request_id)


def _ids(start: int, count: int, prefix: str = PREFIX) -> list[str]:
    return [f"{prefix}{n:012x}" for n in range(start, start + count)]


def _decided(n: int) -> Decided:
    return Decided("v9.9.9", (n % 10, (n + 3) % 10), (n % 7 == 0, False))


def test_the_deciding_worker_resolves_at_once_and_others_after_a_flush(
    redis_server: RedisServer,
) -> None:
    deciding, other = RedisIndex(redis_server.url, 600), RedisIndex(redis_server.url, 600)
    try:
        ids = _ids(0, 3)
        for n, request_id in enumerate(ids):
            deciding.add(request_id, _decided(n))

        async def scenario() -> None:
            # Before any flush: the other worker misses (it has nothing pending to send) ...
            assert await other.resolve(ids[0]) is None
            # ... the deciding worker sends its pending decisions on a miss, finds its own.
            assert await deciding.resolve(ids[1]) == _decided(1)
            # Now every worker resolves all three, from Redis.
            assert [await other.resolve(i) for i in ids] == [_decided(n) for n in range(3)]
            assert await other.resolve(PREFIX + "ffffffffffff") is None

        asyncio.run(scenario())
    finally:
        deciding.close()
        other.close()


def test_a_bucket_holds_consecutive_ids_and_each_write_renews_its_expiry(
    redis_server: RedisServer,
) -> None:
    index = RedisIndex(redis_server.url, 2)
    client = redis.Redis.from_url(redis_server.url)
    try:
        ids = _ids(0, BUCKET + 1)
        keys = {bucket_of(request_id)[0] for request_id in ids}
        assert len(keys) == 2  # 256 ids in one hash, the 257th starts the next
        for n, request_id in enumerate(ids[:10]):
            index.add(request_id, _decided(n))
        index.flush()
        first = bucket_of(ids[0])[0]
        assert client.hlen(first) == 10
        assert 0 < client.pttl(first) <= 2000

        async def scenario() -> None:
            await asyncio.sleep(1.2)
            index.add(ids[10], _decided(10))  # same bucket: the whole window again
            index.flush()
            assert client.pttl(first) > 1000
            await asyncio.sleep(1.2)  # 2.4 s after the first ten: they live with the bucket
            assert await index.resolve(ids[0]) == _decided(0)
            await asyncio.sleep(1.0)  # 2.2 s after the last write: the bucket is gone
            assert client.exists(first) == 0
            assert await index.resolve(ids[0]) is None

        asyncio.run(scenario())
    finally:
        index.close()
        client.close()


def test_redis_memory_per_decision_is_small(redis_server: RedisServer) -> None:
    """What DIGITS_FEEDBACK_WINDOW costs in Redis memory (docs/deployment.md quotes it)."""
    index = RedisIndex(redis_server.url, 600)
    client = redis.Redis.from_url(redis_server.url)
    try:
        before = int(client.info("memory")["used_memory"])
        count = 20_000
        prefixes = (f"{n:020x}" for n in itertools.count())
        for worker in itertools.islice(prefixes, 4):  # four workers' interleaved ids
            for n, request_id in enumerate(_ids(0, count // 4, worker)):
                index.add(request_id, Decided("v9.9.9", (n % 10,), (False,)))
        index.flush()
        per_decision = (int(client.info("memory")["used_memory"]) - before) / count
        assert len(client.keys(KEY_PREFIX + "d:*")) == 4 * -(-count // 4 // BUCKET)
        assert per_decision < 60, per_decision
    finally:
        index.close()
        client.close()
