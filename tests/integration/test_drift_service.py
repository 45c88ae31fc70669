"""Drift monitoring inside the service: verified reference, GET /drift and the gauges."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from litestar.testing import TestClient

from serving.app import create_app
from serving.lineage import REFERENCE_STATS_JSON, FileSnapshot, load_verified_file
from serving.settings import Settings, SettingsError, load_settings

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]
SERVED = (
    "dvc.lock",
    "models/model.onnx",
    "models/model.json",
    "models/ood.onnx",
    "models/ood.json",
    "reports/metrics.json",
    "reports/feature_importance.json",
    REFERENCE_STATS_JSON,
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for relative in SERVED:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / relative, tmp_path / relative)
    return tmp_path


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    with np.load(REPO_ROOT / "data" / "prepared" / "test.npz") as data:
        return np.asarray(data["X"], dtype=np.float32)


def client_for(project: Path, **settings: Any) -> TestClient[Any]:
    config = Settings(lock_file_path=str(project / "dvc.lock"), **settings)
    return TestClient(app=create_app(config))


def metric(text: str, name: str) -> float:
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + "{")]
    assert values, name
    return max(values)


def test_reference_stats_are_verified_against_the_lock(project: Path) -> None:
    artifact, data = load_verified_file(
        FileSnapshot.read(project / "dvc.lock", project / "models"), REFERENCE_STATS_JSON
    )
    assert artifact.lock_path == REFERENCE_STATS_JSON
    assert data == (REPO_ROOT / REFERENCE_STATS_JSON).read_bytes()


@pytest.mark.parametrize(
    ("damage", "reason"), [("tamper", "hash_mismatch"), ("delete", "artifact_missing")]
)
def test_missing_or_tampered_reference_makes_the_service_not_ready(
    project: Path, damage: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = project / REFERENCE_STATS_JSON
    if damage == "tamper":
        path.write_text(path.read_text().replace("1347", "1346", 1))
    else:
        path.unlink()
    with client_for(project) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["reason"] == reason
        # The public answer names the reason only; paths and md5s go to the log.
        message = ready.json()["message"]
        assert reason in message
        assert str(project) not in message
        assert "reference_stats.json" not in message
        assert not re.search(r"[0-9a-f]{32}", message)
        refusals = [r.getMessage() for r in caplog.records if "refusing to serve" in r.getMessage()]
        assert refusals
        assert "reference_stats.json" in refusals[0]
        assert client.get("/drift").status_code == 503
        assert client.get("/v2/health/ready").status_code == 400


def test_drift_endpoint_and_gauges_follow_the_window(project: Path, digits: np.ndarray) -> None:
    with client_for(project, drift_window=300, drift_min_rows=100) as client:
        empty = client.get("/drift").json()
        assert (empty["ready"], empty["window_rows"], empty["score"]) == (False, 0, 0.0)
        client.post("/predict", json={"samples": digits[:50].tolist()})
        partial = client.get("/drift").json()
        assert (partial["ready"], partial["window_rows"], partial["score"]) == (False, 50, 0.0)
        client.post("/predict", json={"samples": digits[50:300].tolist()})
        clean = client.get("/drift").json()
        assert clean["ready"]
        assert clean["window_fill"] == 1.0
        assert clean["score"] < clean["psi_threshold"]
        text = client.get("/metrics").text
        assert metric(text, "input_drift_score") == pytest.approx(clean["score"])
        assert metric(text, "input_drift_window_fill") == 1.0
        inverted = (16 - digits[:300]).reshape(-1, 8, 8)
        body = {
            "inputs": [
                {
                    "name": "pixels",
                    "shape": [300, 8, 8],
                    "datatype": "FP32",
                    "data": inverted.tolist(),
                }
            ]
        }
        name = client.get("/model").json()["name"]
        assert client.post(f"/v2/models/{name}/infer", json=body).status_code == 200
        drifted = client.get("/drift").json()
        assert drifted["score"] > 1.0
        assert drifted["features_over_threshold"] > 32
        assert len(drifted["top_features"]) == 5
        text = client.get("/metrics").text
        assert metric(text, "input_drift_score") == pytest.approx(drifted["score"])
        assert metric(text, "input_drift_psi_max") == pytest.approx(drifted["psi_max"])
        assert (
            metric(text, "input_drift_features_over_threshold")
            == drifted["features_over_threshold"]
        )
        assert 'input_drift_score{pid="' in text


def test_rejected_requests_do_not_enter_the_window(project: Path) -> None:
    with client_for(project) as client:
        client.post("/predict", json={"samples": [[17.0] * 64]})
        assert client.get("/drift").json()["rows_seen"] == 0


def test_drift_settings_come_from_the_environment() -> None:
    settings = load_settings(
        {
            "DIGITS_DRIFT_WINDOW": "500",
            "DIGITS_DRIFT_MIN_ROWS": "800",
            "DIGITS_DRIFT_PSI_THRESHOLD": "0.3",
        }
    )
    assert (settings.drift_window, settings.drift_min_rows, settings.drift_psi_threshold) == (
        500,
        800,
        0.3,
    )
    defaults = load_settings({})
    assert (defaults.drift_window, defaults.drift_min_rows, defaults.drift_psi_threshold) == (
        2000,
        200,
        0.2,
    )
    with pytest.raises(SettingsError, match="DIGITS_DRIFT_WINDOW"):
        load_settings({"DIGITS_DRIFT_WINDOW": "0"})
