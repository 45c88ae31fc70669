"""Dead-worker sweep (serving.monitoring.metrics): dead workers' live gauges removed, the rest
kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from serving.monitoring.metrics import is_live_sibling, parent_pid, sweep_dead_workers
from serving.settings import load_settings

pytestmark = pytest.mark.unit


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_parent_pid_of_this_process_and_of_a_dead_one() -> None:
    assert parent_pid(os.getpid()) == os.getppid()
    assert parent_pid(dead_pid()) is None
    assert is_live_sibling(os.getpid())


def test_sweep_removes_only_dead_workers_live_gauges(tmp_path: Path) -> None:
    dead, me = dead_pid(), os.getpid()
    names = [
        f"gauge_livesum_{dead}.db",
        f"gauge_livemin_{dead}.db",
        f"gauge_liveall_{dead}.db",
        f"counter_{dead}.db",
        f"histogram_{dead}.db",
        f"gauge_max_{dead}.db",
        f"gauge_livesum_{me}.db",
        f"gauge_liveall_{me}.db",
        "notes.txt",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    assert sweep_dead_workers(tmp_path) == [dead]
    left = sorted(path.name for path in tmp_path.iterdir())
    assert left == sorted(
        name for name in names if not name.startswith("gauge_live") or str(me) in name
    )
    assert sweep_dead_workers(tmp_path) == []


def test_sweep_without_a_directory_does_nothing(tmp_path: Path) -> None:
    assert sweep_dead_workers(tmp_path / "missing") == []


def test_timeouts_from_environment() -> None:
    settings = load_settings({"DIGITS_HEADER_READ_TIMEOUT": "2.5", "DIGITS_BODY_READ_TIMEOUT": "7"})
    assert (settings.header_read_timeout_seconds, settings.body_read_timeout_seconds) == (2.5, 7.0)
    assert load_settings({}).body_read_timeout_seconds == 30.0
