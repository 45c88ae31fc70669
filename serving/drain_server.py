"""The launcher's granian server with a drain period (:mod:`serving.drain` says why)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

from granian.server.mp import MPServer

from serving.drain import DRAIN_FILE_ENV

logger = logging.getLogger("serving.drain")


class DrainingGranian(MPServer):
    """granian's server (``granian.Granian`` is ``MPServer`` on a GIL build of Python) with a
    drain period between SIGTERM and its graceful stop."""

    drain_seconds = 0.0
    drain_dir: Path | None = None
    drain_timer: threading.Timer | None = None

    def prepare_drain(self, seconds: float) -> None:
        """Before :meth:`serve`: the drain period and the marker's path, for every worker."""
        self.drain_seconds = seconds
        self.drain_dir = Path(tempfile.mkdtemp(prefix="digits-drain-"))
        os.environ[DRAIN_FILE_ENV] = str(self.drain_dir / "draining")  # workers inherit it

    def signal_handler_interrupt(self, *args: Any, **kwargs: Any) -> None:
        """SIGTERM: mark the drain; stop after ``drain_seconds`` (at once when 0)."""
        signum = args[0] if args else None
        if signum != signal.SIGTERM or self.drain_timer is not None:  # SIGINT, a second SIGTERM
            super().signal_handler_interrupt(*args, **kwargs)  # type: ignore[no-untyped-call]
            return
        if self.drain_dir is not None:
            (self.drain_dir / "draining").touch()
        if self.drain_seconds <= 0:
            super().signal_handler_interrupt(*args, **kwargs)  # type: ignore[no-untyped-call]
            return
        logger.info(
            "SIGTERM: /ready answers 503; serving for %.3g s more, then stopping",
            self.drain_seconds,
        )
        self.drain_timer = threading.Timer(self.drain_seconds, super().signal_handler_interrupt)
        self.drain_timer.daemon = True
        self.drain_timer.start()

    def serve_and_clean(self) -> None:
        """Serve until stopped; remove the marker's directory whatever happens."""
        try:
            self.serve()
        finally:
            if self.drain_timer is not None:
                self.drain_timer.cancel()
            if self.drain_dir is not None:
                shutil.rmtree(self.drain_dir, ignore_errors=True)
            os.environ.pop(DRAIN_FILE_ENV, None)


__all__ = ["DrainingGranian"]
