"""A daemon thread that calls a flush every interval, sooner when woken, and once more at
close: what the decision writer and the feedback index each run off the event loop."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Flusher:
    def __init__(self, flush: Callable[[], None], interval: float, name: str) -> None:
        self._flush, self._interval = flush, interval
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._flush()

    def wake(self) -> None:
        """Flush now rather than at the end of the interval."""
        self._wake.set()

    def close(self, timeout: float) -> None:
        """Stop the thread (waiting up to ``timeout`` for a flush under way), then flush
        once more in the caller's thread: nothing added before the call is left behind."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=timeout)
        self._flush()
