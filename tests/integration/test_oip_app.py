"""Open Inference Protocol (KServe v2) REST endpoints over Litestar's TestClient."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from litestar.testing import TestClient

from serving.app import create_app
from serving.http.dispatch import route_finder
from serving.settings import Settings
from tests.integration.asgi import service_client

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]
MAX_ROWS = 50


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient[Any]]:
    with service_client(max_rows=MAX_ROWS) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def model(client: TestClient[Any]) -> tuple[str, str]:
    body = client.get("/model").json()
    return body["name"], body["version"]


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    with np.load(REPO_ROOT / "data" / "prepared" / "test.npz") as data:
        return np.asarray(data["X"][:20], dtype=np.float32)


def infer_path(model: tuple[str, str], version: str | None = None) -> str:
    name = model[0]
    return (
        f"/v2/models/{name}/infer"
        if version is None
        else (f"/v2/models/{name}/versions/{version}/infer")
    )


def pixels_input(data: Any, shape: list[int], datatype: str = "FP32") -> dict[str, Any]:
    return {"name": "pixels", "shape": shape, "datatype": datatype, "data": data}


def predict_labels(client: TestClient[Any], X: np.ndarray) -> list[int]:
    response = client.post("/predict", json={"samples": X.tolist()})
    assert response.status_code == 200
    labels: list[int] = response.json()["labels"]
    return labels


def test_health_endpoints_answer_with_the_status_code_alone(client: TestClient[Any]) -> None:
    for path in ("/v2/health/live", "/v2/health/ready"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.content == b""


def test_server_metadata(client: TestClient[Any]) -> None:
    response = client.get("/v2")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"name", "version", "extensions"}
    assert "binary_tensor_data" in body["extensions"]


def test_model_metadata_lists_input_and_every_output(
    client: TestClient[Any], model: tuple[str, str]
) -> None:
    name, version = model
    for path in (f"/v2/models/{name}", f"/v2/models/{name}/versions/{version}"):
        body = client.get(path).json()
        assert body["name"] == name
        assert body["versions"] == [version]
        assert body["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]
        assert body["outputs"] == [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
            {"name": "ood", "datatype": "BOOL", "shape": [-1]},
            {"name": "ood_score", "datatype": "FP32", "shape": [-1]},
        ]


def test_model_ready_and_unknown_model_or_version(
    client: TestClient[Any], model: tuple[str, str]
) -> None:
    name, version = model
    assert client.get(f"/v2/models/{name}/ready").status_code == 200
    assert client.get(f"/v2/models/{name}/versions/{version}/ready").status_code == 200
    assert client.get("/v2/models/other/ready").status_code == 404
    assert client.get(f"/v2/models/{name}/versions/000000000000/ready").status_code == 404
    for path in ("/v2/models/other", f"/v2/models/{name}/versions/000000000000"):
        response = client.get(path)
        assert response.status_code == 404
        assert set(response.json()) == {"error"}


def test_infer_matches_predict_and_echoes_the_id(
    client: TestClient[Any], model: tuple[str, str], digits: np.ndarray
) -> None:
    request = {"id": "req-7", "inputs": [pixels_input(digits.ravel().tolist(), [20, 64])]}
    response = client.post(infer_path(model), json=request)
    assert response.status_code == 200
    body = response.json()
    assert body["model_name"] == model[0]
    assert body["model_version"] == model[1]
    assert body["id"] == "req-7"
    outputs = {output["name"]: output for output in body["outputs"]}
    assert outputs["label"]["datatype"] == "INT64"
    assert outputs["label"]["shape"] == [20]
    assert outputs["label"]["data"] == predict_labels(client, digits)
    probabilities = outputs["probabilities"]
    assert (probabilities["datatype"], probabilities["shape"]) == ("FP32", [20, 10])
    assert np.allclose(np.reshape(probabilities["data"], (20, 10)).sum(axis=1), 1, atol=1e-5)


@pytest.mark.parametrize(
    "datatype",
    ["FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"],
)
@pytest.mark.parametrize("nested", [False, True])
def test_infer_accepts_numeric_datatypes_flat_or_nested(
    client: TestClient[Any],
    model: tuple[str, str],
    digits: np.ndarray,
    datatype: str,
    nested: bool,
) -> None:
    X = digits[:4].astype(np.int64)
    data = X.reshape(4, 8, 8).tolist() if nested else X.ravel().tolist()
    shape = [4, 8, 8] if nested else [4, 64]
    response = client.post(
        infer_path(model), json={"inputs": [pixels_input(data, shape, datatype)]}
    )
    assert response.status_code == 200, response.text
    label = next(o for o in response.json()["outputs"] if o["name"] == "label")
    assert label["data"] == predict_labels(client, X.astype(np.float32))


def test_infer_honours_an_outputs_subset_and_the_version(
    client: TestClient[Any], model: tuple[str, str], digits: np.ndarray
) -> None:
    request = {
        "inputs": [pixels_input(digits[:2].ravel().tolist(), [2, 64])],
        "outputs": [{"name": "probabilities"}],
    }
    response = client.post(infer_path(model, model[1]), json=request)
    assert response.status_code == 200
    outputs = response.json()["outputs"]
    assert [output["name"] for output in outputs] == ["probabilities"]
    assert "id" not in response.json()


def test_binary_tensor_extension_in_and_out(
    client: TestClient[Any], model: tuple[str, str], digits: np.ndarray
) -> None:
    X = digits[:3]
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "pixels",
                    "shape": [3, 64],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": X.nbytes},
                }
            ],
            "outputs": [
                {"name": "label", "parameters": {"binary_data": True}},
                {"name": "probabilities", "parameters": {"binary_data": False}},
            ],
        }
    ).encode()
    response = client.post(
        infer_path(model),
        content=header + X.astype("<f4").tobytes(),
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream",
        },
    )
    assert response.status_code == 200, response.text
    length = int(response.headers["Inference-Header-Content-Length"])
    meta = json.loads(response.content[:length])
    label, probabilities = meta["outputs"]
    assert label["parameters"] == {"binary_data_size": 24}
    assert "data" not in label
    labels = np.frombuffer(response.content[length:], dtype="<i8")
    assert labels.tolist() == predict_labels(client, X)
    assert len(probabilities["data"]) == 30


def test_binary_data_output_applies_to_all_outputs(
    client: TestClient[Any], model: tuple[str, str], digits: np.ndarray
) -> None:
    request = {
        "inputs": [pixels_input(digits[:2].ravel().tolist(), [2, 64])],
        "parameters": {"binary_data_output": True},
    }
    response = client.post(infer_path(model), json=request)
    assert response.status_code == 200
    length = int(response.headers["Inference-Header-Content-Length"])
    sizes = [
        o["parameters"]["binary_data_size"]
        for o in json.loads(response.content[:length])["outputs"]
    ]
    assert sizes == [2 * 8, 2 * 10 * 4, 2 * 1, 2 * 4]  # INT64, FP32[10], BOOL, FP32
    assert len(response.content) == length + sum(sizes)


def _error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    message: str = body["error"]
    assert message
    return message


FLAT = [0.0] * 64


@pytest.mark.parametrize(
    ("request_body", "fragment"),
    [
        ({"inputs": [pixels_input(FLAT, [2, 64])]}, "holds 128 values, data has 64"),
        ({"inputs": [pixels_input(FLAT, [1, 63])]}, "shape must be"),
        ({"inputs": [pixels_input(FLAT, [64])]}, "shape must be"),
        ({"inputs": [pixels_input(FLAT, [1, 64], "BYTES")]}, "not supported"),
        ({"inputs": [pixels_input(FLAT, [1, 64], "FP16")]}, "not supported"),
        ({"inputs": [pixels_input([0.5] * 64, [1, 64], "INT32")]}, "only integers"),
        ({"inputs": [pixels_input(["1"] * 64, [1, 64])]}, "only numbers"),
        ({"inputs": [pixels_input([True] * 64, [1, 64])]}, "only numbers"),
        ({"inputs": [pixels_input([[0.0] * 64, [0.0] * 63], [2, 64])]}, "ragged"),
        ({"inputs": [pixels_input([17.0, *FLAT[1:]], [1, 64])]}, "0..16"),
        ({"inputs": [pixels_input([-1] + [0] * 63, [1, 64], "INT8")]}, "0..16"),
        ({"inputs": [pixels_input([1e39, *FLAT[1:]], [1, 64])]}, "0..16"),
        ({"inputs": [pixels_input(FLAT, [0, 64])]}, "at least 1 sample"),
        ({"inputs": [pixels_input(FLAT * 51, [51, 64])]}, f"limit of {MAX_ROWS} samples"),
        ({"inputs": [{**pixels_input(FLAT, [1, 64]), "name": "image"}]}, "named 'pixels'"),
        ({"inputs": []}, "named 'pixels'"),
        (
            {"inputs": [pixels_input(FLAT, [1, 64])], "outputs": [{"name": "logits"}]},
            "unknown output",
        ),
        (
            {
                "inputs": [pixels_input(FLAT, [1, 64])],
                "outputs": [{"name": "label", "parameters": {"class_count": 3}}],
            },
            "not supported",
        ),
        ({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32"}]}, "data is missing"),
        ({"inputs": [pixels_input(FLAT, [1, 64])], "extra": 1}, "invalid inference request"),
        ({"inputs": [pixels_input(FLAT, [1, -64])]}, "invalid inference request"),
    ],
)
def test_infer_errors_are_400_with_an_error_object(
    client: TestClient[Any], model: tuple[str, str], request_body: dict[str, Any], fragment: str
) -> None:
    assert fragment in _error(client.post(infer_path(model), json=request_body), 400)


def test_nan_in_binary_data_is_rejected(client: TestClient[Any], model: tuple[str, str]) -> None:
    X = np.zeros((1, 64), dtype="<f4")
    X[0, 5] = np.nan
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "pixels",
                    "shape": [1, 64],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 256},
                }
            ]
        }
    ).encode()
    headers = {"Inference-Header-Content-Length": str(len(header))}
    response = client.post(infer_path(model), content=header + X.tobytes(), headers=headers)
    assert "finite" in _error(response, 400)
    short = client.post(infer_path(model), content=header + X.tobytes()[:-4], headers=headers)
    assert "binary_data_size 256" in _error(short, 400)
    bad_header = {"Inference-Header-Content-Length": "999999"}
    assert "Inference-Header-Content-Length" in _error(
        client.post(infer_path(model), content=header + X.tobytes(), headers=bad_header), 400
    )


def test_malformed_json_and_nan_literal_are_400(
    client: TestClient[Any], model: tuple[str, str]
) -> None:
    assert "not valid JSON" in _error(client.post(infer_path(model), content=b"{"), 400)
    body = b'{"inputs":[{"name":"pixels","shape":[1,64],"datatype":"FP32","data":[NaN]}]}'
    _error(client.post(infer_path(model), content=body), 400)


def test_unknown_model_or_version_is_404(client: TestClient[Any], model: tuple[str, str]) -> None:
    request = {"inputs": [pixels_input(FLAT, [1, 64])]}
    assert "unknown model" in _error(client.post("/v2/models/other/infer", json=request), 404)
    wrong = client.post(infer_path(model, "ffffffffffff"), json=request)
    assert "unknown version" in _error(wrong, 404)
    assert _error(client.get("/v2/nothing"), 404)


def test_oip_routes_are_labelled_by_template_in_metrics(
    client: TestClient[Any], model: tuple[str, str]
) -> None:
    client.post(infer_path(model), json={"inputs": [pixels_input(FLAT, [1, 64])]})
    client.get(f"/v2/models/{model[0]}/versions/{model[1]}/ready")
    text = client.get("/metrics").text
    assert 'route="/v2/models/{name}/infer",status="200"' in text
    assert 'route="/v2/models/{name}/versions/{version}/ready"' in text
    assert model[1] + "/ready" not in text
    assert f'route="/v2/models/{model[0]}/infer"' not in text


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/v2", "/v2"),
        ("/v2/health/ready", "/v2/health/ready"),
        ("/v2/models/digits", "/v2/models/{name}"),
        ("/v2/models/digits/ready", "/v2/models/{name}/ready"),
        ("/v2/models/digits/infer", "/v2/models/{name}/infer"),
        ("/v2/models/d/versions/abc/infer", "/v2/models/{name}/versions/{version}/infer"),
        ("/v2/models/d/versions/abc", "/v2/models/{name}/versions/{version}"),
        ("/v2/models/d/explain", "unmatched"),
        ("/v2/repository/index", "unmatched"),
    ],
)
def test_in_progress_route_label_is_bounded(path: str, template: str) -> None:
    settings = Settings(lock_file_path=str(REPO_ROOT / "dvc.lock"), max_rows=MAX_ROWS)
    find = route_finder(create_app(settings))
    method = "POST" if path.endswith("/infer") else "GET"
    route = find(path, method)
    assert (route.template if route is not None else "unmatched") == template


def test_openapi_documents_the_oip_routes(client: TestClient[Any]) -> None:
    paths = client.get("/docs/openapi.json").json()["paths"]
    for path in (
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
        "/drift",
    ):
        assert path in paths, path
