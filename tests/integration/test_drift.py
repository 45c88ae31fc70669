"""The real server (1 worker) scores clean test digits low and shifted/inverted digits high."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import REPO_ROOT
from tests.integration.conftest import RunningServer

pytestmark = pytest.mark.integration
WINDOW = 400
MIN_ROWS = 200
THRESHOLD = 0.2
BATCH = 50


@pytest.fixture(scope="module")
def test_digits() -> np.ndarray:
    with np.load(REPO_ROOT / "data" / "prepared" / "test.npz") as data:
        return np.asarray(data["X"], dtype=np.float32)


@pytest.fixture
def server(serve: Callable[..., RunningServer]) -> RunningServer:
    return serve(
        {
            "DIGITS_DRIFT_WINDOW": str(WINDOW),
            "DIGITS_DRIFT_MIN_ROWS": str(MIN_ROWS),
            "DIGITS_DRIFT_PSI_THRESHOLD": str(THRESHOLD),
        },
        workers=1,
    )


def send(http: httpx.Client, X: np.ndarray) -> None:
    for start in range(0, len(X), BATCH):
        response = http.post("/predict", json={"samples": X[start : start + BATCH].tolist()})
        assert response.status_code == 200


def gauge(http: httpx.Client, name: str) -> float:
    values = [
        float(line.split()[-1])
        for line in http.get("/metrics").text.splitlines()
        if line.startswith(name + "{")
    ]
    assert len(values) == 1, values  # one worker, one pid series
    return values[0]


def drift(http: httpx.Client) -> dict[str, Any]:
    response = http.get("/drift")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_clean_then_shifted_inputs(server: RunningServer, test_digits: np.ndarray) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        send(http, test_digits[:150])
        early = drift(http)
        assert not early["ready"]
        assert early["score"] == 0.0
        assert gauge(http, "input_drift_window_fill") == pytest.approx(150 / WINDOW)

        send(http, test_digits[150:])
        clean = drift(http)
        assert clean["ready"]
        assert clean["window_rows"] == WINDOW
        assert clean["rows_seen"] == len(test_digits)
        assert 0.0 < clean["score"] < THRESHOLD
        assert gauge(http, "input_drift_score") == pytest.approx(clean["score"])
        assert gauge(http, "input_drift_score") < THRESHOLD

        shifted = np.roll(test_digits.reshape(-1, 8, 8), 1, axis=2).reshape(-1, 64)
        send(http, shifted[:WINDOW])
        moved = drift(http)
        assert moved["score"] > THRESHOLD
        assert moved["features_over_threshold"] > 0
        assert gauge(http, "input_drift_score") == pytest.approx(moved["score"])
        assert gauge(http, "input_drift_psi_max") == pytest.approx(moved["psi_max"])


def test_inverted_inputs_cross_the_threshold(
    server: RunningServer, test_digits: np.ndarray
) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        send(http, test_digits[:WINDOW])
        clean_score = gauge(http, "input_drift_score")
        assert clean_score < THRESHOLD
        send(http, 16 - test_digits[:WINDOW])
        inverted = drift(http)
        assert inverted["score"] > THRESHOLD
        assert inverted["score"] > 10 * clean_score
        assert gauge(http, "input_drift_score") > THRESHOLD
        assert (
            gauge(http, "input_drift_features_over_threshold")
            == inverted["features_over_threshold"]
        )
