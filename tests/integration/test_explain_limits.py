"""/explain has its own row limit (occlusion runs the model 65 times a row), and says so in
its OpenAPI operation (issue 23, finding 7)."""

from __future__ import annotations

import json

import pytest

from serving.schemas import EXAMPLE_FLAT
from serving.settings import SettingsError, load_settings
from tests.integration.asgi import service_client

pytestmark = pytest.mark.integration
JSON = {"content-type": "application/json"}


def body(rows: int) -> str:
    return json.dumps({"samples": [EXAMPLE_FLAT] * rows})


def test_explain_answers_up_to_its_own_limit_and_predict_keeps_the_general_one() -> None:
    with service_client(explain_max_rows=5, max_rows=50) as client:
        assert client.post("/explain", content=body(5), headers=JSON).status_code == 200
        refused = client.post("/explain", content=body(6), headers=JSON)
        assert refused.status_code == 413
        assert refused.json()["reason"] == "too_many_rows"
        assert "limit of 5 samples" in refused.json()["message"]
        assert client.post("/predict", content=body(50), headers=JSON).status_code == 200
        spec = client.get("/docs/openapi.json").json()
    limits = {
        path: spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"][
            "properties"
        ]["samples"]["maxItems"]
        for path in ("/explain", "/predict")
    }
    assert limits == {"/explain": 5, "/predict": 50}


def test_the_explain_limit_defaults_to_100_and_never_exceeds_max_rows() -> None:
    assert load_settings({}).explain_max_rows == 100
    with service_client(explain_max_rows=500, max_rows=20) as client:
        refused = client.post("/explain", content=body(21), headers=JSON)
        assert "limit of 20 samples" in refused.json()["message"]
    with pytest.raises(SettingsError, match="DIGITS_EXPLAIN_MAX_ROWS"):
        load_settings({"DIGITS_EXPLAIN_MAX_ROWS": "0"})
