"""Catalogue of hostile and malformed requests against the real server (raw sockets).

Every case sends exact bytes (no client library normalises them) and asserts the status,
the documented error shape -- ``{status, reason, message, location, request_id}`` for the
``/predict`` family and every non-``/v2`` route, ``{"error": ...}`` for ``/v2`` -- and that
the server is healthy afterwards: ``GET /health`` answers 200 and a good ``/predict`` 200.

Decided behaviours the catalogue pins down:

* Duplicate ``samples`` keys: msgspec validates every occurrence while decoding and the
  **last** one wins (a valid first and a valid second with 2 rows -> 2 labels; an invalid
  occurrence anywhere -> 400).
* JSON must be UTF-8 without a BOM (RFC 8259); UTF-16 (with or without BOM) and a UTF-8 BOM
  are ``malformed_json`` 400s.
* ``-0.0`` is the pixel value 0 (200, same answer as ``0.0``).
* ``1e309`` and ``10**400`` overflow a double and ``1e308`` is a finite number far above 16:
  all are ``out_of_range`` 400s, never inf/NaN reaching the model.
* Slow clients: request headers not complete within ``DIGITS_HEADER_READ_TIMEOUT`` -> granian
  closes the connection without an answer; a body not complete within
  ``DIGITS_BODY_READ_TIMEOUT`` (counted from the first body read) -> 408 with
  ``Connection: close``.
* Requests granian rejects before the application sees them (an unparseable
  ``Content-Length``) get granian's bare 400 and a closed connection ("protocol" shape).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.integration.conftest import RunningServer, start_server, stop_server

# serial: the slow-client cases time the server's header and body read timeouts.
pytestmark = [pytest.mark.integration, pytest.mark.serial, pytest.mark.timeout(300)]
HEADER_TIMEOUT_SECONDS = 1.5
BODY_TIMEOUT_SECONDS = 1.5
MAX_BODY_BYTES = 1 << 20
SLACK_SECONDS = 3.0
MODEL = "digits-classifier"
INFER = f"/v2/models/{MODEL}/infer"
ROW = [float(value % 17) for value in range(64)]
ROW_JSON = json.dumps(ROW).encode()
GOOD_BODY = b'{"samples":[' + ROW_JSON + b"]}"
ZEROS_TAIL = b",0" * 63
SECRETS = (b"def create_app", b"root:x:0:0", b"stages:", b"[tool.", b"import ")


@dataclass(frozen=True)
class Reply:
    """What came back on the socket: status None when the server closed without answering."""

    status: int | None
    headers: dict[str, str]
    body: bytes
    seconds: float
    closed: bool


@dataclass(frozen=True)
class Case:
    name: str
    chunks: tuple[bytes, ...]
    status: int | None
    shape: str  # "service", "oip", "ok", "protocol", "closed"
    pause: float = 0.0
    reason: str | None = None
    expect: dict[str, Any] = field(default_factory=dict)
    timed: bool = False


def request(
    method: str,
    path: str,
    body: bytes = b"",
    content_type: str | None = "application/json",
    extra: str = "",
) -> bytes:
    """An HTTP/1.1 request with Content-Length (and ``Connection: close``)."""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    head += f"Content-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode("latin-1") + body


def predict(body: bytes, **kwargs: Any) -> bytes:
    return request("POST", "/predict", body, **kwargs)


def infer_body(tensor: dict[str, Any]) -> bytes:
    return json.dumps({"inputs": [tensor]}).encode()


def pixels(data: Any, shape: list[int], datatype: str = "FP32") -> dict[str, Any]:
    return {"name": "pixels", "shape": shape, "datatype": datatype, "data": data}


def head_only(method: str, path: str, content_length: str) -> bytes:
    """Request line and headers announcing a JSON body of ``content_length`` (no body)."""
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {content_length}\r\n\r\n"
    ).encode("latin-1")


def get(path: bytes) -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def chunked_over_limit() -> bytes:
    head = (
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    chunk = b"%x\r\n" % (256 * 1024) + b" " * (256 * 1024) + b"\r\n"
    return head + chunk * 6 + b"0\r\n\r\n"


DEEP = b"[" * 10_000 + b"]" * 10_000
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
    # Deep nesting and huge numbers.
    Case("deep_nesting_predict", (predict(b'{"samples":' + DEEP + b"}"),), 400, "service"),
    Case(
        "deep_nesting_explain",
        (request("POST", "/explain", b'{"samples":' + DEEP + b"}"),),
        400,
        "service",
    ),
    Case(
        "deep_nesting_oip_data",
        (
            request(
                "POST",
                INFER,
                b'{"inputs":[{"name":"pixels","shape":[1,64],"datatype":"FP32","data":'
                + DEEP
                + b"}]}",
            ),
        ),
        400,
        "oip",
    ),
    Case(
        "deep_nesting_oip_parameters",
        (request("POST", INFER, b'{"inputs":[],"parameters":{"a":' + DEEP + b"}}"),),
        400,
        "oip",
    ),
    Case(
        "float_1e308",
        (predict(b'{"samples":[[1e308' + ZEROS_TAIL + b"]]}"),),
        400,
        "service",
        reason="out_of_range",
    ),
    Case(
        "integer_10e400",
        (predict(b'{"samples":[[1' + b"0" * 400 + ZEROS_TAIL + b"]]}"),),
        400,
        "service",
        reason="out_of_range",
    ),
    Case(
        "float_1e309",
        (predict(b'{"samples":[[1e309' + ZEROS_TAIL + b"]]}"),),
        400,
        "service",
        reason="out_of_range",
    ),
    Case(
        "negative_1e309",
        (predict(b'{"samples":[[-1e309' + ZEROS_TAIL + b"]]}"),),
        400,
        "service",
        reason="out_of_range",
    ),
    Case(
        "nan_literal",
        (predict(b'{"samples":[[NaN' + ZEROS_TAIL + b"]]}"),),
        400,
        "service",
        reason="malformed_json",
    ),
    Case(
        "infinity_literal",
        (predict(b'{"samples":[[Infinity' + ZEROS_TAIL + b"]]}"),),
        400,
        "service",
        reason="malformed_json",
    ),
    Case(
        "oip_float_1e309",
        (
            request(
                "POST",
                INFER,
                b'{"inputs":[{"name":"pixels","shape":[1,64],"datatype":"FP64","data":[1e309'
                + ZEROS_TAIL
                + b"]}]}",
            ),
        ),
        400,
        "oip",
    ),
    Case(
        "oip_int64_10e400",
        (
            request(
                "POST",
                INFER,
                b'{"inputs":[{"name":"pixels","shape":[1,64],"datatype":"INT64","data":[1'
                + b"0" * 400
                + ZEROS_TAIL
                + b"]}]}",
            ),
        ),
        400,
        "oip",
    ),
    Case(
        "negative_zero",
        (predict(b'{"samples":[[-0.0' + ZEROS_TAIL + b"]]}"),),
        200,
        "ok",
        expect={"same_as": b'{"samples":[[0.0' + ZEROS_TAIL + b"]]}"},
    ),
    Case(
        "oip_negative_zero",
        (request("POST", INFER, infer_body(pixels([-0.0] + [0.0] * 63, [1, 64]))),),
        200,
        "ok",
    ),
    # Strings, keys, duplicates, NUL bytes, encodings.
    Case(
        "long_string_value",
        (predict(b'{"samples":"' + b"a" * 500_000 + b'"}'),),
        400,
        "service",
        reason="invalid_type",
    ),
    Case(
        "long_string_pixel",
        (predict(b'{"samples":[["' + b"7" * 500_000 + b'"' + ZEROS_TAIL + b"]]}"),),
        400,
        "service",
        reason="invalid_type",
    ),
    Case(
        "long_unknown_key",
        (predict(b'{"' + b"k" * 500_000 + b'":1,"samples":[' + ROW_JSON + b"]}"),),
        400,
        "service",
        reason="unknown_field",
    ),
    Case(
        "oip_long_model_name",
        (request("POST", "/v2/models/" + "m" * 4000 + "/infer", infer_body(pixels(ROW, [1, 64]))),),
        404,
        "oip",
    ),
    Case(
        "duplicate_samples_last_wins",
        (
            predict(
                b'{"samples":[' + ROW_JSON + b'],"samples":[' + ROW_JSON + b"," + ROW_JSON + b"]}"
            ),
        ),
        200,
        "ok",
        expect={"n_labels": 2},
    ),
    Case(
        "duplicate_samples_each_validated",
        (predict(b'{"samples":[[99' + ZEROS_TAIL + b']],"samples":[' + ROW_JSON + b"]}"),),
        400,
        "service",
        reason="out_of_range",
    ),
    Case(
        "nul_byte_raw",
        (predict(b'{"samples":[[1,\x00' + ZEROS_TAIL[2:] + b"]]}"),),
        400,
        "service",
        reason="malformed_json",
    ),
    Case(
        "nul_byte_escaped_key",
        (predict(b'{"samples\\u0000":[' + ROW_JSON + b"]}"),),
        400,
        "service",
        reason="unknown_field",
    ),
    Case(
        "nul_byte_oip_name",
        (request("POST", INFER, infer_body({**pixels(ROW, [1, 64]), "name": "pixels\x00"})),),
        400,
        "oip",
    ),
    Case(
        "utf16_with_bom",
        (predict(GOOD_BODY.decode().encode("utf-16")),),
        400,
        "service",
        reason="malformed_json",
    ),
    Case(
        "utf16le_without_bom",
        (predict(GOOD_BODY.decode().encode("utf-16-le")),),
        400,
        "service",
        reason="malformed_json",
    ),
    Case(
        "utf16be_without_bom",
        (predict(GOOD_BODY.decode().encode("utf-16-be")),),
        400,
        "service",
        reason="malformed_json",
    ),
    Case(
        "utf8_bom", (predict(b"\xef\xbb\xbf" + GOOD_BODY),), 400, "service", reason="malformed_json"
    ),
    Case("invalid_utf8", (predict(b'{"samples\xff\xfe":[' + ROW_JSON + b"]}"),), 400, "service"),
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
    # Open Inference Protocol shapes and datatypes.
    Case(
        "oip_shape_63", (request("POST", INFER, infer_body(pixels(ROW[:63], [1, 63]))),), 400, "oip"
    ),
    Case("oip_shape_rank1", (request("POST", INFER, infer_body(pixels(ROW, [64]))),), 400, "oip"),
    Case(
        "oip_shape_negative",
        (request("POST", INFER, infer_body(pixels(ROW, [-1, 64]))),),
        400,
        "oip",
    ),
    Case(
        "oip_shape_huge",
        (request("POST", INFER, infer_body(pixels(ROW, [2**62, 64]))),),
        400,
        "oip",
    ),
    Case(
        "oip_shape_data_mismatch",
        (request("POST", INFER, infer_body(pixels(ROW, [2, 64]))),),
        400,
        "oip",
    ),
    Case(
        "oip_datatype_bytes",
        (request("POST", INFER, infer_body(pixels(ROW, [1, 64], "BYTES"))),),
        400,
        "oip",
    ),
    Case(
        "oip_datatype_bool",
        (request("POST", INFER, infer_body(pixels([True] * 64, [1, 64], "BOOL"))),),
        400,
        "oip",
    ),
    Case(
        "oip_datatype_lowercase",
        (request("POST", INFER, infer_body(pixels(ROW, [1, 64], "fp32"))),),
        400,
        "oip",
    ),
    Case(
        "oip_strings_as_fp32",
        (request("POST", INFER, infer_body(pixels(["1"] * 64, [1, 64]))),),
        400,
        "oip",
    ),
    Case(
        "oip_floats_as_int32",
        (request("POST", INFER, infer_body(pixels([0.5] * 64, [1, 64], "INT32"))),),
        400,
        "oip",
    ),
    Case(
        "oip_binary_size_lie",
        (
            request(
                "POST",
                INFER,
                infer_body(
                    {**pixels(None, [1, 64]), "parameters": {"binary_data_size": 256}}
                ).replace(b',"data":null', b""),
                extra="Inference-Header-Content-Length: 5\r\n",
            ),
        ),
        400,
        "oip",
    ),
    Case(
        "oip_binary_header_length_nan",
        (
            request(
                "POST",
                INFER,
                infer_body(pixels(ROW, [1, 64])),
                extra="Inference-Header-Content-Length: -7\r\n",
            ),
        ),
        400,
        "oip",
    ),
    Case(
        "oip_unknown_model",
        (request("POST", "/v2/models/nope/infer", infer_body(pixels(ROW, [1, 64]))),),
        404,
        "oip",
    ),
    Case("oip_not_an_object", (request("POST", INFER, b"[1,2,3]"),), 400, "oip"),
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


def exchange(port: int, case: Case, timeout: float) -> Reply:
    """Send the case's chunks (pausing between them) and read one response or the close."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            for index, chunk in enumerate(case.chunks):
                if index and case.pause:
                    time.sleep(case.pause)
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered (413, 408) and closed while we were still sending
        data = b""
        closed = False
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    closed = True
                    break
                data += chunk
        except ConnectionResetError:
            closed = True
    seconds = time.perf_counter() - started
    if not data:
        return Reply(None, {}, b"", seconds, closed)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(int(lines[0].split()[1]), headers, body, seconds, closed)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env = {
        "DIGITS_HEADER_READ_TIMEOUT": str(HEADER_TIMEOUT_SECONDS),
        "DIGITS_BODY_READ_TIMEOUT": str(BODY_TIMEOUT_SECONDS),
        "DIGITS_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
    }
    running = start_server(env, workers=2, log_dir=tmp_path_factory.mktemp("bad-inputs"))
    yield running
    assert stop_server(running) == 0


