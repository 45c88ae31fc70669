"""The OpenAPI document describes the running access configuration, operation by operation.

Each configuration's app serves its own ``/docs/openapi.json``; every documented operation
is then called without a credential (and, with a rate limit, twice) and its answer is
held against what the document says: a security requirement exactly where the service
answers 401, 401/403 documented exactly there, 429 documented exactly where the service
rate-limits. With ``DIGITS_AUTH=none`` nothing asks for a credential.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from litestar.testing import TestClient

from serving.access.keys import add_key
from serving.schemas import EXAMPLE_FLAT
from serving.state import service_of
from tests.integration.asgi import service_client

pytestmark = pytest.mark.integration
METHODS = ("get", "post")
BODIES = {
    "infer": {
        "inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": EXAMPLE_FLAT}]
    },
    "samples": {"samples": [EXAMPLE_FLAT]},
}
# What each documented operation needs with authentication on (docs/deployment.md).
SCOPE = {
    "POST /predict": "predict",
    "POST /explain": "explain",
    "POST /v2/models/{name}/infer": "predict",
    "POST /v2/models/{name}/versions/{version}/infer": "predict",
}


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keys.jsonl"
    add_key(path, "someone", ["read"])
    return path


@pytest.fixture(scope="module")
def jwks_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
    path.write_text(json.dumps({"keys": [{**jwk, "kid": "k1"}]}))
    return path


def configurations(keys_file: Path, jwks_file: Path) -> dict[str, dict[str, Any]]:
    jwt_settings = {
        "auth": "jwt",
        "jwt_jwks": str(jwks_file),
        "jwt_issuer": "https://idp.example",
        "jwt_audience": "digits",
    }
    return {
        "unset": {},
        "none": {"auth": "none"},
        "api-key": {"auth": "api-key", "api_keys_file": str(keys_file)},
        "api-key, metrics open": {
            "auth": "api-key",
            "api_keys_file": str(keys_file),
            "metrics_auth": False,
        },
        "api-key, metrics protected": {
            "auth": "api-key",
            "api_keys_file": str(keys_file),
            "metrics_auth": True,
        },
        "jwt": jwt_settings,
    }


CONFIGURATIONS = ["unset", "none", "api-key", "api-key, metrics open", "api-key, metrics protected"]


@pytest.fixture(params=[*CONFIGURATIONS, "jwt"])
def configured(
    request: pytest.FixtureRequest, keys_file: Path, jwks_file: Path
) -> Iterator[tuple[str, TestClient[Any]]]:
    # The document of each configuration, published (with auth on it is off by default).
    settings = {**configurations(keys_file, jwks_file)[request.param], "docs": "on"}
    with service_client(**settings) as client:
        yield request.param, client


def operations(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def call(client: TestClient[Any], operation: str, **headers: str) -> int:
    method, template = operation.split(" ", 1)
    model = service_of(client.app).ready_bundle()
    path = template.replace("{name}", model.card.name).replace("{version}", model.version)
    if method == "GET":
        return client.get(path, headers=headers).status_code
    body = BODIES["infer" if template.endswith("/infer") else "samples"]
    return client.post(path, json=body, headers=headers).status_code


def test_security_is_documented_exactly_where_a_credential_is_asked_for(
    configured: tuple[str, TestClient[Any]],
) -> None:
    name, client = configured
    spec = client.get("/docs/openapi.json").json()
    schemes = spec.get("components", {}).get("securitySchemes")
    documented = operations(spec)
    assert len(documented) >= 15
    asked = set()
    for operation, entry in documented.items():
        status = call(client, operation)
        security = entry.get("security")
        responses = set(entry["responses"])
        if status == 401:
            asked.add(operation)
            assert security == [{"bearer": [SCOPE.get(operation, "read")]}], operation
            assert {"401", "403"} <= responses, operation
        else:
            assert status in (200, 503) or operation.endswith("/ready"), (operation, status)
            assert security is None, operation
            assert not {"401", "403"} & responses, operation
        assert "429" not in responses, operation  # no rate limit is set
    if name in ("unset", "none"):
        assert schemes is None
        assert not asked
        return
    assert set(schemes) == {"bearer"}
    assert schemes["bearer"]["scheme"] == "bearer"
    assert f"DIGITS_AUTH={name.split(',')[0]}" in schemes["bearer"]["description"]
    assert ("bearerFormat" in schemes["bearer"]) == (name == "jwt")
    public = {"GET /health", "GET /ready", "GET /v2/health/live", "GET /v2/health/ready"}
    metrics = {"GET /metrics"}  # needs read by DIGITS_METRICS_AUTH, whichever way it is set
    assert asked - metrics == set(documented) - public - metrics
    if name.endswith("metrics open"):
        assert not asked & metrics
    if name.endswith("metrics protected"):
        assert metrics <= asked


@pytest.mark.parametrize("auth", ["none", "api-key"])
def test_429_is_documented_exactly_where_a_rate_limit_applies(auth: str, keys_file: Path) -> None:
    key = add_key(keys_file, f"limited-{auth}", ["predict", "explain", "read"])
    settings: dict[str, Any] = {"auth": auth, "rate_limit": "1/hour", "docs": "on"}
    if auth == "api-key":
        settings["api_keys_file"] = str(keys_file)
    with service_client(**settings) as client:
        documented = operations(client.get("/docs/openapi.json").json())
        limited = set()
        for operation in documented:
            call(client, operation, authorization=f"Bearer {key}")
            if call(client, operation, authorization=f"Bearer {key}") == 429:
                limited.add(operation)
    assert limited == {op for op, entry in documented.items() if "429" in entry["responses"]}
    assert "POST /predict" in limited
    assert "GET /health" not in limited
