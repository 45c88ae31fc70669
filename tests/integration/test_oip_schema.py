"""The inference request's OpenAPI schema says what the service does, in both directions.

Each request below goes to the real app and is checked against the request-body schema
that ``/docs/openapi.json`` serves: the ones the schema admits are answered 200, the ones
it refuses are answered 4xx. The one rule JSON Schema cannot state (``data`` holds
``prod(shape)`` values in a regular array) is in the schema's description and tested here
as 400s on schema-valid requests. An output named twice is no such rule: it is answered
once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from litestar.testing import TestClient

from tests.integration.asgi import service_client

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]
MAX_ROWS = 5
PATH = "/v2/models/digits-classifier/infer"
ROW = [float(value % 17) for value in range(64)]
JUST_PAST_16 = math.nextafter(16.0, math.inf)
JUST_BELOW_0 = math.nextafter(0.0, -math.inf)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient[Any]]:
    with service_client(max_rows=MAX_ROWS) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def validator(client: TestClient[Any]) -> jsonschema.Draft202012Validator:
    spec = client.get("/docs/openapi.json").json()
    body = spec["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid(body["content"]["application/json"]["examples"]["flat"]["value"])
    return validator


def tensor(**changes: Any) -> dict[str, Any]:
    return {"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": ROW, **changes}


ACCEPTED = [
    {"inputs": [tensor()]},
    {"inputs": [tensor(shape=[2, 8, 8], data=[ROW, ROW])]},
    {"inputs": [tensor(shape=[1, 8, 8], data=[[ROW[i : i + 8] for i in range(0, 64, 8)]])]},
    {"inputs": [tensor(shape=[MAX_ROWS, 64], data=ROW * MAX_ROWS, datatype="FP64")]},
    {"inputs": [tensor(datatype="UINT8", data=[int(value) for value in ROW])]},
    # JSON Schema's integer: 1.0 is 1, for shape sizes and integer data alike.
    {"inputs": [tensor(shape=[1.0, 64.0], datatype="INT16")]},
    {"inputs": [tensor(parameters={"binary_data_size": None, "note": 1})], "id": "a"},
    {
        "inputs": [tensor()],
        "parameters": {"binary_data_output": False, "other": [1]},
        "outputs": [{"name": "label"}, {"name": "ood", "parameters": {"binary_data": False}}],
    },
    {"inputs": [tensor()], "outputs": [{"name": "probabilities", "parameters": {"top_k": 0}}]},
    {"inputs": [tensor()], "outputs": None, "parameters": None, "id": None},
    {"inputs": [tensor()], "outputs": [{"name": "label"}, {"name": "label"}] * 3},
]
REFUSED = [
    {"inputs": [tensor(shape=[0, 64], data=[])]},
    {"inputs": [tensor(shape=[1, 63])]},
    {"inputs": [tensor(shape=[1.5, 64])]},
    {"inputs": [tensor(data=ROW[:63])]},  # a flat array holds at least one row
    {"inputs": [tensor(shape=[MAX_ROWS, 64], data=ROW * (MAX_ROWS + 1))]},  # over 64 x limit
    {"inputs": [tensor(shape=[MAX_ROWS + 1, 64], data=ROW * (MAX_ROWS + 1))]},
    {"inputs": [tensor(datatype="FP16")]},
    {"inputs": [tensor(datatype="INT8", data=[0.5, *ROW[1:]])]},
    {"inputs": [tensor(data=[JUST_PAST_16, *ROW[1:]])]},
    {"inputs": [tensor(datatype="FP64", data=[[JUST_BELOW_0, *ROW[1:]]])]},
    {"inputs": [tensor(data=[None, *ROW[1:]])]},
    {"inputs": [{key: value for key, value in tensor().items() if key != "data"}]},
    {"inputs": [tensor(parameters={"binary_data_size": 256})]},
    {"inputs": [tensor(name="image")]},
    {"inputs": [tensor(), tensor()]},
    {"inputs": [tensor()], "parameters": {"binary_data_output": "yes"}},
    {"inputs": [tensor()], "outputs": [{"name": "logits"}]},
    {"inputs": [tensor()], "outputs": [{"name": "label", "parameters": {"top_k": 3}}]},
    {"inputs": [tensor()], "outputs": [{"name": "label", "parameters": {"binary_data": 1}}]},
    {"inputs": [tensor()], "extra": 1},
]
# Schema-valid, refused by the rule the schema states only in its description.
CROSS_FIELD = [
    {"inputs": [tensor(shape=[2, 64])]},
    {"inputs": [tensor(shape=[2, 8, 8], data=[ROW, ROW[:63]])]},
]


@pytest.mark.parametrize("request_object", ACCEPTED)
def test_schema_valid_requests_are_answered(
    client: TestClient[Any], validator: jsonschema.Draft202012Validator, request_object: Any
) -> None:
    assert validator.is_valid(request_object)
    response = client.post(PATH, json=request_object)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"]


@pytest.mark.parametrize("request_object", REFUSED)
def test_schema_invalid_requests_are_refused(
    client: TestClient[Any], validator: jsonschema.Draft202012Validator, request_object: Any
) -> None:
    assert not validator.is_valid(request_object)
    response = client.post(PATH, json=request_object)
    assert response.status_code in (400, 413), response.text
    assert response.json()["error"]


@pytest.mark.parametrize("request_object", CROSS_FIELD)
def test_the_described_cross_field_rule_is_enforced(
    client: TestClient[Any], validator: jsonschema.Draft202012Validator, request_object: Any
) -> None:
    assert validator.is_valid(request_object)
    assert client.post(PATH, json=request_object).status_code == 400


def test_pixel_range_is_checked_before_the_float32_cast(client: TestClient[Any]) -> None:
    """16 + 1 ulp rounds to 16.0 in float32: the service must refuse it, as /predict does."""
    for datatype in ("FP32", "FP64"):
        response = client.post(
            PATH, json={"inputs": [tensor(datatype=datatype, data=[JUST_PAST_16, *ROW[1:]])]}
        )
        assert response.status_code == 400
        assert "0..16" in response.json()["error"]
    predict = client.post("/predict", json={"samples": [[JUST_PAST_16, *ROW[1:]]]})
    assert predict.status_code == 400


def test_an_output_named_again_is_answered_once_as_first_named(client: TestClient[Any]) -> None:
    outputs = [
        {"name": "probabilities"},
        {"name": "label"},
        {"name": "probabilities", "parameters": {"binary_data": True}},
        {"name": "label"},
    ]
    response = client.post(PATH, json={"inputs": [tensor()], "outputs": outputs})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    answered = response.json()["outputs"]
    assert [output["name"] for output in answered] == ["probabilities", "label"]
    assert all("data" in output for output in answered)  # JSON, as first asked
    # Every mention is still validated.
    refused = client.post(
        PATH,
        json={
            "inputs": [tensor()],
            "outputs": [{"name": "label"}, {"name": "label", "parameters": {"top_k": 3}}],
        },
    )
    assert refused.status_code == 400
    assert "top_k" in refused.json()["error"]
