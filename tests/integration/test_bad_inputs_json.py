"""Hostile and malformed JSON bodies of /predict and /explain against the real server: deep
nesting, huge numbers, strings, keys, duplicates, NUL bytes, encodings (the catalogue's decided
behaviours: tests/integration/bad_inputs.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.bad_inputs import (
    DEEP,
    GOOD_BODY,
    INFER,
    ROW,
    ROW_JSON,
    ZEROS_TAIL,
    Case,
    infer_body,
    limited_server,
    pixels,
    predict,
    request,
    run_case,
)
from tests.integration.conftest import RunningServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

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
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from limited_server(tmp_path_factory)


def test_catalogue_size() -> None:
    """The whole catalogue (this file, the OIP and the HTTP ones): at least 60 cases, each
    named once, so a test id names one case."""
    from tests.integration.test_bad_inputs_http import CASES as HTTP_CASES
    from tests.integration.test_bad_inputs_oip import CASES as OIP_CASES

    catalogue = [*CASES, *OIP_CASES, *HTTP_CASES]
    assert len(catalogue) >= 60
    assert len({case.name for case in catalogue}) == len(catalogue)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(server: RunningServer, case: Case) -> None:
    run_case(server, case)
