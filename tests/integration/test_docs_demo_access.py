"""Swagger UI, the OpenAPI document and the demo page follow DIGITS_AUTH (risk register R31).

Unset, ``DIGITS_DOCS`` and ``DIGITS_DEMO`` are on without auth and off with
``DIGITS_AUTH=api-key|jwt``: the paths are then not in the route table, so like any
undeclared path they answer 401 without a credential and 404 with one. Switched on
explicitly, they are public (a browser cannot send a bearer to open a page; the demo page
sends the key typed in its field with each call, tests/integration/test_demo_page_errors.py),
and every operation behind them still needs its key.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serving.access.keys import add_key
from serving.schemas import EXAMPLE_FLAT
from serving.settings import load_settings
from tests.integration.asgi import service_client

pytestmark = pytest.mark.integration
PAGES = ("/docs", "/docs/openapi.json", "/")
ASSETS = ("/static/swagger-ui/swagger-ui.css", "/static/demo/app.js")
JSON = {"content-type": "application/json"}
BODY = json.dumps({"samples": [EXAMPLE_FLAT]})
JWT = {
    "DIGITS_AUTH": "jwt",
    "DIGITS_JWT_JWKS": "/nonexistent/jwks.json",  # settings only: never read here
    "DIGITS_JWT_ISSUER": "https://idp.example",
    "DIGITS_JWT_AUDIENCE": "digits",
}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("keys") / "api-keys.jsonl"
    return path, add_key(path, "all", ["predict", "explain", "read", "feedback"])


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, True),
        ({"DIGITS_AUTH": "none"}, True),
        ({"DIGITS_AUTH": "api-key"}, False),
        (JWT, False),
        ({"DIGITS_AUTH": "api-key", "DIGITS_DOCS": "on", "DIGITS_DEMO": "on"}, True),
        ({"DIGITS_AUTH": "none", "DIGITS_DOCS": "off", "DIGITS_DEMO": "off"}, False),
    ],
    ids=["unset", "none", "api-key", "jwt", "api-key-switched-on", "none-switched-off"],
)
def test_the_defaults_follow_digits_auth(env: dict[str, str], on: bool) -> None:
    settings = load_settings(env)
    assert (settings.docs_on, settings.demo_on) == (on, on)


def test_with_auth_on_by_default_there_is_neither_swagger_nor_demo(
    keys: tuple[Path, str],
) -> None:
    path, key = keys
    with service_client(auth="api-key", api_keys_file=str(path)) as client:
        for url in (*PAGES, *ASSETS):
            assert client.get(url).status_code == 401, url  # undeclared: a key is needed
            authorized = client.get(url, headers={"authorization": f"Bearer {key}"})
            assert authorized.status_code == 404, url  # and with it: nothing there
        assert client.get("/health").status_code == 200  # the public routes stay


def test_switched_on_with_auth_they_are_public_and_the_api_still_needs_a_key(
    keys: tuple[Path, str],
) -> None:
    path, key = keys
    with service_client(auth="api-key", api_keys_file=str(path), docs="on", demo="on") as client:
        for url in (*PAGES, *ASSETS):
            assert client.get(url).status_code == 200, url
        assert "bearer" in client.get("/docs/openapi.json").json()["components"]["securitySchemes"]
        assert client.post("/predict", content=BODY, headers=JSON).status_code == 401
        keyed = {"authorization": f"Bearer {key}", **JSON}
        assert client.post("/predict", content=BODY, headers=keyed).status_code == 200


def test_without_auth_both_are_served_by_default() -> None:
    with service_client(auth="none") as client:
        for url in (*PAGES, *ASSETS):
            assert client.get(url).status_code == 200, url
