"""The out-of-distribution flag on the real service: every answered row carries it."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

from stages.lib.artifacts import read_json
from tests.conftest import REPO_ROOT
from tests.integration.conftest import RunningServer

pytestmark = pytest.mark.integration

NON_DIGITS = {
    "blank": np.zeros(64),
    "all_16": np.full(64, 16.0),
    "uniform_noise": np.random.default_rng(0).uniform(0.0, 16.0, 64),
}


@pytest.fixture(scope="module")
def test_digits() -> np.ndarray:
    with np.load(REPO_ROOT / "data" / "prepared" / "test.npz") as data:
        return np.asarray(data["X"], dtype=np.float32)


def post(server: RunningServer, path: str, samples: np.ndarray) -> httpx.Response:
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        return http.post(path, json={"samples": np.asarray(samples).tolist()})


def test_non_digits_are_flagged_and_digits_pass_at_the_calibrated_rate(
    serve: Callable[..., RunningServer], test_digits: np.ndarray
) -> None:
    server = serve(workers=1)
    for name, image in NON_DIGITS.items():
        body = post(server, "/predict", image[None, :]).json()
        assert body["ood"] == [True], name
        assert body["ood_score"][0] > 1.0, name
    body = post(server, "/predict", test_digits).json()
    flags = np.asarray(body["ood"])
    scores = np.asarray(body["ood_score"])
    assert flags.shape == (len(test_digits),)
    np.testing.assert_array_equal(flags, scores > 1.0)
    # The pipeline measured the same rate on the same rows through the same ONNX file.
    expected = read_json(REPO_ROOT / "reports" / "ood.json")["false_positive"]["clean_test"]
    assert int(flags.sum()) == expected["flagged"]
    assert flags.mean() <= 0.02

    explained = post(server, "/explain", np.stack([NON_DIGITS["blank"], test_digits[0]])).json()
    assert [e["ood"] for e in explained["explanations"]] == [True, bool(flags[0])]
    assert explained["explanations"][0]["ood_score"] > 1.0

    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        metrics = http.get("/metrics").text
    flagged = [
        line for line in metrics.splitlines() if line.startswith("model_ood_flagged_rows_total")
    ]
    assert flagged, metrics
    assert float(flagged[0].split()[-1]) >= len(NON_DIGITS) + 1 + int(flags.sum())


def test_reject_policy_answers_422_only_for_requests_with_flagged_rows(
    serve: Callable[..., RunningServer], test_digits: np.ndarray
) -> None:
    server = serve({"DIGITS_OOD_POLICY": "reject"}, workers=1)
    clean = post(server, "/predict", test_digits[:5])
    assert clean.status_code == 200
    assert clean.json()["ood"] == [False] * 5
    mixed = post(server, "/predict", np.stack([test_digits[0], NON_DIGITS["blank"]]))
    assert mixed.status_code == 422
    error = mixed.json()
    assert error["reason"] == "out_of_distribution"
    assert error["status"] == 422
    assert "1" in error["message"]  # names the flagged row index
    assert post(server, "/explain", NON_DIGITS["all_16"][None, :]).status_code == 422
    request = {
        "inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]
    }
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        infer = http.post("/v2/models/digits-classifier/infer", json=request)
    assert infer.status_code == 422
    assert "do not look like digits" in infer.json()["error"]  # the OIP error format


def test_oip_declares_and_selects_the_ood_outputs(
    serve: Callable[..., RunningServer], test_digits: np.ndarray
) -> None:
    server = serve(workers=1)
    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    try:
        metadata = client.get_model_metadata("digits-classifier")
        outputs = {o["name"]: o["datatype"] for o in metadata["outputs"]}
        assert outputs["ood"] == "BOOL"
        assert outputs["ood_score"] == "FP32"
        X = np.stack([test_digits[0], NON_DIGITS["blank"]]).astype(np.float32)
        tensor = triton.InferInput("pixels", list(X.shape), "FP32")
        tensor.set_data_from_numpy(X, binary_data=True)
        wanted = [triton.InferRequestedOutput(name) for name in ("ood", "ood_score")]
        result = client.infer("digits-classifier", [tensor], outputs=wanted)
        flags = result.as_numpy("ood")
        assert flags is not None
        assert flags.tolist() == [False, True]
        assert result.as_numpy("label") is None
        scores = result.as_numpy("ood_score")
        assert scores is not None
        assert scores[1] > 1.0 >= scores[0]
    finally:
        client.close()
