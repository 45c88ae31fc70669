"""The hidden-door walk: every documented operation of the live service, with no
credential, a wrong key, a revoked key and keys of every other scope, through path, method
and content-type variants. Nothing protected may ever be answered 2xx (nor 5xx).

The real server (2 granian workers, API-key auth, /metrics protected) is walked over raw
HTTP/1.1 (http.client sends paths byte for byte, no client-side normalisation).
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from itertools import product
from typing import Any

import pytest

from serving.access.keys import add_key, revoke
from serving.schemas import EXAMPLE_FLAT
from tests.integration.conftest import RunningServer, http_get, start_server, stop_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
PUBLIC = {"/health", "/ready", "/v2/health/live", "/v2/health/ready"}
# The scope table of the issue, per documented operation (a new operation must be added).
NEEDS = {
    "POST /predict": "predict",
    "POST /explain": "explain",
    "POST /v2/models/{name}/infer": "predict",
    "POST /v2/models/{name}/versions/{version}/infer": "predict",
    "GET /model": "read",
    "GET /drift": "read",
    "GET /metrics": "read",
    "GET /v2": "read",
    "GET /v2/models/{name}": "read",
    "GET /v2/models/{name}/versions/{version}": "read",
    "GET /v2/models/{name}/ready": "read",
    "GET /v2/models/{name}/versions/{version}/ready": "read",
}
SCOPES = ("predict", "explain", "read")
CONTENT_TYPES = (
    None,
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "application/octet-stream",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
)


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningServer, dict[str, str]]]:
    directory = tmp_path_factory.mktemp("walk")
    keys_file = directory / "keys.jsonl"
    keys = {scope: add_key(keys_file, f"only-{scope}", [scope]) for scope in SCOPES}
    keys["all"] = add_key(keys_file, "all", list(SCOPES))
    keys["revoked"] = add_key(keys_file, "revoked", list(SCOPES))
    revoke(keys_file, "revoked")
    server = start_server(
        {
            "DIGITS_AUTH": "api-key",
            "DIGITS_API_KEYS_FILE": str(keys_file),
            "DIGITS_METRICS_AUTH": "true",
            # Published on purpose (off by default with auth): the walk reads the document,
            # and the pages must stay public (tests/integration/test_docs_demo_access.py).
            "DIGITS_DOCS": "on",
            "DIGITS_DEMO": "on",
        },
        workers=2,
        log_dir=directory,
    )
    try:
        yield server, keys
    finally:
        stop_server(server)


def path_variants(path: str) -> list[str]:
    head, _, last = path.rpartition("/")
    encoded_last = "".join(f"%{ord(c):02X}" if i == 0 else c for i, c in enumerate(last))
    return [
        path,
        path + "/",
        "/" + path,
        path.replace("/", "//"),
        path.upper(),
        f"{head}/{encoded_last}" if last else path,
        path + "?x=1",
        path + "/.",
        path.replace("/", "/./", 1),
    ]


def body_for(operation: str, content_type: str | None) -> bytes:
    if "infer" in operation:
        return json.dumps(
            {
                "inputs": [
                    {"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": EXAMPLE_FLAT}
                ]
            }
        ).encode()
    if operation.startswith("POST"):
        return json.dumps({"samples": [EXAMPLE_FLAT]}).encode()
    return b""


class Caller:
    """One keep-alive connection; a connection the server closed (a refused request whose
    body was not read) is replaced and the request sent again on a fresh one."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def __call__(
        self, method: str, path: str, key: str | None, content_type: str | None, body: bytes
    ) -> int:
        headers: dict[str, Any] = {}
        if key is not None:
            headers["authorization"] = f"Bearer {key}"
        if content_type is not None:
            headers["content-type"] = content_type
        for attempt in (1, 2):
            try:
                self.connection.request(method, path, body=body or None, headers=headers)
                response = self.connection.getresponse()
                response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.connection.close()
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                if attempt == 2:
                    raise
                continue
            if response.will_close:
                self.connection.close()
            return response.status
        raise AssertionError("unreachable")

    def json(self, path: str, key: str) -> Any:
        self.connection.request("GET", path, headers={"authorization": f"Bearer {key}"})
        return json.loads(self.connection.getresponse().read())


def documented(server: RunningServer) -> dict[str, str]:
    status, body = http_get(f"{server.base_url}/docs/openapi.json")
    assert status == 200
    spec = json.loads(body)
    return {
        f"{method.upper()} {path}": path for path, item in spec["paths"].items() for method in item
    }


def concrete(path: str, name: str, version: str) -> str:
    return path.replace("{name}", name).replace("{version}", version)


def test_nothing_protected_is_answered_without_the_right_credential(
    setup: tuple[RunningServer, dict[str, str]],
) -> None:
    server, keys = setup
    operations = documented(server)
    protected = {op: path for op, path in operations.items() if path not in PUBLIC}
    assert set(protected) == set(NEEDS), "every documented operation needs a scope entry"
    call = Caller(server.port)
    model = call.json("/model", keys["read"])
    name, version = model["name"], model["version"]
    walked = 0
    for operation, template in protected.items():
        method, _ = operation.split(" ", 1)
        path = concrete(template, name, version)
        # Positive control: the right key is answered 2xx, so the walk below means something.
        ctype = "application/json" if method == "POST" else None
        assert call(method, path, keys["all"], ctype, body_for(operation, ctype)) == 200
        wrong_scopes = [keys[s] for s in SCOPES if s != NEEDS[operation]]
        credentials = [None, "dgk_wrong", keys["revoked"], "", *wrong_scopes]
        methods = [method, "HEAD", "OPTIONS", "GET" if method == "POST" else "POST"]
        types = CONTENT_TYPES if method == "POST" else (None, "application/json")
        for key, variant, verb, content_type in product(
            credentials, path_variants(path), methods, types
        ):
            status = call(verb, variant, key, content_type, body_for(operation, content_type))
            walked += 1
            assert not 200 <= status < 300, (verb, variant, key, content_type, status)
            assert status < 500, (verb, variant, key, content_type, status)
    # Unknown paths and methods do not tell a stranger anything either.
    for verb, path in product(
        ("GET", "POST", "PUT", "DELETE", "OPTIONS"), ("/admin", "/v2/x", "/%2e%2e/predict")
    ):
        assert call(verb, path, None, None, b"") == 401
        walked += 1
    print(f"access walk: {walked} requests, {len(protected)} protected operations")
    assert walked > 2000


def test_the_document_secures_exactly_the_protected_operations(
    setup: tuple[RunningServer, dict[str, str]],
) -> None:
    """The OpenAPI document names the scope of every operation the walk finds protected."""
    server, _ = setup
    status, body = http_get(f"{server.base_url}/docs/openapi.json")
    assert status == 200
    spec = json.loads(body)
    assert set(spec["components"]["securitySchemes"]) == {"bearer"}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            needed = NEEDS.get(f"{method.upper()} {path}")
            expected = None if needed is None else [{"bearer": [needed]}]
            assert operation.get("security") == expected, (method, path)
            assert ({"401", "403"} <= set(operation["responses"])) == (needed is not None)


def test_public_routes_stay_public(setup: tuple[RunningServer, dict[str, str]]) -> None:
    server, _ = setup
    call = Caller(server.port)
    for path in (*PUBLIC, "/docs", "/docs/openapi.json", "/", "/static/demo/app.js"):
        assert call("GET", path, None, None, b"") == 200, path
        assert call("GET", path, "dgk_wrong", None, b"") == 200, path
