"""HTTP-level abuse against the real server: content types and sizes, chunked bodies over the
limit, slow clients (slowloris, idle connections), path traversal, methods not allowed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.bad_inputs import (
    GOOD_BODY,
    INFER,
    MAX_BODY_BYTES,
    MODEL,
    Case,
    chunked_over_limit,
    get,
    head_only,
    limited_server,
    predict,
    request,
    run_case,
)
from tests.integration.conftest import RunningServer

# serial: the slow-client cases time the server's header and body read timeouts.
pytestmark = [pytest.mark.integration, pytest.mark.serial, pytest.mark.timeout(300)]

TRAVERSALS = [
    b"/static/demo/../../app.py",
    b"/static/demo/%2e%2e/%2e%2e/app.py",
    b"/static/demo/..%2f..%2fapp.py",
    b"/static/swagger-ui/%252e%252e%252f%252e%252e%252fdvc.lock",
    b"/static/swagger-ui/..%2f..%2f..%2fdvc.lock",
    b"/static/demo/..\\..\\app.py",
    b"/static/demo/%2e%2e%5c%2e%2e%5capp.py",
    b"/static/demo//etc/passwd",
    b"/static/demo/%2fetc%2fpasswd",
    b"/static/swagger-ui/..%c0%af..%c0%afdvc.lock",
    b"/docs/../../pyproject.toml",
    b"/docs/%2e%2e/%2e%2e/pyproject.toml",
]

CASES = [
    # Content types and sizes.
    Case(
        "content_type_text_plain",
        (predict(GOOD_BODY, content_type="text/plain"),),
        415,
        "service",
        reason="unsupported_media_type",
    ),
    Case(
        "content_type_missing",
        (predict(GOOD_BODY, content_type=None),),
        415,
        "service",
        reason="unsupported_media_type",
    ),
    Case(
        "content_type_form_explain",
        (request("POST", "/explain", GOOD_BODY, content_type="application/x-www-form-urlencoded"),),
        415,
        "service",
    ),
    Case(
        "content_length_over_limit",
        (predict(b" " * (MAX_BODY_BYTES + 1)),),
        413,
        "service",
        reason="body_too_large",
    ),
    Case("chunked_over_limit", (chunked_over_limit(),), 413, "service", reason="body_too_large"),
    Case("oip_body_over_limit", (request("POST", INFER, b" " * (MAX_BODY_BYTES + 1)),), 413, "oip"),
    Case(
        "content_length_not_a_number",
        (head_only("POST", "/predict", "abc") + b"{}",),
        400,
        "protocol",
    ),
    # Slow clients (slowloris).
    Case(
        # A connection that never sends a byte: closed by the header timeout too (it used
        # to start at the first byte, so an idle connection stayed open indefinitely).
        "idle_connection",
        (),
        None,
        "closed",
        timed=True,
    ),
    Case(
        "slow_headers",
        (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n",),
        None,
        "closed",
        timed=True,
    ),
    Case(
        "stalled_body",
        (head_only("POST", "/predict", "5000") + b'{"samples"',),
        408,
        "service",
        reason="body_timeout",
        timed=True,
    ),
    Case(
        "dribbled_body",
        (head_only("POST", "/explain", "5000"),) + (b" ",) * 12,
        408,
        "service",
        pause=0.25,
        reason="body_timeout",
        timed=True,
    ),
    Case(
        "oip_stalled_body",
        (head_only("POST", INFER, "5000") + b"{",),
        408,
        "oip",
        timed=True,
    ),
    # Path traversal on the static routes and /docs.
    *(
        Case(f"traversal_{index}", (get(path),), 404, "service", expect={"no_secrets": True})
        for index, path in enumerate(TRAVERSALS)
    ),
    # Methods not allowed.
    Case(
        "method_delete_predict",
        (request("DELETE", "/predict", content_type=None),),
        405,
        "service",
        reason="method_not_allowed",
    ),
    Case("method_get_predict", (get(b"/predict"),), 405, "service", reason="method_not_allowed"),
    Case(
        "method_post_health",
        (request("POST", "/health", b"{}"),),
        405,
        "service",
        reason="method_not_allowed",
    ),
    Case(
        "method_post_demo_page",
        (request("POST", "/", b"{}"),),
        405,
        "service",
        reason="method_not_allowed",
    ),
    Case("method_put_oip_infer", (request("PUT", INFER, b"{}"),), 405, "oip"),
    Case(
        "method_delete_oip_model",
        (request("DELETE", f"/v2/models/{MODEL}", content_type=None),),
        405,
        "oip",
    ),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from limited_server(tmp_path_factory)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(server: RunningServer, case: Case) -> None:
    run_case(server, case)
