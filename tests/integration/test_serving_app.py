"""serving.app over Litestar's TestClient: endpoints, the error shape and the OpenAPI document."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from litestar.testing import TestClient

from serving.schemas import EXAMPLE_DIGIT, EXAMPLE_FLAT
from tests.integration.asgi import service_client

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]
JSON = {"content-type": "application/json"}
ERROR_KEYS = {"status", "reason", "message", "location", "request_id"}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient[Any]]:
    with service_client(max_rows=50, max_body_bytes=65536) as test_client:
        yield test_client


def locked_md5(lock_path: str) -> str:
    lock = yaml.safe_load((REPO_ROOT / "dvc.lock").read_text())
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            if out["path"] == lock_path:
                return str(out["md5"])
    raise AssertionError(lock_path)


def post(client: TestClient[Any], path: str, payload: Any) -> Any:
    return client.post(path, content=json.dumps(payload), headers=JSON)


def test_health_and_ready(client: TestClient[Any]) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["model_version"] == locked_md5("models/model.onnx")[:12]


def test_predict_flat_and_nested_agree(client: TestClient[Any]) -> None:
    flat = post(client, "/predict", {"samples": [EXAMPLE_FLAT]})
    nested = post(client, "/predict", {"samples": [EXAMPLE_DIGIT]})
    assert flat.status_code == nested.status_code == 200
    assert flat.json() == nested.json()
    body = flat.json()
    assert body["labels"] == [0]
    assert body["model_version"] == locked_md5("models/model.onnx")[:12]
    probabilities = np.asarray(body["probabilities"])
    assert probabilities.shape == (1, 10)
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert int(probabilities.argmax()) == body["labels"][0]
    assert body["classes"] == list(range(10))


def test_predict_many_rows(client: TestClient[Any]) -> None:
    rng = np.random.default_rng(1)
    samples = rng.integers(0, 17, size=(50, 64)).tolist()
    body = post(client, "/predict", {"samples": samples}).json()
    assert len(body["labels"]) == len(body["probabilities"]) == 50


def test_explain(client: TestClient[Any]) -> None:
    answer = post(client, "/explain", {"samples": [EXAMPLE_DIGIT, EXAMPLE_FLAT]})
    assert answer.status_code == 200
    body = answer.json()
    # The selected model (models/model.json) decides: exact for a linear model, else occlusion.
    model_card = json.loads((REPO_ROOT / "models/model.json").read_text())
    linear = model_card["linear_explanation"] is not None
    assert body["method"] == ("linear_exact" if linear else "occlusion")
    importance = body["global_importance"]
    assert len(importance["values"]) == 64
    assert np.asarray(importance["grid"]).shape == (8, 8)
    assert np.asarray(importance["grid"]).ravel().tolist() == importance["values"]
    reference = json.loads((REPO_ROOT / "reports/feature_importance.json").read_text())
    assert importance["values"] == reference["importances_mean"]
    assert importance["method"] == reference["method"]
    assert len(body["explanations"]) == 2
    first, second = body["explanations"]
    assert first == second
    assert first["label"] == 0
    assert np.asarray(first["contributions"]).shape == (8, 8)


def test_model_lineage(client: TestClient[Any]) -> None:
    body = client.get("/model").json()
    assert body["name"] == "digits-classifier"
    assert body["version"] == locked_md5("models/model.onnx")[:12]
    for path in ("models/model.onnx", "models/model.json", "reports/metrics.json"):
        assert body["artifacts"][path]["md5"] == locked_md5(path)
    assert body["stage"]["name"] == "train"
    assert body["stage"]["cmd"].startswith("python -m stages.train")
    stage_params = body["stage"]["params"]["params.yaml"]
    assert "train" in stage_params
    assert set(stage_params["train"]) >= {"augment", "selection"}
    metrics = json.loads((REPO_ROOT / "reports/metrics.json").read_text())
    assert body["metrics"]["accuracy"] == metrics["accuracy"]
    selection = json.loads((REPO_ROOT / "reports/model_selection.json").read_text())
    assert body["model_type"] == selection["winner"]
    assert body["model_type"] in body["params"]["train"]["selection"]["candidates"]
    assert "onnxruntime" in body["serving_library_versions"]
    assert "scikit-learn" in body["training_library_versions"]


def test_request_id_is_generated_and_the_clients_is_echoed_apart(client: TestClient[Any]) -> None:
    """X-Request-ID is always the service's own id; a client's id comes back in
    X-Client-Request-ID, never in its place."""
    echoed = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-client-request-id"] == "abc-123"
    assert echoed.headers["x-request-id"] != "abc-123"
    assert len(echoed.headers["x-request-id"]) == 32
    generated = client.get("/health")
    assert "x-client-request-id" not in generated.headers
    assert len(generated.headers["x-request-id"]) == 32
    assert generated.headers["x-request-id"] != client.get("/health").headers["x-request-id"]


def assert_error(answer: Any, status: int, reason: str, location: str | None = None) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == ERROR_KEYS
    assert body["status"] == status
    assert body["reason"] == reason
    assert body["message"]
    assert body["request_id"] == answer.headers["x-request-id"]
    if location is not None:
        assert body["location"] == location


@pytest.mark.parametrize("path", ["/predict", "/explain"])
def test_error_cases(client: TestClient[Any], path: str) -> None:
    bad_value = [list(EXAMPLE_FLAT) for _ in range(4)]
    bad_value[3][12] = 17
    assert_error(client.post(path, content=b"{oops", headers=JSON), 400, "malformed_json")
    assert_error(post(client, path, {"samples": [[1] * 63]}), 400, "row_length", "samples[0]")
    ragged = [list(row) for row in EXAMPLE_DIGIT]
    ragged[2] = ragged[2][:3]
    assert_error(post(client, path, {"samples": [ragged]}), 400, "ragged", "samples[0][2]")
    assert_error(post(client, path, {"samples": bad_value}), 400, "out_of_range", "samples[3][12]")
    assert_error(
        client.post(path, content=b'{"samples": [[NaN]]}', headers=JSON), 400, "malformed_json"
    )
    assert_error(post(client, path, {"samples": []}), 400, "empty", "samples")
    too_many = post(client, path, {"samples": [EXAMPLE_FLAT] * 51})
    assert_error(too_many, 413, "too_many_rows", "samples")
    assert "50" in too_many.json()["message"]
    assert_error(post(client, path, {"samples": [EXAMPLE_FLAT], "x": 1}), 400, "unknown_field", "x")
    strings = {"samples": [[str(v) for v in EXAMPLE_FLAT]]}
    assert_error(post(client, path, strings), 400, "invalid_type", "samples[0][0]")
    as_text = client.post(path, content=json.dumps({"samples": [EXAMPLE_FLAT]}))
    assert_error(as_text, 415, "unsupported_media_type")
    form = client.post(path, data={"samples": "1"})
    assert_error(form, 415, "unsupported_media_type")
    huge = b'{"samples": [' + b"[" + b"0," * 40000 + b"0]]}"
    assert_error(client.post(path, content=huge, headers=JSON), 413, "body_too_large")


def test_unknown_route_and_method_use_the_error_shape(client: TestClient[Any]) -> None:
    assert_error(client.get("/nope"), 404, "not_found")
    assert_error(client.get("/predict"), 405, "method_not_allowed")


def test_client_mistakes_are_not_logged_as_errors(
    client: TestClient[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bodies = [b"", b"null", b"{", b'{"samples": 1}', b'{"samples": [[-1]]}', b"\xff\xfe"]
    for body in bodies:
        answer = client.post("/predict", content=body, headers=JSON)
        assert 400 <= answer.status_code < 500
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_metrics_endpoint_exposes_the_agreed_names(client: TestClient[Any]) -> None:
    post(client, "/predict", {"samples": [EXAMPLE_FLAT]})
    post(client, "/predict", {"samples": []})
    text = client.get("/metrics").text
    for name in (
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "http_requests_in_progress",
        "model_predicted_class_total",
        "model_rows_per_request_bucket",
        "model_validation_failures_total",
        "model_info",
        "model_ready",
    ):
        assert name in text
    assert 'route="/predict"' in text
    assert 'reason="empty"' in text
    version = locked_md5("models/model.onnx")[:12]
    model_type = json.loads((REPO_ROOT / "models/model.json").read_text())["model_type"]
    assert (
        f'model_info{{model_type="{model_type}",registry_stage="",registry_version="",'
        f'version="{version}"}} 1.0'
    ) in text


def test_openapi_document(client: TestClient[Any]) -> None:
    spec = client.get("/docs/openapi.json").json()
    assert set(spec["paths"]) >= {"/health", "/ready", "/predict", "/explain", "/model"}
    predict = spec["paths"]["/predict"]["post"]
    media = predict["requestBody"]["content"]["application/json"]
    assert set(media["examples"]) == {"flat", "grid"}
    assert media["examples"]["grid"]["value"]["samples"] == [EXAMPLE_DIGIT]
    sample_schema = media["schema"]["properties"]["samples"]
    assert sample_schema["maxItems"] == 50
    flat, grid = sample_schema["items"]["oneOf"]
    assert (flat["minItems"], flat["maxItems"]) == (64, 64)
    assert (flat["items"]["minimum"], flat["items"]["maximum"]) == (0.0, 16.0)
    assert (grid["minItems"], grid["items"]["maxItems"]) == (8, 8)
    assert "200" in predict["responses"]
    for status in ("400", "413", "415"):
        ref = predict["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert ref == "#/components/schemas/ErrorResponse"
    assert set(spec["components"]["schemas"]["ErrorResponse"]["properties"]) == ERROR_KEYS


def test_swagger_ui_is_self_hosted(client: TestClient[Any]) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "swagger" in page.text.lower()
    assert "cdn" not in page.text.lower()
    assert "https://" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js"):
        assert f"/static/swagger-ui/{asset}" in page.text
        answer = client.get(f"/static/swagger-ui/{asset}")
        assert answer.status_code == 200
        assert len(answer.content) > 10_000


def test_generated_request_ids_are_unique_and_change_prefix_after_fork() -> None:
    from serving.http import observe

    ids = {observe.request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(value) == 32 for value in ids)
    before = observe.request_id()[:20]
    observe.new_id_prefix()  # what os.register_at_fork runs in a forked child
    assert observe.request_id()[:20] != before
