"""/metrics of the real 2-worker server: counts add up across workers and promtool accepts it."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from serving.access.keys import add_key
from tests.integration.conftest import RunningServer

pytestmark = pytest.mark.integration
PROMTOOL = Path("/usr/bin/promtool")
FLAT = [3.0] * 64
REQUESTS = 60


def sample_value(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(key) == value for key, value in (labels or {}).items()):
            total += float(match.group(3))
    return total


def test_counters_add_up_across_workers(
    serve: Callable[..., RunningServer], tmp_path: Path
) -> None:
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    (multiproc / "counter_999999.db").write_bytes(b"stale data from an earlier run")
    server = serve({"PROMETHEUS_MULTIPROC_DIR": str(multiproc)}, workers=2)
    assert not (multiproc / "counter_999999.db").exists()
    # No keep-alive: every request opens a new connection, so both workers take requests.
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=server.base_url, timeout=10, limits=limits) as client:
        for _ in range(REQUESTS):
            assert client.post("/predict", json={"samples": [FLAT, FLAT]}).status_code == 200
        for _ in range(5):
            assert client.post("/predict", json={"samples": [[99.0] * 64]}).status_code == 400
        text = client.get("/metrics").text
    pids = {path.stem.split("_")[-1] for path in multiproc.glob("counter_*.db")}
    assert len(pids) >= 2, f"expected requests on both workers, files from {pids}"
    ok = {"route": "/predict", "method": "POST", "status": "200"}
    assert sample_value(text, "http_requests_total", ok) == REQUESTS
    assert sample_value(text, "http_request_duration_seconds_count", ok) == REQUESTS
    bad = {"route": "/predict", "method": "POST", "status": "400"}
    assert sample_value(text, "http_requests_total", bad) == 5
    assert sample_value(text, "model_validation_failures_total", {"reason": "out_of_range"}) == 5
    assert sample_value(text, "model_predicted_class_total") == 2 * REQUESTS
    assert sample_value(text, "model_rows_per_request_count") == REQUESTS
    assert sample_value(text, "model_rows_per_request_sum") == 2 * REQUESTS
    assert sample_value(text, "model_ready") == 1
    assert sample_value(text, "model_info") == 1
    in_flight = {"route": "/metrics", "method": "GET"}
    assert sample_value(text, "http_requests_in_progress", in_flight) == 1
    assert 'route="/predict"' in text
    assert "/predict?" not in text


@pytest.mark.skipif(not PROMTOOL.exists(), reason="promtool (Debian package prometheus) missing")
def test_exposition_passes_promtool(serve: Callable[..., RunningServer]) -> None:
    server = serve(workers=2)
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        client.post("/predict", json={"samples": [FLAT]})
        client.post("/explain", json={"samples": [FLAT]})
        client.post("/predict", json={"samples": []})
        client.get("/nope")
        text = client.get("/metrics").text
    result = subprocess.run(
        [str(PROMTOOL), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""
    assert result.stderr.strip() == ""


INVENTED_METHODS = 40


def test_invented_methods_share_one_bounded_label(
    serve: Callable[..., RunningServer], tmp_path: Path
) -> None:
    """A client-chosen method never becomes a label: each would be a new series per metric
    (and a bigger multiprocess file) for anyone who can reach the port, before auth."""
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    server = serve({"PROMETHEUS_MULTIPROC_DIR": str(multiproc)}, workers=1)
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        assert client.get("/health").status_code == 200
        baseline = client.get("/metrics").text
        for i in range(INVENTED_METHODS):
            method = f"XMETHOD{i:03d}" + "X" * 190
            assert client.request(method, "/health").status_code == 405
        text = client.get("/metrics").text
    labels = set(re.findall(r'method="([^"]*)"', text))
    assert not [label for label in labels if label.startswith("XMETHOD")]
    assert labels <= {"GET", "HEAD", "POST", "other"}, labels
    other = {"route": "unmatched", "method": "other", "status": "405"}
    assert sample_value(text, "http_requests_total", other) == INVENTED_METHODS
    # One series per metric for all of them: the scrape grows by a few lines, not per method.
    assert len(text) - len(baseline) < 4_000


def test_metrics_need_the_read_scope_by_default_when_auth_is_on(
    serve: Callable[..., RunningServer], tmp_path: Path
) -> None:
    """With DIGITS_AUTH on and DIGITS_METRICS_AUTH unset, /metrics is no longer public: it
    shows per-class prediction counts, auth failures and drift. It needs the read scope, and
    like every scoped route it counts against the client's rate limit."""
    keys = tmp_path / "keys.jsonl"
    reader = add_key(keys, "prometheus", ["read"])
    predictor = add_key(keys, "client", ["predict"])
    server = serve(
        {
            "DIGITS_AUTH": "api-key",
            "DIGITS_API_KEYS_FILE": str(keys),
            "DIGITS_RATE_LIMIT": "3/minute",
            "DIGITS_DOCS": "on",  # off by default with auth on; the document is read below
        },
        workers=1,
    )
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        anonymous = client.get("/metrics")
        assert anonymous.status_code == 401, anonymous.text
        assert anonymous.json()["reason"] == "missing_credentials", anonymous.text
        wrong_scope = client.get("/metrics", headers={"authorization": f"Bearer {predictor}"})
        assert wrong_scope.status_code == 403, wrong_scope.text
        scraper = {"authorization": f"Bearer {reader}"}
        statuses = [client.get("/metrics", headers=scraper).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429], statuses
        operation = client.get("/docs/openapi.json").json()["paths"]["/metrics"]["get"]
    assert "401" in operation["responses"], operation
