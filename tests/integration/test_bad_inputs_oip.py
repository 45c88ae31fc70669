"""Open Inference Protocol requests of the wrong shape or datatype against the real server:
each a 4xx with the `{"error": ...}` shape, the server healthy afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.bad_inputs import (
    INFER,
    ROW,
    Case,
    infer_body,
    limited_server,
    pixels,
    request,
    run_case,
)
from tests.integration.conftest import RunningServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CASES = [
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
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from limited_server(tmp_path_factory)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(server: RunningServer, case: Case) -> None:
    run_case(server, case)
