"""A short soak: 10 s of mixed single-row, batch, explain and OIP requests on keep-alive
connections against the real 2-worker server. Correctness only (no timing assertion;
the 60 s version with p99 and RSS growth is ``make soak`` -> docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.integration.conftest import RunningServer, http_get
from tests.integration.load import Load, child_pids, percentile, rss_bytes

# serial: sustained wrk load; a request slowed past wrk's timeout by other tests' CPU load
# would count as a failure that is not the service's.
pytestmark = [pytest.mark.integration, pytest.mark.serial, pytest.mark.timeout(120)]
SECONDS = 10.0
CONNECTIONS = 6


def test_short_soak_has_no_errors(serve: Callable[..., RunningServer]) -> None:
    server = serve(workers=2)
    pids = [server.process.pid, *child_pids(server.process.pid)]
    rss_start = rss_bytes(pids)
    result = Load(server.port, connections=CONNECTIONS, seconds=SECONDS).wait()
    rss_end = rss_bytes(pids)
    print(
        f"soak {SECONDS:g}s: {result.answered} requests, statuses {dict(result.statuses)}, "
        f"errors {dict(result.errors)}, p99 {percentile(result.latencies, 0.99) * 1000:.2f} ms, "
        f"RSS {rss_start / 2**20:.1f} -> {rss_end / 2**20:.1f} MiB"
    )
    assert result.answered > 0
    assert result.server_errors() == 0, result.statuses
    assert set(result.statuses) == {200}, result.statuses
    assert result.failed == 0, (result.errors, result.truncated)
    assert http_get(f"{server.base_url}/health")[0] == 200
    assert child_pids(server.process.pid) == pids[1:], "a worker died or was respawned"
