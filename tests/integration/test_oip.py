"""Triton's own HTTP client (tritonclient.http) against the real server's OIP v2 endpoints."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.conftest import REPO_ROOT
from tests.integration.conftest import RunningServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    with np.load(REPO_ROOT / "data" / "prepared" / "test.npz") as data:
        return np.asarray(data["X"][:64], dtype=np.float32)


@pytest.fixture
def server(serve: Callable[..., RunningServer]) -> RunningServer:
    return serve(workers=2)


@pytest.fixture
def client(server: RunningServer) -> Iterator[triton.InferenceServerClient]:
    connection = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    yield connection
    connection.close()


def pixels(X: np.ndarray, binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput("pixels", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X, binary_data=binary)
    return tensor


def predict(server: RunningServer, X: np.ndarray) -> dict[str, object]:
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        response = http.post("/predict", json={"samples": X.tolist()})
        assert response.status_code == 200
        body: dict[str, object] = response.json()
        return body


def test_health_and_metadata(server: RunningServer, client: triton.InferenceServerClient) -> None:
    expected = predict(server, np.zeros((1, 64), dtype=np.float32))
    version = str(expected["model_version"])
    assert client.is_server_live()
    assert client.is_server_ready()
    server_meta = client.get_server_metadata()
    assert "binary_tensor_data" in server_meta["extensions"]
    model = client.get_model_metadata("digits-classifier")
    assert model["versions"] == [version]
    assert model["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]
    assert [(o["name"], o["datatype"], o["shape"]) for o in model["outputs"]] == [
        ("label", "INT64", [-1]),
        ("probabilities", "FP32", [-1, 10]),
        ("ood", "BOOL", [-1]),
        ("ood_score", "FP32", [-1]),
    ]
    assert client.is_model_ready("digits-classifier")
    assert client.is_model_ready("digits-classifier", model_version=version)
    assert not client.is_model_ready("digits-classifier", model_version="000000000000")
    assert not client.is_model_ready("another-model")
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.get_model_metadata("another-model")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_batch_agrees_with_predict(
    server: RunningServer, client: triton.InferenceServerClient, digits: np.ndarray, binary: bool
) -> None:
    expected = predict(server, digits)
    outputs = [
        triton.InferRequestedOutput("label", binary_data=binary),
        triton.InferRequestedOutput("probabilities", binary_data=binary),
    ]
    result = client.infer(
        "digits-classifier", [pixels(digits, binary)], outputs=outputs, request_id="batch-1"
    )
    response = result.get_response()
    assert response["id"] == "batch-1"
    assert response["model_version"] == expected["model_version"]
    labels = result.as_numpy("label")
    probabilities = result.as_numpy("probabilities")
    assert labels is not None
    assert probabilities is not None
    assert labels.dtype == np.int64
    assert labels.tolist() == expected["labels"]
    assert probabilities.shape == (64, 10)
    np.testing.assert_allclose(probabilities, np.asarray(expected["probabilities"]), atol=1e-6)


def test_infer_with_client_defaults_returns_every_output(
    server: RunningServer, client: triton.InferenceServerClient, digits: np.ndarray
) -> None:
    """No outputs named: tritonclient asks for binary_data_output; 8x8 input shape."""
    grids = digits[:5].reshape(5, 8, 8)
    tensor = triton.InferInput("pixels", [5, 8, 8], "FP32")
    tensor.set_data_from_numpy(grids)
    result = client.infer("digits-classifier", [tensor])
    labels = result.as_numpy("label")
    assert labels is not None
    assert labels.tolist() == predict(server, digits[:5])["labels"]
    assert result.as_numpy("probabilities") is not None


def test_infer_outputs_subset_explicit_version_and_wrong_version(
    server: RunningServer, client: triton.InferenceServerClient, digits: np.ndarray
) -> None:
    version = str(predict(server, digits[:1])["model_version"])
    result = client.infer(
        "digits-classifier",
        [pixels(digits[:3])],
        model_version=version,
        outputs=[triton.InferRequestedOutput("probabilities")],
    )
    assert [o["name"] for o in result.get_response()["outputs"]] == ["probabilities"]
    assert result.as_numpy("label") is None
    probabilities = result.as_numpy("probabilities")
    assert probabilities is not None
    assert probabilities.shape == (3, 10)
    with pytest.raises(InferenceServerException, match="unknown version") as wrong:
        client.infer("digits-classifier", [pixels(digits[:3])], model_version="ffffffffffff")
    assert wrong.value.status() == "404"


def test_invalid_pixels_are_a_400_error_for_the_client(
    client: triton.InferenceServerClient, digits: np.ndarray
) -> None:
    bad = digits[:2].copy()
    bad[1, 7] = np.nan
    with pytest.raises(InferenceServerException, match="finite") as error:
        client.infer("digits-classifier", [pixels(bad)])
    assert error.value.status() == "400"
    wrong_shape = triton.InferInput("pixels", [2, 32], "FP32")
    wrong_shape.set_data_from_numpy(np.zeros((2, 32), dtype=np.float32))
    with pytest.raises(InferenceServerException, match="shape must be"):
        client.infer("digits-classifier", [wrong_shape])


def test_oip_routes_appear_as_templates_in_metrics(
    server: RunningServer, client: triton.InferenceServerClient, digits: np.ndarray
) -> None:
    for _ in range(4):  # reach both workers
        client.infer("digits-classifier", [pixels(digits[:2])])
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        text = http.get("/metrics").text
    counts = [
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("http_requests_total{")
        and 'route="/v2/models/{name}/infer"' in line
        and 'status="200"' in line
    ]
    assert sum(counts) == 4
    assert "/v2/models/digits-classifier/infer" not in text
