"""The canonical OIP infer request takes a dedicated decoder and answers the same bytes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving.app import create_app, load_model
from serving.protocol.oip_decode import canonical_batch
from serving.settings import Settings
from serving.state import service_of
from tests.integration.asgi import post_raw

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]
PATH = "/v2/models/digits-classifier/infer"
ROWS = np.random.default_rng(3).integers(0, 17, size=(3, 64)).tolist()
FLAT = [float(value) for row in ROWS for value in row]
INTS = [int(value) for value in FLAT]  # the same pixels as JSON integers (integer decoder)


def _tensor(**changes: Any) -> dict[str, Any]:
    return {"name": "pixels", "shape": [3, 64], "datatype": "FP32", "data": FLAT, **changes}


async def _raw_call(app: Any, body: bytes) -> tuple[int, bytes]:
    return await post_raw(app, PATH, body)


@pytest.mark.parametrize(
    "request_object",
    [
        {"inputs": [_tensor()]},
        {"inputs": [_tensor()], "id": "abc"},
        {"inputs": [_tensor(shape=[3, 8, 8])]},
        {"inputs": [_tensor(shape=[1, 64], data=FLAT[:64])], "id": "one"},
        {"inputs": [_tensor(data=INTS)]},
        {"inputs": [_tensor(shape=[3, 8, 8], data=INTS)], "id": "ints"},
        {"inputs": [_tensor(data=[*INTS[:-1], 7.5])]},  # one float: the float decoder
    ],
)
def test_canonical_answer_is_byte_identical_to_the_general_path(
    request_object: dict[str, Any],
) -> None:
    settings = Settings(lock_file_path=str(REPO_ROOT / "dvc.lock"), max_rows=50)
    app: Any = create_app(settings)
    load_model(service_of(app))
    canonical = json.dumps(request_object).encode()
    assert canonical_batch(canonical, 50) is not None
    general = json.dumps({**request_object, "parameters": {}}).encode()
    assert canonical_batch(general, 50) is None

    async def go() -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        return await _raw_call(app, canonical), await _raw_call(app, general)

    (status, fast), (general_status, slow) = asyncio.run(go())
    assert status == general_status == 200
    assert fast == slow
    assert json.loads(fast)["outputs"][0]["shape"] == [request_object["inputs"][0]["shape"][0]]


@pytest.mark.parametrize(
    "request_object",
    [
        {"inputs": [_tensor(datatype="FP64")]},
        {"inputs": [_tensor(data=[*FLAT[:-1], 17.0])]},
        {"inputs": [_tensor(data=[*FLAT[:-1], 16.000001])]},
        {"inputs": [_tensor(data=[*FLAT[:-1], -0.5])]},
        {"inputs": [_tensor(data=FLAT[:-1])]},
        {"inputs": [_tensor(data=INTS[:-1])]},
        {"inputs": [_tensor(data=[*INTS[:-1], 17])]},
        {"inputs": [_tensor(data=[*INTS[:-1], -1])]},
        {"inputs": [_tensor(datatype="INT32", data=INTS)]},
        {"inputs": [_tensor(name="image")]},
        {"inputs": [_tensor(shape=[3, 4, 16])]},
        {"inputs": [_tensor(shape=[0, 64], data=[])]},
        {"inputs": [_tensor(), _tensor()]},
        {"inputs": [_tensor()], "outputs": [{"name": "label"}]},
        {"inputs": [_tensor(parameters={"binary_data_size": 4})]},
    ],
)
def test_anything_else_takes_the_general_path(request_object: dict[str, Any]) -> None:
    assert canonical_batch(json.dumps(request_object).encode(), 50) is None


def test_row_limit_and_malformed_bodies_take_the_general_path() -> None:
    assert canonical_batch(json.dumps({"inputs": [_tensor()]}).encode(), 2) is None
    assert canonical_batch(b'{"inputs": [', 50) is None
    canonical = canonical_batch(json.dumps({"inputs": [_tensor()]}).encode(), 3)
    assert canonical is not None
    np.testing.assert_array_equal(canonical[1], np.asarray(ROWS, dtype=np.float32))


def test_integer_and_float_pixels_give_the_same_batch() -> None:
    def batch(data: list[Any]) -> np.ndarray:
        decoded = canonical_batch(json.dumps({"inputs": [_tensor(data=data)]}).encode(), 50)
        assert decoded is not None
        return decoded[1]

    from_ints, from_floats = batch(INTS), batch(FLAT)
    assert from_ints.dtype == from_floats.dtype == np.float32
    np.testing.assert_array_equal(from_ints, from_floats)
    np.testing.assert_array_equal(from_ints, np.asarray(ROWS, dtype=np.float32))
