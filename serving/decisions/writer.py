"""Writes decision records off the request path: packed chunks, an encoder process, rotation.

A request appends what its record needs (a :data:`~serving.decisions.record.Pending`
tuple: ids, timings and references to the request's arrays, which are not mutated) to a
deque. Once ``ENCODE_CHUNK`` input rows are pending (64 single-row requests, or one large
request) they are packed on the event loop (:func:`serving.decisions.packing.pack`: the
columns and stacked array bytes as one msgpack frame, about a microsecond per record).
Every ``flush_seconds`` (or at ``WAKE_FRAMES`` frames) the writer thread packs the last,
short chunk, has the frames turned into JSON lines by this worker's encoder process
(:mod:`serving.decisions.encoder`: the sha256 of the inputs and the JSON are made off the
event loop's GIL; in this thread when the process is unavailable), and appends the lines
with one ``write`` to this worker's file ``decisions-<host>-<pid>-<seq>.jsonl``
(:mod:`serving.decisions.logfile`, kept open); a file over ``max_bytes`` is closed and the
next sequence number opened (size-based rotation; old files are kept for the query tool
and for retention outside the service).

A failed write (full or read-only disk) never reaches a request: it is logged once per
failure streak, counted in ``decision_log_write_errors_total{reason}``, and
``decision_log_healthy`` drops to 0 (alert: deploy/prometheus/rules). The unwritten lines
are kept and retried at the next flush, up to ``max_pending_bytes``; beyond that the
oldest are dropped and counted (``decision_records_dropped_total``). A write cut short
after some bytes resumes where it stopped: the bytes that reached the file are not written
again, and the rest of a line begun in the file is written first, to that same file, so
that every line ends up whole and every record written once. If that file was moved or
removed meanwhile, the rest of its torn line is dropped (and the record counted as
dropped) rather than start the next file with a fragment. :meth:`close` (the
lifespan's shutdown, on SIGTERM) encodes and writes everything pending, then stops the
encoder process, before the worker exits.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from pathlib import Path

from serving.decisions.encoder import Encoder
from serving.decisions.logfile import LogFile, WriteFailedError
from serving.decisions.packing import Pending, pack
from serving.flusher import Flusher
from serving.monitoring.access_metrics import AccessMetrics, write_error_reason

log = logging.getLogger("serving")
WAKE_FRAMES = 32  # packed chunks that wake the writer thread before its flush interval
ENCODE_CHUNK = 64  # rows (and records) packed together


class DecisionWriter:
    def __init__(
        self,
        directory: Path,
        metrics: AccessMetrics,
        flush_seconds: float,
        max_bytes: int,
        with_inputs: bool = False,
        max_pending_bytes: int = 256 * 1024 * 1024,
        encoder: Encoder | None = None,
        hash_key: bytes | None = None,
    ) -> None:
        self.directory = directory
        self._metrics = metrics
        self._max_bytes = max_bytes
        self._max_pending_bytes = max_pending_bytes
        self._pending: deque[Pending] = deque()  # answered, not yet packed
        self._pending_rows = 0  # their input rows
        self._packing = threading.Lock()  # one chunk packed at a time, in order
        self._packed: deque[tuple[bytes, int]] = deque()  # (frame, records), not yet encoded
        self.encoder = encoder or Encoder(with_inputs, hash_key=hash_key)
        self._unwritten: deque[bytes] = deque()  # encoded: blocks of whole lines
        self._line_rest = b""  # the rest of a line whose start a failed write left in the file
        self._torn_file = (0, 0)  # (device, inode) of that file
        self._unwritten_bytes = 0  # the blocks' and the line rest's
        self._lock = threading.Lock()  # one flush at a time
        self._file = LogFile(directory)
        self._failing = False
        self._flusher = Flusher(self.flush, flush_seconds, "decision-writer")

    def submit(self, item: Pending) -> None:
        """Queue one answered request's record (called on the event loop; no I/O).

        Once ``ENCODE_CHUNK`` rows are pending (64 single-row requests, or one request of
        64 rows or more), they are packed here (:func:`~serving.decisions.packing.pack`:
        arrays stacked, no per-record conversion); the encoder process makes the JSON."""
        self._pending.append(item)
        self._pending_rows += len(item.outcome.samples)
        if self._pending_rows >= ENCODE_CHUNK:
            self.pack_pending()

    def pack_pending(self) -> None:
        """Pack every pending record, ``ENCODE_CHUNK`` at a time, for the writer thread."""
        with self._packing:
            pending = self._pending
            self._pending_rows = 0
            while pending:
                chunk = [pending.popleft() for _ in range(min(len(pending), ENCODE_CHUNK))]
                self._packed.extend(self._pack(chunk))
        if len(self._packed) >= WAKE_FRAMES:
            self._flusher.wake()

    def _pack(self, chunk: list[Pending]) -> list[tuple[bytes, int]]:
        """The chunk as one frame; a record that cannot be packed is dropped, counted and
        logged (every other record carries on)."""
        try:
            return [(pack(chunk), len(chunk))]
        except Exception:  # one by one: only the bad record is lost
            frames = []
            for item in chunk:
                try:
                    frames.append((pack([item]), 1))
                except Exception:
                    self._metrics.decisions_dropped.inc()
                    log.exception(
                        "decision record %s could not be encoded; dropped", item.request_id
                    )
            return frames

    def flush(self) -> None:
        """Pack what is pending, encode, append every line; failures keep them for a retry."""
        self.pack_pending()  # the last, short chunk when traffic pauses
        with self._lock:
            frames = [self._packed.popleft() for _ in range(len(self._packed))]
            if frames:
                replies = self.encoder.lines([frame for frame, _ in frames])
                for (_, records), reply in zip(frames, replies, strict=True):
                    if reply is None:
                        self._metrics.decisions_dropped.inc(records)
                        continue
                    lines, dropped = reply
                    self._metrics.decisions_dropped.inc(dropped)
                    self._keep(lines)
            if self._unwritten or self._line_rest:
                self._write()

    def _keep(self, lines: bytes) -> None:
        if not lines:
            return
        self._unwritten.append(lines)
        self._unwritten_bytes += len(lines)
        while self._unwritten_bytes > self._max_pending_bytes and self._unwritten:
            oldest = self._unwritten.popleft()
            self._unwritten_bytes -= len(oldest)
            self._metrics.decisions_dropped.inc(oldest.count(b"\n"))

    def _take(self, size: int) -> list[bytes]:
        """Take the unwritten lines that fit in a file of ``size`` bytes (one line at least
        if it is empty), splitting a block only where it crosses the limit; the rest of a
        torn line first, whatever the room: its start is in this file."""
        room, taken = self._max_bytes - size, []
        if self._line_rest:
            taken.append(self._line_rest)
            room -= len(self._line_rest)
            self._line_rest = b""
        unwritten = self._unwritten
        while unwritten:
            block = unwritten[0]
            if len(block) <= room:
                taken.append(unwritten.popleft())
                room -= len(block)
                continue
            lines = block.splitlines(keepends=True)
            fit = 0
            while fit < len(lines) and len(lines[fit]) <= room:
                room -= len(lines[fit])
                fit += 1
            if fit == 0 and not taken and size == 0:
                fit = 1  # a line longer than a whole file still gets written
            if fit:
                taken.append(b"".join(lines[:fit]))
                if fit < len(lines):
                    unwritten[0] = b"".join(lines[fit:])
                else:
                    unwritten.popleft()
            break
        return taken

    def _write(self) -> None:
        """Append the pending lines, rotating so that no file grows past ``max_bytes``."""
        try:
            while self._unwritten or self._line_rest:
                size = self._file.size()
                if self._line_rest and self._file.identity != self._torn_file:
                    self._drop_line_rest()
                resuming = bool(self._line_rest)
                taken = self._take(size)
                if not taken:  # this file is full: the next sequence number
                    self._file.rotate()
                    continue
                data = b"".join(taken)
                try:
                    self._file.append(data)
                except WriteFailedError as exc:
                    self._keep_unwritten(data, exc.written, resuming)
                    raise
                self._unwritten_bytes -= len(data)
                self._metrics.decisions_written.inc(data.count(b"\n"))
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

    def _keep_unwritten(self, data: bytes, written: int, resuming: bool) -> None:
        """Keep what a failed append did not write, in order: only ``data[written:]``.

        If the file now ends inside a line (this write stopped in one, or wrote nothing
        while ``resuming`` a torn one), the rest of that line is kept apart, to be written
        first and to this file (:meth:`_take`)."""
        self._unwritten_bytes -= written
        self._metrics.decisions_written.inc(data.count(b"\n", 0, written))
        rest = data[written:]
        torn = data[written - 1] != ord("\n") if written else resuming
        if torn and rest:
            end = rest.index(b"\n") + 1  # every block ends with a whole line
            self._line_rest, rest = rest[:end], rest[end:]
            self._torn_file = self._file.identity
        if rest:
            self._unwritten.appendleft(rest)

    def _drop_line_rest(self) -> None:
        """The file that holds the start of the torn line was moved or removed: its rest is
        dropped (that one record is lost, counted) rather than start another file."""
        self._unwritten_bytes -= len(self._line_rest)
        self._line_rest = b""
        self._metrics.decisions_dropped.inc()
        log.error("decision log file changed after a write was cut short; one record dropped")

    def close(self) -> None:
        """Stop the thread and write everything pending (graceful shutdown)."""
        self._flusher.close(timeout=30)
        self.encoder.close()
        self._file.close()
        if self._unwritten or self._line_rest:
            log.error(
                "decision log: %d records could not be written at shutdown",
                sum(block.count(b"\n") for block in self._unwritten) + bool(self._line_rest),
            )
