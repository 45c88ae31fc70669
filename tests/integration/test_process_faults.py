"""Fault injection against the real server's processes: a killed worker, SIGTERM under load,
and the Prometheus multiprocess directory across restarts and kills. (Artifact and lock
faults: tests/integration/test_artifact_faults.py.)
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.mmap_dict import MmapedDict

from serving.settings import Settings
from tests.integration.conftest import RunningServer, http_get, http_post
from tests.integration.load import Load, child_pids
from tests.integration.test_server_metrics import sample_value

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
GOOD = json.dumps({"samples": [[float(i % 17) for i in range(64)]]}).encode()
RESPAWN_TIMEOUT_SECONDS = 30.0


def live_gauge_value(directory: Path, pid: int, name: str, route: str) -> float:
    """A worker's value of a live gauge, read straight from its multiprocess file."""
    path = directory / f"gauge_livesum_{pid}.db"
    if not path.exists():
        return 0.0
    total = 0.0
    mmap = MmapedDict(str(path), read_mode=True)  # type: ignore[no-untyped-call]
    try:
        for key, value, _ in mmap.read_all_values():  # type: ignore[no-untyped-call]
            _, sample, labels, *_ = json.loads(key)
            if sample == name and labels.get("route") == route:
                total += value
    finally:
        mmap.close()  # type: ignore[no-untyped-call]
    return total


