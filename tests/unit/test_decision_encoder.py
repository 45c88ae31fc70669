"""The decision-record encoder process (serving/decisions/encoder.py), run for real.

It writes the bytes the worker would have written; a killed or hung encoder loses no
record (the worker encodes them itself, then starts a new one); it never outlives its
worker, even one killed by SIGKILL.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from prometheus_client import Counter, Gauge

import serving.decisions.encoder as encoder_module
from serving.decisions.decided import Decided
from serving.decisions.encoder import REPLY_TIMEOUT_SECONDS, Encoder
from serving.decisions.packing import Pending
from serving.decisions.record import RecordModel, RecordTime
from serving.decisions.writer import DecisionWriter
from serving.monitoring.access_metrics import AccessMetrics
from tests.records import record_lines

pytestmark = pytest.mark.unit
REPO_ROOT = Path(__file__).resolve().parents[2]


def answered(start: int, count: int) -> list[Pending]:
    """Answered requests of 1 to 3 rows, and one of 100 rows (a chunk on its own)."""
    rng = np.random.default_rng(start)
    items: list[Pending] = []
    for index in range(start, start + count):
        n = 100 if index % 97 == 5 else 1 + index % 3
        samples = rng.integers(0, 17, size=(n, 64)).astype(np.float32)
        outcome = Decided(
            samples,
            rng.integers(0, 10, size=n),
            rng.random((n, 10)).astype(np.float32),
            rng.random(n) > 0.8,
            rng.random(n).astype(np.float32),
        )
        started = 1_764_480_000.0 + index * 0.0137
        client_rid = f"client-{index}" if index % 2 else None
        items.append(
            Pending(
                f"r{index}",
                client_rid,
                started,
                "c",
                "/predict",
                "POST",
                200,
                RecordModel("v", None),
                0.002,
                outcome,
            )
        )
    return items


def written(directory: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(directory.glob("decisions-*.jsonl")))


def make_writer(directory: Path, encoder: Encoder, inputs: bool = False) -> DecisionWriter:
    metrics = AccessMetrics(Counter, Gauge)
    return DecisionWriter(directory, metrics, 60.0, 1 << 20, inputs, encoder=encoder)


def submit_and_flush(writer: DecisionWriter, items: list[Pending]) -> None:
    for item in items:
        writer.submit(item)
    writer.flush()


def encoder_pid(parent: int | None = None) -> int | None:
    """The encoder process ``parent`` (default: this process) runs, if any."""
    found: list[int] = []
    for child in psutil.Process(parent).children():
        try:
            if "serving.decisions.encoder" in child.cmdline():
                found.append(child.pid)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):  # exited, or killed and not reaped
            continue
    assert len(found) <= 1, f"more than one encoder process: {found}"
    return found[0] if found else None


def test_the_encoder_process_writes_the_bytes_the_worker_would(tmp_path: Path) -> None:
    items = answered(0, 300)
    writer = make_writer(tmp_path, Encoder(True), inputs=True)
    submit_and_flush(writer, items)
    pid = encoder_pid()
    assert pid is not None
    child = psutil.Process(pid)
    assert child.nice() == min(19, psutil.Process().nice() + encoder_module.NICENESS)
    writer.close()
    assert not psutil.pid_exists(pid)  # stopped and reaped with the writer
    assert written(tmp_path) == b"".join(record_lines(items, True, RecordTime()))


def test_a_killed_encoder_process_loses_no_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    first, second, third = answered(0, 200), answered(200, 200), answered(400, 200)
    monkeypatch.setattr(encoder_module, "RESTART_SECONDS", 1.0)
    writer = make_writer(tmp_path, Encoder(False, reply_timeout=5.0))
    submit_and_flush(writer, first)
    killed = encoder_pid()
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    with caplog.at_level(logging.ERROR, logger="serving"):
        submit_and_flush(writer, second)  # encoded by the worker itself
    assert "encoder process failed" in caplog.text
    assert encoder_pid() is None  # not restarted before RESTART_SECONDS
    time.sleep(1.1)
    submit_and_flush(writer, third)  # a new process
    restarted = encoder_pid()
    assert restarted not in (None, killed)
    writer.close()
    assert written(tmp_path) == b"".join(record_lines(first + second + third, False, RecordTime()))


def test_a_hung_encoder_process_is_replaced(tmp_path: Path) -> None:
    items = answered(0, 400)
    writer = make_writer(tmp_path, Encoder(False, reply_timeout=0.5))
    submit_and_flush(writer, items[:100])
    hung = encoder_pid()
    assert hung is not None
    os.kill(hung, signal.SIGSTOP)
    started = time.monotonic()
    submit_and_flush(writer, items[100:])
    # The writer gave up after its own 0.5 s timeout, not the default one, and encoded the
    # rest itself (a bound on what it waited, not a speed: this machine may be loaded).
    assert time.monotonic() - started < REPLY_TIMEOUT_SECONDS
    assert not psutil.pid_exists(hung)  # killed and reaped
    writer.close()
    assert written(tmp_path) == b"".join(record_lines(items, False, RecordTime()))


def test_the_encoder_process_exits_when_its_worker_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from pathlib import Path
        from tests.unit.test_decision_encoder import answered, make_writer, submit_and_flush
        from serving.decisions.encoder import REPLY_TIMEOUT_SECONDS, Encoder
        writer = make_writer(Path({str(tmp_path)!r}), Encoder(False))
        submit_and_flush(writer, answered(0, 100))
        print("flushed", flush=True)
        time.sleep(120)
        """
    )
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline() == "flushed\n"
        pid = encoder_pid(worker.pid)
        assert pid is not None
        child = psutil.Process(pid)
    finally:
        worker.kill()
        worker.wait()
    deadline = time.monotonic() + 10  # stdin closed with the worker: the encoder exits
    while True:
        try:
            if child.status() == psutil.STATUS_ZOMBIE:  # exited, not reaped by its new parent
                break
        except psutil.NoSuchProcess:
            break
        assert time.monotonic() < deadline, "the encoder outlived its killed worker"
        time.sleep(0.05)


def test_a_log_file_moved_or_removed_outside_the_service_is_reopened(tmp_path: Path) -> None:
    """The writer keeps its file open between flushes; a file renamed away (logrotate) or
    deleted is noticed at the next flush, and the new lines go to a new file at the path."""
    items = answered(0, 300)
    writer = make_writer(tmp_path, Encoder(False))
    submit_and_flush(writer, items[:100])
    (path,) = tmp_path.glob("decisions-*.jsonl")
    path.rename(tmp_path / "rotated.jsonl.1")
    submit_and_flush(writer, items[100:200])
    path.unlink()  # the second file, deleted: its lines are gone, later ones are kept
    submit_and_flush(writer, items[200:])
    writer.close()
    expected = [record_lines(part, False, RecordTime()) for part in (items[:100], items[200:])]
    assert (tmp_path / "rotated.jsonl.1").read_bytes() == b"".join(expected[0])
    assert path.read_bytes() == b"".join(expected[1])
