"""The feedback index: what each recent decision decided, and which of its rows are labelled.

``POST /feedback`` names a decision by its request id; the index resolves it to the model
version, the predicted labels and OOD flags, and keeps the labels feedback has given, so
that each row gets one answer (a second, different label is refused; the same again is
idempotent).

* :class:`MemoryIndex`: this worker's memory, at most ``DIGITS_FEEDBACK_INDEX_SIZE``
  decisions, each for ``DIGITS_FEEDBACK_WINDOW``. Enough for one worker; with several,
  feedback reaching another worker than the one that decided is not resolved (it is
  kept, unmatched, for the query tool to join).
* :class:`RedisIndex`: the same, in Redis (``DIGITS_RATE_LIMIT_REDIS_URL``), shared by
  every worker and replica. Decisions are added in batches by a thread, off the request
  path: every ``FLUSH_SECONDS``, one ``HSET`` per bucket of :data:`BUCKET` consecutive
  request ids of a worker (a hash: one key and one expiry for 256 decisions), pipelined. A
  feedback that misses sends this worker's pending decisions first and looks again, so the
  worker that decided resolves its own decisions at once. Labels are claimed with one Lua
  script per feedback: atomic across workers.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import msgspec

from serving.flusher import Flusher

log = logging.getLogger("serving")
FLUSH_SECONDS = 0.2  # RedisIndex: decisions reach Redis within this (plus a round trip)
KEY_PREFIX = "digits:feedback:"


class IndexUnavailableError(RuntimeError):
    """Redis did not answer (down, timeout, refused)."""


class Decided(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """What a decision decided, per row: as the index keeps it. Tuples and ``gc=False``: a
    full index holds ``DIGITS_FEEDBACK_INDEX_SIZE`` of these, and none is a reference cycle,
    so the garbage collector never walks them (it would, at every full collection)."""

    model_version: str
    predicted: tuple[int, ...]
    ood: tuple[bool, ...]


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of claiming a feedback's labels for a decision's rows.

    ``conflicts``: rows already labelled differently (nothing was claimed then);
    ``new``: rows this feedback labels first; ``repeated``: rows labelled the same before.
    """

    conflicts: list[int]
    new: list[int]
    repeated: list[int]


def claim_rows(given: Sequence[int | None], held: Sequence[int | None]) -> Claim:
    """Compare a feedback's labels with those already held, row by row."""
    conflicts, new, repeated = [], [], []
    for row, (label, before) in enumerate(zip(given, held, strict=True)):
        if label is None:
            continue
        if before is None:
            new.append(row)
        elif before == label:
            repeated.append(row)
        else:
            conflicts.append(row)
    return Claim(conflicts, [] if conflicts else new, repeated)


