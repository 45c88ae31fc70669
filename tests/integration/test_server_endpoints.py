"""The real server (`python -m serving`, 2 workers): endpoints, errors and refusals over HTTP."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.lineage import REQUIRED_ARTIFACTS
from tests.conftest import REPO_ROOT
from tests.integration.conftest import RunningServer

pytestmark = pytest.mark.integration
FLAT = [0, 0, 5, 13, 9, 1, 0, 0] * 8
SERVED = REQUIRED_ARTIFACTS


@pytest.fixture
def server(serve: Callable[..., RunningServer]) -> RunningServer:
    return serve()


def test_endpoints(server: RunningServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        assert client.get("/health").json() == {"status": "ok"}
        ready = client.get("/ready").json()
        assert ready["status"] == "ready"
        version = ready["model_version"]
        predicted = client.post(
            "/predict", json={"samples": [FLAT, [FLAT[i : i + 8] for i in range(0, 64, 8)]]}
        )
        assert predicted.status_code == 200
        body = predicted.json()
        assert body["model_version"] == version
        assert body["labels"][0] == body["labels"][1]
        explained = client.post("/explain", json={"samples": [FLAT]})
        assert explained.status_code == 200
        # Exact contributions for a linear model, occlusion for any other (models/model.json).
        card = json.loads((REPO_ROOT / "models" / "model.json").read_text(encoding="utf-8"))
        linear = card["linear_explanation"] is not None
        assert explained.json()["method"] == ("linear_exact" if linear else "occlusion")
        lineage = client.get("/model").json()
        assert lineage["version"] == version
        assert lineage["stage"]["name"] == "train"
        assert client.get("/docs").status_code == 200
        assert client.get("/docs/openapi.json").json()["openapi"].startswith("3.")
        assert client.get("/static/swagger-ui/swagger-ui-bundle.js").status_code == 200
        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        echoed = client.get("/health", headers={"X-Request-ID": "trace-42"})
        assert echoed.headers["x-client-request-id"] == "trace-42"
        rid = echoed.headers["x-request-id"]
        assert rid != "trace-42"
        assert len(rid) == 32
        refused = client.post("/predict", content=b"{", headers={"X-Request-ID": "trace-42"})
        assert refused.json()["request_id"] == refused.headers["x-request-id"] != "trace-42"
        assert refused.headers["x-client-request-id"] == "trace-42"
    # The access log line (written just after the answer) carries both ids.
    deadline = time.monotonic() + 10
    while not any(
        entry.get("msg") == "request" and entry.get("request_id") == rid
        for entry in log_entries(server)
    ):
        assert time.monotonic() < deadline, server.log_text()
        time.sleep(0.05)
    (logged,) = [entry for entry in log_entries(server) if entry.get("request_id") == rid]
    assert logged["client_request_id"] == "trace-42"
    assert logged["route"] == "/health"


def log_entries(server: RunningServer) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.log_text().splitlines() if line.startswith("{")]


def test_client_errors_never_5xx(server: RunningServer) -> None:
    cases: list[tuple[bytes, dict[str, str], int]] = [
        (b"{", {"content-type": "application/json"}, 400),
        (b'{"samples": [[1, 2]]}', {"content-type": "application/json"}, 400),
        (b'{"samples": [[1e999]]}', {"content-type": "application/json"}, 400),
        (b'{"samples": []}', {"content-type": "application/json"}, 400),
        (b'{"samples": [[1]]}', {"content-type": "text/plain"}, 415),
        (
            json.dumps({"samples": [FLAT] * 1001}).encode(),
            {"content-type": "application/json"},
            413,
        ),
        (b"[" * 5_000_000, {"content-type": "application/json"}, 413),
    ]
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        for body, headers, status in cases:
            answer = client.post("/predict", content=body, headers=headers)
            assert answer.status_code == status, (body[:40], answer.text)
            error = answer.json()
            assert error["status"] == status
            assert error["message"]
    levels = [
        json.loads(line).get("level")
        for line in server.log_text().splitlines()
        if line.startswith("{")
    ]
    assert "error" not in levels


def test_refuses_a_tampered_model_and_stays_up(
    serve: Callable[..., RunningServer], tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy2(REPO_ROOT / "dvc.lock", project / "dvc.lock")
    for relative in SERVED:
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / relative, project / relative)
    with (project / "models/model.onnx").open("ab") as handle:
        handle.write(b"tampered")
    server = serve({"DIGITS_LOCK_FILE": str(project / "dvc.lock")}, workers=1, expect_ready=False)
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503
        reason: dict[str, Any] = ready.json()
        assert reason["reason"] == "hash_mismatch"
        assert "model.onnx" not in reason["message"]  # the detail is logged, not answered
        assert client.post("/predict", json={"samples": [FLAT]}).status_code == 503
        assert client.get("/health").status_code == 200
        assert "model_ready 0.0" in client.get("/metrics").text
    assert "model.onnx" in server.log_text()
    assert server.process.poll() is None
    assert "does not match dvc.lock" in server.log_text()