def stalled_requests(port: int, count: int) -> list[socket.socket]:
    """Connections whose /predict body never completes (each holds an in-progress slot)."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100000\r\n\r\n{"samples":'
        )
        sockets.append(sock)
    return sockets


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def model_ready_lines(server: RunningServer) -> int:
    """How many workers logged "model ready" so far (JSON log lines)."""
    return sum(
        1
        for line in server.log_text().splitlines()
        if line.startswith("{") and json.loads(line).get("msg") == "model ready"
    )


def test_sigkilled_worker_is_respawned_and_its_gauges_dropped(
    serve: Callable[..., RunningServer], tmp_path: Path
) -> None:
    multiproc = tmp_path / "prom"
    server = serve(
        {"PROMETHEUS_MULTIPROC_DIR": str(multiproc), "DIGITS_BODY_READ_TIMEOUT": "120"},
        workers=2,
    )
    workers = child_pids(server.process.pid)
    assert len(workers) == 2
    stalled = stalled_requests(server.port, 8)
    in_progress = "http_requests_in_progress"

    def all_stalled_counted() -> bool:
        return (
            sum(live_gauge_value(multiproc, pid, in_progress, "/predict") for pid in workers) == 8
        )

    wait_for(all_stalled_counted, 10, "8 in-progress /predict requests")
    victim = max(workers, key=lambda pid: live_gauge_value(multiproc, pid, in_progress, "/predict"))
    victim_in_flight = live_gauge_value(multiproc, victim, in_progress, "/predict")
    assert victim_in_flight > 0

    connections = 6
    load = Load(server.port, connections=connections, seconds=60)
    time.sleep(1.5)
    answered_before = load.result.answered
    os.kill(victim, signal.SIGKILL)
    wait_for(
        lambda: (
            victim not in child_pids(server.process.pid)
            and len(child_pids(server.process.pid)) == 2
        ),
        RESPAWN_TIMEOUT_SECONDS,
        "granian to respawn the killed worker",
    )
    survivor_and_new = child_pids(server.process.pid)
    new_worker = next(pid for pid in survivor_and_new if pid not in workers)
    wait_for(
        lambda: model_ready_lines(server) >= 3,
        RESPAWN_TIMEOUT_SECONDS,
        "the respawned worker to load the model",
    )
    time.sleep(1.0)
    result = load.stop()
    print(
        f"SIGKILL under load: {result.answered} answered ({answered_before} before the kill), "
        f"statuses {dict(result.statuses)}, connection failures {dict(result.errors)}, "
        f"truncated {result.truncated}, victim had {victim_in_flight:g} stalled in flight"
    )
    assert result.server_errors() == 0, result.statuses
    assert set(result.statuses) == {200}, result.statuses
    # Only connections that were on the killed worker can fail, each at most once.
    assert result.failed <= connections, result.errors
    assert result.answered > answered_before

    for sock in stalled:
        sock.close()
    # Served again, by both workers; the dead worker's live gauges are gone.
    for _ in range(20):
        assert http_post(f"{server.base_url}/predict", GOOD)[0] == 200
    status, body = http_get(f"{server.base_url}/metrics")
    assert status == 200
    text = body.decode()
    wait_for(
        lambda: (
            sample_value(
                http_get(f"{server.base_url}/metrics")[1].decode(),
                in_progress,
                {"route": "/predict"},
            )
            == 0
        ),
        15,
        "in-progress /predict to drop to 0 (no stale series of the killed worker)",
    )
    assert sample_value(text, "model_ready") == 1
    assert not list(multiproc.glob(f"gauge_live*_{victim}.db"))
    assert f'pid="{victim}"' not in text
    assert f'pid="{new_worker}"' in text
    # Counters of the dead worker are kept (totals never go backwards).
    assert (multiproc / f"counter_{victim}.db").exists()


def test_sigterm_under_load_drains_and_refuses_cleanly(
    serve: Callable[..., RunningServer],
) -> None:
    server = serve(workers=2)
    connections = 4
    load = Load(server.port, connections=connections, seconds=60, keep_alive=False)
    time.sleep(1.5)
    answered_before_term = load.result.answered
    # A large request in flight when SIGTERM arrives: /explain at its row limit (the
    # default DIGITS_EXPLAIN_MAX_ROWS), 65 model runs a row.
    rows = Settings().explain_max_rows
    big = json.dumps({"samples": [[float(i % 17) for i in range(64)]] * rows}).encode()
    head = (
        "POST /explain HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(big)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + big[:1000])
        time.sleep(0.2)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        sock.sendall(big[1000:])
        data = b""
        while chunk := sock.recv(1 << 20):
            data += chunk
    exit_code = server.process.wait(timeout=60)
    result = load.stop()
    print(
        f"SIGTERM under load: {result.answered} answered ({answered_before_term} before), "
        f"statuses {dict(result.statuses)}, errors {dict(result.errors)}, "
        f"truncated {result.truncated}, exit code {exit_code}"
    )
    assert exit_code == 0
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    assert len(json.loads(data.partition(b"\r\n\r\n")[2])["explanations"]) == rows
    assert result.answered > answered_before_term
    assert set(result.statuses) == {200}, result.statuses
    assert result.truncated == 0
    # After the listener closed, new connections are refused. A connection the kernel had
    # queued but the server never accepted is reset before any response byte (never
    # mid-response: truncated is 0 above); at most one per client connection can race so.
    reset_before_response = {"ConnectionResetError", "BrokenPipeError", "RemoteDisconnected"}
    assert set(result.errors) <= {"ConnectionRefusedError"} | reset_before_response, result.errors
    assert sum(result.errors[name] for name in reset_before_response) <= connections
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()


def series_pids(text: str) -> set[str]:
    return set(re.findall(r'pid="(\d+)"', text))


def test_multiproc_dir_is_reset_on_restart(
    serve: Callable[..., RunningServer], tmp_path: Path
) -> None:
    multiproc = tmp_path / "prom"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    first = serve(env, workers=2)
    first_workers = child_pids(first.process.pid)
    for _ in range(25):
        assert http_post(f"{first.base_url}/predict", GOOD)[0] == 200
    text = http_get(f"{first.base_url}/metrics")[1].decode()
    ok = {"route": "/predict", "method": "POST", "status": "200"}
    assert sample_value(text, "http_requests_total", ok) == 25
    assert series_pids(text) == {str(pid) for pid in first_workers}
    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(timeout=30) == 0

    second = serve(env, workers=2)
    second_workers = child_pids(second.process.pid)
    text = http_get(f"{second.base_url}/metrics")[1].decode()
    assert sample_value(text, "http_requests_total", ok) == 0
    assert sample_value(text, "model_predicted_class_total") == 0
    assert sample_value(text, "model_ready") == 1
    assert sample_value(text, "http_requests_in_progress", {"route": "/metrics"}) == 1
    assert series_pids(text) == {str(pid) for pid in second_workers}
    file_pids = {int(path.stem.rpartition("_")[2]) for path in multiproc.glob("*.db")}
    assert file_pids <= set(second_workers), f"stale files of {file_pids - set(second_workers)}"
    assert http_post(f"{second.base_url}/predict", GOOD)[0] == 200
    text = http_get(f"{second.base_url}/metrics")[1].decode()
    assert sample_value(text, "http_requests_total", ok) == 1