class MemoryIndex:
    """Decisions of this worker, at most ``size``, each for ``window`` seconds."""

    shared = False

    def __init__(
        self, window: float, size: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window, self.size, self._clock = window, size, clock
        # request id -> (expiry, decision): tuples of untracked objects, which the garbage
        # collector untracks in turn; the labels given so far live apart (few decisions get any).
        self._entries: OrderedDict[str, tuple[float, Decided]] = OrderedDict()
        self._labels: dict[str, list[int | None]] = {}
        self._tallies: dict[str, list[int]] = {}

    def add(self, request_id: str, decided: Decided) -> None:
        """Index a decision (called once per recorded decision, on the event loop)."""
        entries = self._entries
        entries[request_id] = (self._clock() + self.window, decided)
        if len(entries) > self.size:
            oldest, _ = entries.popitem(last=False)
            self._labels.pop(oldest, None)

    def _decided(self, request_id: str) -> Decided | None:
        entry = self._entries.get(request_id)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[request_id]
            self._labels.pop(request_id, None)
            return None
        return entry[1]

    async def resolve(self, request_id: str) -> Decided | None:
        return self._decided(request_id)

    async def claim(self, request_id: str, labels: Sequence[int | None]) -> Claim:
        """Claim ``labels`` (one per row of a resolved decision) unless one conflicts."""
        decided = self._decided(request_id)
        if decided is None:  # expired since it was resolved: nothing to compare with
            return Claim([], [row for row, label in enumerate(labels) if label is not None], [])
        held = self._labels.setdefault(request_id, [None] * len(decided.predicted))
        claim = claim_rows(labels, held)
        for row in claim.new:
            held[row] = labels[row]
        return claim

    async def tally(self, version: str, new: int, correct: int) -> tuple[int, int]:
        """Add ``new`` labelled rows (``correct`` of them right) to ``version``'s running
        figures; returns (labelled, correct) so far, in this worker."""
        tally = self._tallies.setdefault(version, [0, 0])
        tally[0] += new
        tally[1] += correct
        return tally[0], tally[1]

    async def release(self, request_id: str, rows: Sequence[int]) -> None:
        """Undo a claim whose record could not be written (the client will retry)."""
        held = self._labels.get(request_id)
        if held is not None:
            for row in rows:
                held[row] = None

    def close(self) -> None:
        self._entries.clear()


# KEYS[1]: the decision's labels hash (field: row, value: label). ARGV: row, label pairs.
# Returns {conflicting rows..., -1, new rows..., -1, repeated rows...}; sets the new rows
# only when no row conflicts, with the decision's expiry (ARGV[1] seconds).
_CLAIM_SCRIPT = """
local conflicts, new, repeated = {}, {}, {}
for i = 2, #ARGV, 2 do
  local held = redis.call('HGET', KEYS[1], ARGV[i])
  if not held then table.insert(new, ARGV[i])
  elseif held == ARGV[i + 1] then table.insert(repeated, ARGV[i])
  else table.insert(conflicts, ARGV[i]) end
end
if #conflicts == 0 and #new > 0 then
  for i = 2, #ARGV, 2 do
    if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 0 then
      redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    end
  end
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
local out = {}
for _, r in ipairs(conflicts) do table.insert(out, tonumber(r)) end
table.insert(out, -1)
for _, r in ipairs(new) do table.insert(out, tonumber(r)) end
table.insert(out, -1)
for _, r in ipairs(repeated) do table.insert(out, tonumber(r)) end
return out
"""
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(Decided)
# A request id's last BUCKET_CHARS characters name its field in a hash, the rest its key:
# a worker's ids are a fixed prefix and a hex counter (serving.http.observe.request_id), so
# BUCKET consecutive decisions share one key and one expiry. An entry lives at least
# DIGITS_FEEDBACK_WINDOW: each write to a bucket sets its expiry to the whole window again.
BUCKET_CHARS = 2
BUCKET = 16**BUCKET_CHARS


def bucket_of(request_id: str) -> tuple[str, str]:
    """The Redis key and hash field of a request id's decision."""
    cut = len(request_id) - BUCKET_CHARS
    return KEY_PREFIX + "d:" + request_id[:cut], request_id[cut:]


def _split(reply: Sequence[Any]) -> Claim:
    parts: list[list[int]] = [[]]
    for value in reply:
        if int(value) == -1:
            parts.append([])
        else:
            parts[-1].append(int(value))
    conflicts, new, repeated = parts
    return Claim(conflicts, [] if conflicts else new, repeated)


class RedisIndex:
    """Decisions of every worker and replica, in Redis (see the module doc)."""

    shared = True

    def __init__(self, url: str, window: int) -> None:
        import redis
        import redis.asyncio

        self.window = window
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._sync = redis.Redis.from_url(url, socket_timeout=5)
        self._async = redis.asyncio.Redis.from_url(url, socket_timeout=5)
        self._claim = self._async.register_script(_CLAIM_SCRIPT)
        self._pending: deque[tuple[str, Decided]] = deque()  # appended on the loop
        self._flushing = threading.Lock()  # the flusher thread, or a feedback that missed
        self._failing = False
        self._flusher = Flusher(self.flush, FLUSH_SECONDS, "feedback-index")

    def add(self, request_id: str, decided: Decided) -> None:
        self._pending.append((request_id, decided))

    def flush(self) -> None:
        """Send the decisions added since the last flush: one ``HSET`` and one ``EXPIRE`` per
        bucket, one pipeline. On a Redis failure they are logged once per failure streak and
        dropped (their feedback is then kept ``unmatched``, for the query tool to join)."""
        with self._flushing:
            pending = [self._pending.popleft() for _ in range(len(self._pending))]
            if not pending:
                return
            buckets: dict[str, list[str | bytes]] = {}
            for request_id, decided in pending:
                key, field = bucket_of(request_id)
                fields = buckets.get(key)
                if fields is None:
                    fields = buckets[key] = []
                fields += (field, _ENCODER.encode(decided))
            try:
                pipe = self._sync.pipeline(transaction=False)
                for key, fields in buckets.items():
                    pipe.hset(key, items=fields)
                    pipe.expire(key, self.window)
                pipe.execute()
            except Exception as exc:  # redis raises its own ConnectionError, TimeoutError, ...
                if not self._failing:
                    log.error(
                        "feedback index: Redis write failed, %d decisions unshared: %s",
                        len(pending),
                        exc,
                    )
                self._failing = True
                return
            if self._failing:
                log.warning("feedback index: Redis writes recovered")
            self._failing = False

    async def resolve(self, request_id: str) -> Decided | None:
        """The decision ``request_id`` names, from Redis. On a miss, this worker's pending
        decisions are sent first (in a thread) and Redis is asked again: a feedback that
        reaches the worker that decided never waits for the next flush."""
        key, field = bucket_of(request_id)
        # Read before asking Redis: with nothing pending and no flush under way, every
        # decision added so far is in Redis already, and a miss needs no flush.
        unsent = bool(self._pending) or self._flushing.locked()
        try:
            data = await self._async.hget(key, field)
            if data is None and unsent:
                await asyncio.to_thread(self.flush)
                data = await self._async.hget(key, field)
        except self._errors as exc:
            raise IndexUnavailableError(str(exc)) from exc
        return None if data is None else _DECODER.decode(cast(bytes, data))

    async def claim(self, request_id: str, labels: Sequence[int | None]) -> Claim:
        pairs: list[str | int] = [self.window]
        for row, label in enumerate(labels):
            if label is not None:
                pairs += [row, label]
        try:
            reply = await self._claim(keys=[KEY_PREFIX + "l:" + request_id], args=pairs)
        except self._errors as exc:
            raise IndexUnavailableError(str(exc)) from exc
        return _split(reply)

    async def tally(self, version: str, new: int, correct: int) -> tuple[int, int]:
        """Add to ``version``'s running figures, shared by every worker and replica."""
        key = KEY_PREFIX + "a:" + version
        try:
            async with self._async.pipeline(transaction=True) as pipe:
                pipe.hincrby(key, "labelled", new)
                pipe.hincrby(key, "correct", correct)
                labelled, right = await pipe.execute()
        except self._errors as exc:
            raise IndexUnavailableError(str(exc)) from exc
        return int(labelled), int(right)

    async def release(self, request_id: str, rows: Sequence[int]) -> None:
        if rows:
            try:
                await self._async.hdel(KEY_PREFIX + "l:" + request_id, *map(str, rows))
            except self._errors as exc:
                raise IndexUnavailableError(str(exc)) from exc

    def close(self) -> None:
        """Stop the thread and send what is pending (graceful shutdown)."""
        self._flusher.close(timeout=10)
        self._sync.close()


FeedbackIndex = MemoryIndex | RedisIndex
