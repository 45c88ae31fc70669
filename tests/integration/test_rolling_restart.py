"""A rolling restart behind a real load balancer loses no request (risk register R13).

Two real service instances (``python -m serving``, one granian worker each) on free loopback
ports behind a real HAProxy that health-checks ``/ready``; a bounded client sends a steady
stream of ``/predict`` requests through HAProxy. Each instance in turn gets SIGTERM, exits,
and a replacement starts on its port; HAProxy puts it back once it is ready.

With ``DIGITS_SHUTDOWN_DRAIN_SECONDS`` longer than HAProxy's time to notice (``FALL`` checks
``CHECK_MS`` apart) every request is answered 200. Without a drain (0, granian's own
SIGTERM handling) the instance stops accepting at once, before HAProxy has taken it out:
requests fail, which the second case asserts, so the first one means something.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from serving.schemas import EXAMPLE_FLAT
from tests.integration.conftest import (
    RunningServer,
    free_port,
    http_get,
    http_post,
    start_server,
    stop_server,
)
from tests.integration.haproxy import CHECK_MS, FALL, HAProxy
from tests.integration.load import Load, LoadResult

# serial: HAProxy's check timing against the drain must not depend on other tests' CPU use.
pytestmark = [pytest.mark.integration, pytest.mark.serial, pytest.mark.timeout(120)]
DRAIN_SECONDS = 2.0
CONNECTIONS = 4
PAUSE_SECONDS = 0.01  # per connection after each answer: a few hundred requests a second
BODIES = [("/predict", json.dumps({"samples": [EXAMPLE_FLAT]}).encode())]


def failures(result: LoadResult) -> int:
    """Requests without a complete 200 answer: connection errors, cut answers, any other status."""
    not_ok = sum(count for status, count in result.statuses.items() if status != 200)
    return result.failed + not_ok


def restart_each(
    proxy: HAProxy, servers: dict[str, RunningServer], env: dict[str, str], logs: Path
) -> list[str]:
    """SIGTERM each instance in turn, start its replacement on its port, wait until HAProxy
    routes to it again; what happened when, for the report."""
    timeline = []
    for generation, name in enumerate(list(servers), start=1):
        old = servers[name]
        signalled = time.perf_counter()
        old.process.send_signal(signal.SIGTERM)
        out = proxy.wait_for(name, "DOWN")
        assert old.process.wait(timeout=60) == 0
        exited = time.perf_counter() - signalled
        servers[name] = start_server(env, workers=1, log_dir=logs / str(generation), port=old.port)
        back = proxy.wait_for(name, "UP")
        timeline.append(
            f"{name}: out of rotation {out:.2f}s, exited {exited:.2f}s, back {back:.2f}s"
        )
        time.sleep(0.5)  # both instances serve before the next one goes
    return timeline


@pytest.mark.parametrize(
    ("drain", "loses_requests"), [(DRAIN_SECONDS, False), (0.0, True)], ids=["drain", "no-drain"]
)
def test_rolling_restart_behind_haproxy(tmp_path: Path, drain: float, loses_requests: bool) -> None:
    assert DRAIN_SECONDS > 2 * FALL * CHECK_MS / 1000  # the drain outlasts HAProxy's notice
    env = {"DIGITS_SHUTDOWN_DRAIN_SECONDS": str(drain)}
    logs = tmp_path / "logs"
    servers: dict[str, RunningServer] = {}
    proxy: HAProxy | None = None
    load: Load | None = None
    try:
        for name in ("a", "b"):
            servers[name] = start_server(env, workers=1, log_dir=logs / "0", port=free_port())
        proxy = HAProxy(tmp_path / "haproxy", free_port(), {n: s.port for n, s in servers.items()})
        for name in servers:
            proxy.wait_for(name, "UP")
        started = time.perf_counter()
        load = Load(proxy.port, CONNECTIONS, seconds=110, bodies=BODIES, pause=PAUSE_SECONDS)
        time.sleep(1.0)
        timeline = restart_each(proxy, servers, env, logs)
        time.sleep(1.0)
        result = load.stop()
        seconds = time.perf_counter() - started
    finally:
        if load is not None:
            load.stop()
        if proxy is not None:
            proxy.stop()
        for server in servers.values():
            stop_server(server)
    lost = failures(result)
    print(
        f"rolling restart, drain {drain:g}s: {result.answered + result.failed} requests in "
        f"{seconds:.1f}s, {lost} failed (statuses {dict(result.statuses)}, errors "
        f"{dict(result.errors)}); " + "; ".join(timeline)
    )
    assert result.answered > 1000
    if loses_requests:
        assert lost > 0
    else:
        assert lost == 0


def test_sigterm_flips_ready_at_once_and_serves_through_the_drain(tmp_path: Path) -> None:
    """The drain itself, on one instance: /ready 503 ``draining`` at once, /predict still 200
    until the drain is over, then a clean exit; SIGINT (Ctrl-C) does not wait."""
    drain = 3.0
    env = {"DIGITS_SHUTDOWN_DRAIN_SECONDS": str(drain)}
    server = start_server(env, workers=2, log_dir=tmp_path / "logs")
    interrupted = start_server(env, workers=1, log_dir=tmp_path / "logs")
    try:
        signalled = time.perf_counter()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        statuses = [http_get(f"{server.base_url}/ready") for _ in range(4)]  # both workers
        assert {status for status, _ in statuses} == {503}
        assert {json.loads(body)["reason"] for _, body in statuses} == {"draining"}
        assert http_get(f"{server.base_url}/v2/health/ready")[0] == 400  # OIP: not ready
        while time.perf_counter() - signalled < drain - 0.5:
            assert http_post(f"{server.base_url}/predict", BODIES[0][1])[0] == 200
            time.sleep(0.1)
        assert server.process.wait(timeout=60) == 0
        assert time.perf_counter() - signalled >= drain
        interrupted_at = time.perf_counter()
        interrupted.process.send_signal(signal.SIGINT)
        assert interrupted.process.wait(timeout=60) == 0
        assert time.perf_counter() - interrupted_at < drain
    finally:
        stop_server(server)
        stop_server(interrupted)
