"""Drop the live gauges of worker processes that died without a graceful shutdown.

A worker that exits normally removes its own live-gauge files (``mark_process_dead`` in
the app's lifespan). A worker killed by SIGKILL (or the OOM killer) cannot, and granian
respawns a new one with a new pid: the dead worker's ``livesum``/``livemin``/``liveall``
files would keep counting its in-flight requests, readiness and drift gauges. Workers
call :func:`sweep_dead_workers` at start-up and on every scrape; counters and histograms
of dead workers are kept (cumulative totals must not go backwards).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from serving.metrics import MULTIPROC_ENV

_LIVE_GAUGE_FILE = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")


def parent_pid(pid: int) -> int | None:
    """The parent pid of ``pid`` from ``/proc``, or None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    fields = stat.rpartition(")")[2].split()
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None


def is_live_sibling(pid: int) -> bool:
    """Whether ``pid`` is this process or another live worker of the same server."""
    if pid == os.getpid():
        return True
    return parent_pid(pid) == os.getppid()


def sweep_dead_workers(directory: Path | None = None) -> list[int]:
    """Remove the live-gauge files of pids that are no longer workers of this server.

    Returns the pids whose files were removed. Safe to run concurrently in every worker.
    """
    if directory is None:
        configured = os.environ.get(MULTIPROC_ENV)
        if not configured:
            return []
        directory = Path(configured)
    try:
        names = [entry.name for entry in directory.iterdir()]
    except OSError:
        return []
    live: dict[int, bool] = {}
    for name in names:
        match = _LIVE_GAUGE_FILE.match(name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid not in live:
            live[pid] = is_live_sibling(pid)
        if not live[pid]:
            (directory / name).unlink(missing_ok=True)
    return sorted(pid for pid, alive in live.items() if not alive)


__all__ = ["is_live_sibling", "parent_pid", "sweep_dead_workers"]
