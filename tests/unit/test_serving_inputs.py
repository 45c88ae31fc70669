"""serving.inference.inputs: decoding, 8x8 flattening and every client error with its location."""

from __future__ import annotations

import json

import msgspec
import numpy as np
import pytest

from serving.inference.inputs import ClientError, decode_samples
from serving.schemas import EXAMPLE_DIGIT, EXAMPLE_FLAT

pytestmark = pytest.mark.unit
MAX_ROWS = 1000


def body(samples: object) -> bytes:
    return json.dumps({"samples": samples}).encode()


def rejected(raw: bytes, max_rows: int = MAX_ROWS) -> ClientError:
    with pytest.raises(ClientError) as caught:
        decode_samples(raw, max_rows)
    return caught.value


def test_flat_sample_decodes_to_float32_rows() -> None:
    X = decode_samples(body([EXAMPLE_FLAT, [16] * 64]), MAX_ROWS)
    assert X.dtype == np.float32
    assert X.shape == (2, 64)
    assert X.flags.c_contiguous
    np.testing.assert_array_equal(X[0], np.asarray(EXAMPLE_FLAT, dtype=np.float32))


def test_nested_sample_is_flattened_row_major() -> None:
    nested = decode_samples(body([EXAMPLE_DIGIT]), MAX_ROWS)
    flat = decode_samples(body([EXAMPLE_FLAT]), MAX_ROWS)
    assert nested.shape == (1, 64)
    np.testing.assert_array_equal(nested, flat)
    assert nested[0, 8 * 1 + 2] == EXAMPLE_DIGIT[1][2]


def test_flat_and_nested_samples_may_be_mixed() -> None:
    X = decode_samples(body([EXAMPLE_DIGIT, EXAMPLE_FLAT, [0.5] * 64]), MAX_ROWS)
    assert X.shape == (3, 64)
    np.testing.assert_array_equal(X[0], X[1])
    assert float(X[2, 0]) == 0.5


def test_boundaries_zero_and_sixteen_and_floats_are_accepted() -> None:
    X = decode_samples(body([[0.0] * 32 + [16.0] * 31 + [7.25]]), MAX_ROWS)
    assert float(X.min()) == 0.0
    assert float(X.max()) == 16.0


def test_max_rows_exactly_is_accepted() -> None:
    assert decode_samples(body([EXAMPLE_FLAT] * 5), 5).shape == (5, 64)


@pytest.mark.parametrize(
    ("raw", "status", "reason", "location"),
    [
        (b'{"samples": [[1, 2', 400, "malformed_json", None),
        (b"not json", 400, "malformed_json", None),
        (b'{"samples": [[NaN]]}', 400, "malformed_json", None),
        (b'{"samples": [[Infinity]]}', 400, "malformed_json", None),
        (b'{"samples": []}', 400, "empty", "samples"),
        (b"{}", 400, "missing_field", "samples"),
        (b"[]", 400, "invalid_type", "body"),
        (b'{"samples": [[1]], "extra": 1}', 400, "unknown_field", "extra"),
        (b'{"samples": "abc"}', 400, "invalid_type", "samples"),
        (b'{"samples": [["1"]]}', 400, "invalid_type", "samples[0][0]"),
        (b'{"samples": [[true]]}', 400, "invalid_type", "samples[0][0]"),
        (b'{"samples": [[null]]}', 400, "invalid_type", "samples[0][0]"),
        (b'{"samples": [[[[1]]]]}', 400, "invalid_type", "samples[0][0][0]"),
    ],
)
def test_malformed_bodies(raw: bytes, status: int, reason: str, location: str | None) -> None:
    error = rejected(raw)
    assert (error.status, error.reason) == (status, reason)
    if location is not None:
        assert error.location == location
    assert error.message


def _row_with(value: float, at: int) -> list[float]:
    row = [1.0] * 64
    row[at] = value
    return row