def assert_healthy(server: RunningServer) -> None:
    health = exchange(server.port, Case("health", (get(b"/health"),), 200, "ok"), timeout=10)
    assert health.status == 200, health
    good = exchange(server.port, Case("good", (predict(GOOD_BODY),), 200, "ok"), timeout=10)
    assert good.status == 200, good
    assert len(json.loads(good.body)["labels"]) == 1
    assert server.process.poll() is None


def check_shape(case: Case, reply: Reply) -> None:
    if case.shape == "closed":
        assert reply.status is None, reply
        assert reply.closed, reply
        return
    assert reply.status == case.status, reply
    if case.shape == "protocol":
        assert reply.closed, reply
        return
    assert reply.headers.get("content-type", "").startswith("application/json"), reply
    payload = json.loads(reply.body)
    if case.shape == "ok":
        return
    if case.shape == "oip":
        assert set(payload) == {"error"}, payload
        assert isinstance(payload["error"], str), payload
        assert payload["error"], payload
        return
    assert set(payload) == {"status", "reason", "message", "location", "request_id"}, payload
    assert payload["status"] == case.status, payload
    assert isinstance(payload["message"], str), payload
    assert payload["message"], payload
    assert payload["location"] is None or isinstance(payload["location"], str), payload
    assert payload["request_id"] == reply.headers.get("x-request-id"), payload
    if case.reason is not None:
        assert payload["reason"] == case.reason, payload


def test_catalogue_size() -> None:
    assert len(CASES) >= 60
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(server: RunningServer, case: Case) -> None:
    limit = max(HEADER_TIMEOUT_SECONDS, BODY_TIMEOUT_SECONDS) + SLACK_SECONDS
    reply = exchange(server.port, case, timeout=limit + 10)
    check_shape(case, reply)
    if case.timed:
        # The server, not the client, ended the exchange, within the configured timeout.
        assert reply.closed, reply
        assert reply.seconds < limit + case.pause * len(case.chunks), reply
    if reply.status == 408:
        assert reply.headers.get("connection") == "close", reply
    if "same_as" in case.expect:
        reference = exchange(
            server.port, Case("ref", (predict(case.expect["same_as"]),), 200, "ok"), 10
        )
        assert json.loads(reply.body)["labels"] == json.loads(reference.body)["labels"]
        assert (
            json.loads(reply.body)["probabilities"] == json.loads(reference.body)["probabilities"]
        )
    if "n_labels" in case.expect:
        assert len(json.loads(reply.body)["labels"]) == case.expect["n_labels"]
    if case.expect.get("no_secrets"):
        for secret in SECRETS:
            assert secret not in reply.body, reply
    assert_healthy(server)
