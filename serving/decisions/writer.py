"""Writes decision records off the request path: chunked encoding, a background thread, rotation.

A request appends what its record needs (a :data:`~serving.decisions.record.Pending`
tuple: ids, timings and references to the request's arrays, which are not mutated) to a
deque. Records are encoded in chunks (:func:`serving.decisions.record.record_lines`: a
chunk's per-row fields are converted together and its lines encoded in one call): on the
event loop once ``ENCODE_CHUNK`` input rows are pending (a fraction of a millisecond per
64 single-row requests; a large request is encoded on its own; encoding in the writer
thread instead cost more, and its GIL hand-offs added milliseconds to p99), and by the
writer thread for the last, short chunk when traffic pauses. Every ``flush_seconds``
(or at ``BATCH_WAKE`` encoded lines) the writer thread appends the lines with one
``write`` to this worker's file ``decisions-<host>-<pid>-<seq>.jsonl``; a file over
``max_bytes`` is closed and the next sequence number opened (size-based rotation; old
files are kept for the query tool and for retention outside the service).

A failed write (full or read-only disk) never reaches a request: it is logged once per
failure streak, counted in ``decision_log_write_errors_total{reason}``, and
``decision_log_healthy`` drops to 0 (alert: deploy/prometheus/rules). The unwritten lines
are kept and retried at the next flush, up to ``max_pending_bytes``; beyond that the
oldest are dropped and counted (``decision_records_dropped_total``). :meth:`close` (the
lifespan's shutdown, on SIGTERM) encodes and writes everything pending before the worker
exits.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections import deque
from pathlib import Path

from serving.access_metrics import AccessMetrics, write_error_reason
from serving.decisions.record import Pending, RecordTime, record_lines

log = logging.getLogger("serving")
BATCH_WAKE = 2048
ENCODE_CHUNK = 64  # rows (and records) encoded together (a fraction of a millisecond)


class DecisionWriter:
    def __init__(
        self,
        directory: Path,
        metrics: AccessMetrics,
        flush_seconds: float,
        max_bytes: int,
        with_inputs: bool = False,
        max_pending_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self.directory = directory
        self._metrics = metrics
        self._flush_seconds = flush_seconds
        self._max_bytes = max_bytes
        self._max_pending_bytes = max_pending_bytes
        self._with_inputs = with_inputs
        self._time_of = RecordTime()
        self._pending: deque[Pending] = deque()  # answered, not yet encoded
        self._pending_rows = 0  # their input rows
        self._encoding = threading.Lock()  # one chunk encoded at a time, in order
        self._queue: deque[bytes] = deque()  # encoded, not yet taken by the thread
        self._unwritten: deque[bytes] = deque()
        self._unwritten_bytes = 0
        self._wake = threading.Event()
        self._stopping = False
        self._lock = threading.Lock()  # one flush at a time
        self._prefix = f"decisions-{socket.gethostname()}-{os.getpid()}-"
        self._seq = self._last_seq()
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="decision-writer", daemon=True)
        self._thread.start()

    def submit(self, item: Pending) -> None:
        """Queue one answered request's record (called on the event loop; no I/O).

        Once ``ENCODE_CHUNK`` rows are pending (64 single-row requests, or one request of
        64 rows or more), they are encoded here, on the event loop: no GIL hand-off to
        the writer thread, whose own encoding would hold the GIL against the loop."""
        self._pending.append(item)
        self._pending_rows += len(item[9].samples)
        if self._pending_rows >= ENCODE_CHUNK:
            self.encode_pending()

    def encode_pending(self) -> None:
        """Encode every pending record, ``ENCODE_CHUNK`` at a time, for the writer thread."""
        with self._encoding:
            pending = self._pending
            self._pending_rows = 0
            while pending:
                chunk = [pending.popleft() for _ in range(min(len(pending), ENCODE_CHUNK))]
                self._queue.extend(self._encode(chunk))
        if len(self._queue) >= BATCH_WAKE:
            self._wake.set()

    def _last_seq(self) -> int:
        try:
            names = [p.name for p in self.directory.glob(f"{self._prefix}*.jsonl")]
        except OSError:
            return 0
        seqs = [
            int(n[len(self._prefix) : -6]) for n in names if n[len(self._prefix) : -6].isdigit()
        ]
        return max(seqs, default=0)

    def current_path(self) -> Path:
        return self.directory / f"{self._prefix}{self._seq:04d}.jsonl"

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Encode what is pending, append every line; failures keep the lines for a retry."""
        self.encode_pending()  # the last, short chunk when traffic pauses
        with self._lock:
            for _ in range(len(self._queue)):
                self._keep(self._queue.popleft())
            if self._unwritten:
                self._write()

    def _encode(self, chunk: list[Pending]) -> list[bytes]:
        """The chunk's lines; a record that cannot be encoded is dropped, counted and logged
        (the thread, and every other record, carry on)."""
        try:
            return record_lines(chunk, self._with_inputs, self._time_of)
        except Exception:  # one by one: only the bad record is lost
            lines: list[bytes] = []
            for item in chunk:
                try:
                    lines += record_lines([item], self._with_inputs, self._time_of)
                except Exception:
                    self._metrics.decisions_dropped.inc()
                    log.exception("decision record %s could not be encoded; dropped", item[0])
            return lines

    def _keep(self, line: bytes) -> None:
        self._unwritten.append(line)
        self._unwritten_bytes += len(line)
        while self._unwritten_bytes > self._max_pending_bytes and self._unwritten:
            self._unwritten_bytes -= len(self._unwritten.popleft())
            self._metrics.decisions_dropped.inc()

    def _next_chunk(self, size: int) -> list[bytes]:
        """The pending lines that fit in a file of ``size`` bytes (one line at least if empty)."""
        room, taken = self._max_bytes - size, 0
        chunk: list[bytes] = []
        for line in self._unwritten:
            if taken + len(line) > room and (chunk or size):
                break
            chunk.append(line)
            taken += len(line)
        return chunk

    def _append(self, path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    def _write(self) -> None:
        """Append the pending lines, rotating so that no file grows past ``max_bytes``."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            while self._unwritten:
                path = self.current_path()
                chunk = self._next_chunk(path.stat().st_size if path.exists() else 0)
                if not chunk:  # this file is full: the next sequence number
                    self._seq += 1
                    continue
                self._append(path, b"".join(chunk))
                for line in chunk:
                    self._unwritten.popleft()
                    self._unwritten_bytes -= len(line)
                self._metrics.decisions_written.inc(len(chunk))
        except OSError as exc:
            self._metrics.decision_write_errors.labels(write_error_reason(exc)).inc()
            self._metrics.decision_log_healthy.set(0)
            if not self._failing:
                log.error(
                    "decision log write failed; records kept in memory and retried: %s",
                    exc,
                    extra={"pending_records": len(self._unwritten)},
                )
            self._failing = True
            return
        if self._failing:
            log.warning("decision log writes recovered")
            self._metrics.decision_log_healthy.set(1)
        self._failing = False

    def close(self) -> None:
        """Stop the thread and write everything pending (graceful shutdown)."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=30)
        self.flush()
        if self._unwritten:
            log.error(
                "decision log: %d records could not be written at shutdown",
                len(self._unwritten),
            )