@pytest.mark.parametrize("value", [-0.001, 16.001, 1e6, -5])
def test_out_of_range_points_at_the_value(value: float) -> None:
    samples = [EXAMPLE_FLAT] * 3 + [_row_with(value, 12)]
    error = rejected(body(samples))
    assert (error.status, error.reason, error.location) == (400, "out_of_range", "samples[3][12]")
    assert "0..16" in error.message


def test_overflowing_number_is_out_of_range_not_infinity() -> None:
    error = rejected(b'{"samples": [[1, 1e999]]}')
    assert (error.reason, error.location) == ("out_of_range", "samples[0][1]")


def test_out_of_range_in_nested_sample() -> None:
    grid = [list(map(float, row)) for row in EXAMPLE_DIGIT]
    grid[2][5] = 99.0
    error = rejected(body([grid]))
    assert (error.reason, error.location) == ("out_of_range", "samples[0][2][5]")


@pytest.mark.parametrize("length", [0, 1, 63, 65, 128])
def test_wrong_flat_row_length(length: int) -> None:
    error = rejected(body([EXAMPLE_FLAT, [1.0] * length]))
    assert (error.status, error.reason, error.location) == (400, "row_length", "samples[1]")
    assert f"has {length} numbers" in error.message


def test_wrong_number_of_nested_rows() -> None:
    error = rejected(body([EXAMPLE_DIGIT[:7]]))
    assert (error.reason, error.location) == ("row_length", "samples[0]")


def test_ragged_nested_row() -> None:
    grid = [list(row) for row in EXAMPLE_DIGIT]
    grid[4] = grid[4][:7]
    error = rejected(body([EXAMPLE_FLAT, grid]))
    assert (error.status, error.reason, error.location) == (400, "ragged", "samples[1][4]")


def test_numbers_mixed_with_lists_in_one_sample() -> None:
    error = rejected(body([[1.0, [1.0] * 8] + [1.0] * 6]))
    assert (error.reason, error.location) == ("ragged", "samples[0][1]")


def test_too_many_rows_names_the_limit() -> None:
    error = rejected(body([EXAMPLE_FLAT] * 6), max_rows=5)
    assert (error.status, error.reason, error.location) == (413, "too_many_rows", "samples")
    assert "limit of 5" in error.message


def test_large_request_round_trips_exactly() -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 17, size=(1000, 64)).astype(np.float32)
    X = decode_samples(msgspec.json.encode({"samples": data.tolist()}), MAX_ROWS)
    np.testing.assert_array_equal(X, data)


def test_integer_rows_decode_exactly_like_the_same_values_as_floats() -> None:
    """The integer fast path and the general path give identical arrays."""
    rng = np.random.default_rng(7)
    rows = rng.integers(0, 17, size=(300, 64))
    from_ints = decode_samples(body(rows.tolist()), MAX_ROWS)
    from_floats = decode_samples(body(rows.astype(float).tolist()), MAX_ROWS)
    assert from_ints.dtype == np.float32
    assert from_ints.flags.c_contiguous
    assert from_ints.flags.writeable
    np.testing.assert_array_equal(from_ints, rows.astype(np.float32))
    np.testing.assert_array_equal(from_ints, from_floats)


@pytest.mark.parametrize(
    ("samples", "reason", "location"),
    [
        ([[0] * 63 + [17]], "out_of_range", "samples[0][63]"),
        ([[0] * 63 + [-1]], "out_of_range", "samples[0][63]"),
        ([[0] * 63], "row_length", "samples[0]"),
        ([[0] * 65], "row_length", "samples[0]"),
        ([[0] * 64, [True] * 64], "invalid_type", "samples[1][0]"),
        ([], "empty", "samples"),
    ],
)
def test_integer_rows_with_errors_get_the_general_answer(
    samples: list[list[object]], reason: str, location: str
) -> None:
    error = rejected(body(samples))
    assert (error.status, error.reason, error.location) == (400, reason, location)


def test_too_many_integer_rows_are_refused_before_conversion() -> None:
    error = rejected(body([[1] * 64] * 6), max_rows=5)
    assert (error.status, error.reason) == (413, "too_many_rows")
