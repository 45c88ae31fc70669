"""Drain before shutdown: SIGTERM flips readiness at once; serving goes on for a while.

granian's own SIGTERM handling (2.x, ``granian/server/common.py``): the main process
terminates its workers at once; each stops accepting, finishes its in-flight requests and
runs the lifespan shutdown (decision records are written). A load balancer that still
routes to the instance meanwhile gets refused connections until its health check notices.

With ``DIGITS_SHUTDOWN_DRAIN_SECONDS`` > 0 the launcher's server puts a drain before that:
on SIGTERM it creates a marker file, the workers' ``/ready`` (and OIP ready) answer 503
``draining`` from that moment, every other route keeps serving, and granian's graceful stop
begins when the drain period is over. A balancer that health-checks ``/ready`` takes the
instance out of rotation in that time. SIGINT (Ctrl-C) and a second SIGTERM stop at once.

The marker's path reaches the workers in ``DIGITS_DRAIN_FILE``, set before they start, so a
worker respawned during the drain sees it too; ``/ready`` costs one ``stat`` more.
"""

from __future__ import annotations

import os

DRAIN_FILE_ENV = "DIGITS_DRAIN_FILE"
DRAINING = "draining"
DRAINING_MESSAGE = "shutting down: this instance finishes its requests and takes no new ones"


def draining() -> bool:
    """Whether this process's server has been told to stop (the marker exists)."""
    path = os.environ.get(DRAIN_FILE_ENV)
    return path is not None and os.path.exists(path)  # noqa: PTH110 - one stat, no Path


__all__ = ["DRAINING", "DRAINING_MESSAGE", "DRAIN_FILE_ENV", "draining"]
