"""The simdjson fast paths against the msgspec paths they stand in front of.

What a fast path accepts, the msgspec path must accept too and turn into the same float32
array; everything else must fall through (None), so that the msgspec path decides and
gives its error message. Each body is decoded both ways: once as served, once with the
fast paths switched off (``MIN_BYTES`` above any body).
"""

from __future__ import annotations

import json
import random

import numpy as np
import numpy.typing as npt
import pytest

from serving.inference import json_pixels
from serving.inference.inputs import ClientError, decode_samples
from serving.inference.json_pixels import MIN_BYTES, samples_pixels, tensor_pixels
from serving.protocol.oip import OipError
from serving.protocol.oip_decode import canonical_batch, decode_request, input_batch

MAX_ROWS = 1000
ROWS = 40  # every body below is well over MIN_BYTES


def _rows(seed: int, kind: str) -> list[list[float]]:
    rng = random.Random(seed)
    if kind == "int":
        return [[rng.randint(0, 16) for _ in range(64)] for _ in range(ROWS)]
    return [[rng.randint(0, 32) / 2 for _ in range(64)] for _ in range(ROWS)]


def _predict(rows: object) -> bytes:
    return json.dumps({"samples": rows}).encode()


def _infer(data: object, shape: object = None, **extra: object) -> bytes:
    tensor = {"name": "pixels", "shape": shape or [ROWS, 64], "datatype": "FP32", "data": data}
    return json.dumps({"inputs": [tensor], **extra}).encode()


def _flat(rows: list[list[float]]) -> list[float]:
    return [value for row in rows for value in row]


def _msgspec_predict(body: bytes, monkeypatch: pytest.MonkeyPatch) -> object:
    with monkeypatch.context() as patch:
        patch.setattr(json_pixels, "MIN_BYTES", 1 << 40)
        try:
            return decode_samples(body, MAX_ROWS)
        except ClientError as exc:
            return exc


def _msgspec_infer(body: bytes, monkeypatch: pytest.MonkeyPatch) -> object:
    with monkeypatch.context() as patch:
        patch.setattr(json_pixels, "MIN_BYTES", 1 << 40)
        try:
            canonical = canonical_batch(body, MAX_ROWS)
            if canonical is not None:
                return canonical
            request = decode_request(body)
            return request.id, input_batch(request, b"", MAX_ROWS)
        except OipError as exc:
            return exc


def _same(fast: npt.NDArray[np.float32], slow: object) -> None:
    assert isinstance(slow, np.ndarray), f"the msgspec path refused what the fast path took: {slow}"
    assert fast.dtype == slow.dtype == np.float32
    assert fast.flags.c_contiguous
    np.testing.assert_array_equal(fast, slow)


def _with(rows: list[list[float]], texts: dict[tuple[int, int], str]) -> bytes:
    """A /predict body whose pixels at (row, column) are written as the raw JSON texts."""
    rows = [list(r) for r in rows]
    for index, (row, column) in enumerate(texts):
        rows[row][column] = 123456.5 + index
    body = _predict(rows)
    for index, text in enumerate(texts.values()):
        body = body.replace(str(123456.5 + index).encode(), text.encode())
    return body


PLAIN_PREDICT = [
    _predict(_rows(1, "int")),
    _predict(_rows(2, "float")),
    json.dumps({"samples": _rows(3, "float")}, indent=2).encode(),  # whitespace everywhere
    _with(_rows(4, "int"), {(0, 0): "-0.0", (1, 1): "1.6E1", (2, 2): "0.75e1", (3, 3): "16"}),
    _predict(_rows(5, "float")).replace(b'"samples"', b'"\\u0073amples"'),
    b"\n " + _predict(_rows(6, "float")) + b" \n",
]


