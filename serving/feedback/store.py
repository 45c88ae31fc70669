"""Feedback records on disk: one JSON line per accepted feedback, written before the answer.

``feedback-<host>-<pid>-<seq>.jsonl`` beside the decision records, through the same log
file (:class:`serving.decisions.logfile.LogFile`: ``O_NOFOLLOW``, a ``0700`` directory,
rotation past ``DIGITS_DECISION_LOG_MAX_BYTES``). Feedback is rare next to predictions, so
each record is appended and ``fdatasync``-ed in a worker thread before ``POST /feedback``
answers 202: an accepted feedback is on disk, and a SIGTERM can lose none. A write that
fails (full or read-only disk) raises :class:`FeedbackNotStoredError`; the route answers 503
and the client sends the feedback again. A write cut short leaves a torn line: the next
record starts the next file, and the query tool skips the torn line and counts it.
"""

from __future__ import annotations

import threading
from pathlib import Path

import anyio.to_thread
import msgspec

from serving.decisions.logfile import LogFile, WriteFailedError
from serving.feedback.record import FILE_PREFIX, FeedbackRecord

_ENCODER = msgspec.json.Encoder()


class FeedbackNotStoredError(OSError):
    """The feedback record could not be written (the cause is chained)."""


class FeedbackLog:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self._file = LogFile(directory, FILE_PREFIX)
        self._max_bytes = max_bytes
        self._lock = threading.Lock()

    def _append(self, line: bytes) -> None:
        with self._lock:
            try:
                size = self._file.size()
                if size and size + len(line) > self._max_bytes:
                    self._file.rotate()
                    self._file.size()
                self._file.append(line)
                self._file.sync()
            except WriteFailedError as exc:
                if exc.written:
                    self._file.rotate()  # no record starts after a torn line
                raise FeedbackNotStoredError(f"feedback record not written: {exc}") from exc
            except OSError as exc:
                raise FeedbackNotStoredError(f"feedback record not written: {exc}") from exc

    async def write(self, record: FeedbackRecord) -> None:
        """Append ``record`` and flush it to the disk, off the event loop."""
        line = _ENCODER.encode(record) + b"\n"
        await anyio.to_thread.run_sync(self._append, line)

    def close(self) -> None:
        with self._lock:
            self._file.close()
