"""The request chain and its dispatch: canonical inference requests take the fast dispatch
with the answers Litestar would give; every route, error answers included, passes the chain;
HEAD is answered for every GET route."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from serving.app import create_app
from serving.http.chain import CHAIN, compose
from serving.http.dispatch import FAST as FAST_OPTION
from serving.http.dispatch import FAST_DISPATCHED, check_fast_handlers
from serving.http.errors import answer_errors
from serving.schemas import EXAMPLE_DIGIT, EXAMPLE_FLAT
from serving.settings import Settings

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]
FAST = {"content-type": "application/json"}
SLOW = {"content-type": "application/json; charset=utf-8"}


SEEN: list[tuple[str, str, int, bool]] = []


def recording_step(inner: Any, app: Any) -> Any:
    """A step added to the chain: records method, path, status and dispatch."""

    async def step(scope: Any, receive: Any, send: Any) -> None:
        status = [0]

        async def recording_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await inner(scope, receive, recording_send)
        finally:
            fast = bool(scope.get(FAST_DISPATCHED))
            SEEN.append((scope["method"], scope["path"], status[0], fast))

    return step


@pytest.fixture(scope="module")
def client() -> Any:
    settings = Settings(
        lock_file_path=str(REPO_ROOT / "dvc.lock"), max_rows=20, max_body_bytes=4096
    )
    # Where authentication or a rate limit would go: after the error step, before the body.
    position = CHAIN.index(answer_errors) + 1
    app = create_app(settings, steps=(*CHAIN[:position], recording_step, *CHAIN[position:]))
    with TestClient(app=app) as test_client:
        yield test_client


def _last_seen() -> tuple[str, str, int, bool]:
    return SEEN[-1]


@pytest.mark.parametrize("path", ["/predict", "/explain"])
def test_fast_and_litestar_paths_answer_identically(client: Any, path: str) -> None:
    body = json.dumps({"samples": [EXAMPLE_FLAT, EXAMPLE_DIGIT]})
    fast = client.post(path, content=body, headers=FAST)
    slow = client.post(path, content=body, headers=SLOW)
    assert fast.status_code == slow.status_code == 200
    assert fast.content == slow.content
    assert fast.headers["content-type"] == slow.headers["content-type"] == "application/json"
    assert fast.headers["x-request-id"] != slow.headers["x-request-id"]


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b'{"samples": []}',
        b'{"samples": [[1, 2]]}',
        b'{"samples": [[17]]}',
        json.dumps({"samples": [EXAMPLE_FLAT] * 21}).encode(),
    ],
)
def test_invalid_canonical_requests_get_the_litestar_error(client: Any, body: bytes) -> None:
    fast = client.post("/predict", content=body, headers=FAST)
    slow = client.post("/predict", content=body, headers=SLOW)
    assert 400 <= fast.status_code < 500
    assert fast.status_code == slow.status_code
    fast_error, slow_error = fast.json(), slow.json()
    assert fast_error.pop("request_id") != slow_error.pop("request_id")
    assert fast_error == slow_error


def test_chunked_body_without_length_is_served(client: Any) -> None:
    def chunks() -> Any:
        yield b'{"samples": ['
        yield json.dumps(EXAMPLE_FLAT).encode()
        yield b"]}"

    answer = client.post("/predict", content=chunks(), headers=FAST)
    assert answer.status_code == 200
    assert answer.json()["labels"] == [0]


OIP = "/v2/models/digits-classifier/infer"
OIP_BODY = {
    "inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": EXAMPLE_FLAT}]
}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/predict", {"samples": [EXAMPLE_FLAT]}),
        ("/explain", {"samples": [EXAMPLE_DIGIT]}),
        (OIP, OIP_BODY),
        ("/v2/models/digits-classifier/versions/{version}/infer", OIP_BODY),
    ],
)
def test_canonical_inference_requests_take_the_fast_dispatch(
    client: Any, path: str, body: dict[str, Any]
) -> None:
    version = client.get("/ready").json()["model_version"]
    answer = client.post(path.format(version=version), content=json.dumps(body), headers=FAST)
    assert answer.status_code == 200
    assert _last_seen() == ("POST", path.format(version=version), 200, True)


def test_other_routes_are_answered_by_litestar(client: Any) -> None:
    assert client.get("/health").status_code == 200
    assert _last_seen() == ("GET", "/health", 200, False)


# (method, path, body, headers, expected status): every kind of route and error answer.
EVERY_KIND = [
    ("GET", "/health", None, {}, 200),
    ("GET", "/ready", None, {}, 200),
    ("GET", "/metrics", None, {}, 200),
    ("GET", "/model", None, {}, 200),
    ("GET", "/drift", None, {}, 200),
    ("GET", "/docs", None, {}, 200),
    ("GET", "/docs/openapi.json", None, {}, 200),
    ("GET", "/", None, {}, 200),
    ("GET", "/static/demo/app.js", None, {}, 200),
    ("GET", "/static/swagger-ui/swagger-ui.css", None, {}, 200),
    ("GET", "/v2", None, {}, 200),
    ("GET", "/v2/models/digits-classifier/ready", None, {}, 200),
    ("GET", "/v2/models/other", None, {}, 404),
    ("HEAD", "/health", None, {}, 200),
    ("POST", "/predict", json.dumps({"samples": [EXAMPLE_FLAT]}), FAST, 200),
    ("POST", "/predict", "{", FAST, 400),
    ("POST", "/predict", "x" * 5000, FAST, 413),
    ("POST", "/predict", "{}", {"content-type": "text/plain"}, 415),
    ("POST", OIP, json.dumps(OIP_BODY), FAST, 200),
    ("POST", OIP, "{", FAST, 400),
    ("POST", "/no/such/route", "{}", FAST, 404),
    ("GET", "/no/such/route", None, {}, 404),
    ("DELETE", "/predict", None, {}, 405),
    ("GET", "/predict", None, {}, 405),
]


def test_a_step_added_to_the_chain_sees_every_route_and_error_answer(client: Any) -> None:
    for method, path, body, headers, status in EVERY_KIND:
        answer = client.request(method, path, content=body, headers=headers)
        assert answer.status_code == status, (method, path)
        assert answer.headers["x-request-id"]
        assert _last_seen()[:3] == (method, path, status)


def test_an_exception_in_a_later_step_gets_the_error_shape(client: Any) -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    chained: Any = compose(client.app, [answer_errors], broken)
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.disconnect"}

    scope: Any = {"type": "http", "method": "POST", "path": "/predict", "headers": []}
    asyncio.run(chained(scope, receive, send))
    assert sent[0]["status"] == 500
    error = json.loads(sent[1]["body"])
    assert (error["status"], error["reason"]) == (500, "internal_error")


def _get_paths(client: Any) -> list[str]:
    """Every GET route of the app's router, path parameters filled in."""
    version = client.get("/ready").json()["model_version"]
    assets = {"/static/demo": "favicon.svg", "/static/swagger-ui": "swagger-ui.css"}
    values = {"name": "digits-classifier", "version": version, "path": "openapi.yaml"}
    paths = []
    for route in client.app.routes:
        if "GET" in route.methods:
            prefix = route.path_format.split("/{file_path}")[0]
            values["file_path"] = assets.get(prefix, "")
            paths.append(route.path_format.format(**values))
    return paths


def test_head_answers_every_get_route_like_get_without_a_body(client: Any) -> None:
    paths = _get_paths(client)
    assert {"/health", "/ready", "/model", "/", "/v2", "/docs/openapi.json"} <= set(paths)
    for path in paths:
        get = client.get(path)
        head = client.head(path)
        assert head.status_code == get.status_code, path
        assert head.content == b"", path
        varying = {"x-request-id", "date"}
        if path == "/metrics":  # the exposition changes between the two requests
            varying.add("content-length")
        assert {k: v for k, v in head.headers.items() if k not in varying} == {
            k: v for k, v in get.headers.items() if k not in varying
        }, path


def test_a_fast_handler_must_take_only_request_and_path_parameters() -> None:
    from litestar import Litestar, Request, post
    from litestar.exceptions import ImproperlyConfiguredException
    from litestar.params import FromQuery

    async def needs_a_query(request: Request[Any, Any, Any], limit: FromQuery[int]) -> None:
        return None

    handler = post("/x", opt={FAST_OPTION: True}, status_code=204)(needs_a_query)
    with pytest.raises(ImproperlyConfiguredException):
        check_fast_handlers(Litestar([handler]))