@pytest.mark.parametrize("body", PLAIN_PREDICT)
def test_plain_predict_bodies_take_the_fast_path_and_give_the_msgspec_array(
    body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(body) >= MIN_BYTES
    fast = samples_pixels(body, MAX_ROWS)
    assert fast is not None
    assert fast.shape == (ROWS, 64)
    _same(fast, _msgspec_predict(body, monkeypatch))


BASE = _rows(7, "float")
NOT_PLAIN_PREDICT = {
    "just over 16": _with(BASE, {(3, 5): "16.000000001"}),
    "negative": _with(BASE, {(0, 0): "-0.5"}),
    "integer past 64 bits": _with(BASE, {(1, 1): "18446744073709551616"}),
    "float64 overflow": _with(BASE, {(2, 2): "1e400"}),
    "boolean": _with(BASE, {(2, 2): "true"}),
    "null": _with(BASE, {(2, 2): "null"}),
    "string": _with(BASE, {(2, 2): '"3"'}),
    "nested": _with(BASE, {(2, 2): "[3]"}),
    "object": _with(BASE, {(2, 2): '{"a": 3}'}),
    "short row": _predict([*BASE[:-1], BASE[-1][:63]]),
    "long row": _predict([*BASE[:-1], [*BASE[-1], 1.0]]),
    "ragged rows balancing out": _predict([BASE[0][:63], [*BASE[1], 1.0], *BASE[2:]]),
    "8x8 grids": _predict([[row[i : i + 8] for i in range(0, 64, 8)] for row in BASE]),
    "too many rows": _predict(BASE * 30),
    "extra field": json.dumps({"samples": BASE, "extra": 1}).encode(),
    "duplicate field": _predict(BASE)[:-1] + b', "samples": [[1]]}',
    "top-level array": json.dumps(BASE).encode(),
    "samples not an array": json.dumps({"samples": {"a": BASE}}).encode(),
    "trailing garbage": _predict(BASE) + b" x",
    "byte order mark": b"\xef\xbb\xbf" + _predict(BASE),
    "invalid UTF-8 in a key": _predict(BASE)[:-1] + b', "\xff": 1}',
    "truncated": _predict(BASE)[:-3],
}


@pytest.mark.parametrize("body", NOT_PLAIN_PREDICT.values(), ids=NOT_PLAIN_PREDICT.keys())
def test_everything_else_falls_through_to_msgspec(
    body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert samples_pixels(body, MAX_ROWS) is None
    served = _msgspec_predict(body, monkeypatch)
    with monkeypatch.context():
        try:
            as_served: object = decode_samples(body, MAX_ROWS)
        except ClientError as exc:
            as_served = exc
    if isinstance(served, ClientError):
        assert isinstance(as_served, ClientError)
        assert (as_served.status, as_served.reason, as_served.message) == (
            served.status,
            served.reason,
            served.message,
        )
    else:
        _same(as_served, served)  # type: ignore[arg-type]


def test_small_bodies_stay_with_msgspec() -> None:
    small = _predict(_rows(8, "float")[:2])
    assert len(small) < MIN_BYTES
    assert samples_pixels(small, MAX_ROWS) is None
    assert tensor_pixels(_infer(_flat(_rows(8, "int")[:1]), [1, 64]), "pixels", "FP32", 9) is None


PLAIN_INFER = {
    "float": _infer(_flat(_rows(9, "float"))),
    "int": _infer(_flat(_rows(10, "int"))),
    "with id": _infer(_flat(_rows(11, "float")), id="abc-1"),
}


@pytest.mark.parametrize("body", PLAIN_INFER.values(), ids=PLAIN_INFER.keys())
def test_plain_infer_bodies_take_the_fast_path_and_give_the_msgspec_answer(
    body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = tensor_pixels(body, "pixels", "FP32", MAX_ROWS)
    assert fast is not None
    slow = _msgspec_infer(body, monkeypatch)
    assert isinstance(slow, tuple)
    assert fast[0] == slow[0]
    _same(fast[1], slow[1])


FLAT = _flat(_rows(12, "float"))
NOT_PLAIN_INFER = {
    "8x8 shape": _infer(FLAT, [ROWS, 8, 8]),
    "shape disagrees with data": _infer(FLAT, [ROWS - 1, 64]),
    "shape not integers": _infer(FLAT, [float(ROWS), 64]),
    "nested data": _infer([FLAT[i : i + 64] for i in range(0, len(FLAT), 64)]),
    "one nested datum": _infer([*FLAT[:5], [FLAT[5]], *FLAT[6:]]),
    "bracket in the id": _infer(FLAT, id="a[b"),
    "out of range": _infer([*FLAT[:-1], 17.0]),
    "numeric id": _infer(FLAT, id=5),
    "parameters": _infer(FLAT, parameters={"binary_data_output": True}),
    "outputs": _infer(FLAT, outputs=[{"name": "label"}]),
    "other datatype": _infer(FLAT).replace(b'"FP32"', b'"FP64"'),
    "other name": _infer(FLAT).replace(b'"pixels"', b'"image"'),
    "tensor extra field": _infer(FLAT).replace(b'"datatype"', b'"x": 1, "datatype"'),
    "two inputs": json.dumps({"inputs": [json.loads(_infer(FLAT))["inputs"][0]] * 2}).encode(),
}


@pytest.mark.parametrize("body", NOT_PLAIN_INFER.values(), ids=NOT_PLAIN_INFER.keys())
def test_other_infer_bodies_fall_through(body: bytes) -> None:
    assert tensor_pixels(body, "pixels", "FP32", MAX_ROWS) is None
