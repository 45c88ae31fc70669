"""Micro-batching over the locked model: a served row's answer is the same, bit for bit, whatever
it was batched with (the batcher's own rules are in tests/unit/test_batching.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest

from serving.app import create_app, load_model
from serving.settings import Settings
from tests.conftest import REPO_ROOT
from tests.integration.asgi import post_raw

pytestmark = pytest.mark.integration
OIP_PATH = "/v2/models/digits-classifier/infer"


async def _call(app: Any, path: str, payload: Any) -> tuple[int, Any]:
    status, body = await post_raw(app, path, json.dumps(payload).encode())
    return status, json.loads(body)


@pytest.fixture(scope="module")
def app() -> Any:
    settings = Settings(lock_file_path=str(REPO_ROOT / "dvc.lock"), max_rows=50)
    service: Any = create_app(settings)
    load_model(service.service_state)
    assert service.service_state.model is not None
    return service


def _samples(n: int) -> list[list[int]]:
    return np.random.default_rng(7).integers(0, 17, size=(n, 64)).tolist()  # type: ignore[no-any-return]


def test_served_rows_do_not_depend_on_batch_composition(app: Any) -> None:
    samples = _samples(12)

    async def go() -> tuple[list[Any], list[Any], Any, list[Any]]:
        alone = [await _call(app, "/predict", {"samples": [row]}) for row in samples]
        before = (app.batcher.batches, app.batcher.requests)
        together = await asyncio.gather(
            *(_call(app, "/predict", {"samples": [row]}) for row in samples)
        )
        batched = (app.batcher.batches - before[0], app.batcher.requests - before[1])
        many = await _call(app, "/predict", {"samples": samples})
        flat = [value for row in samples[:1] for value in row]
        tensor = {"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": flat}
        mixed = await asyncio.gather(
            _call(app, OIP_PATH, {"inputs": [tensor]}),
            _call(app, "/predict", {"samples": samples[1:5]}),
            _call(app, "/predict", {"samples": [[99] * 64]}),  # invalid: never joins a batch
        )
        return alone, list(together), (batched, many), list(mixed)

    alone, together, (batched, many), mixed = asyncio.run(go())
    assert batched == (1, len(samples))  # one model call for the concurrent requests
    assert all(status == 200 for status, _ in [*alone, *together, many])
    many_rows = list(zip(many[1]["labels"], many[1]["probabilities"], strict=True))
    for index, ((_, one), (_, joint)) in enumerate(zip(alone, together, strict=True)):
        # Exact equality (not approx): the same bits whatever the row was batched with.
        assert (one["labels"][0], one["probabilities"][0]) == many_rows[index]
        assert (joint["labels"][0], joint["probabilities"][0]) == many_rows[index]
    (oip_status, oip), (rows_status, rows), (bad_status, bad) = mixed
    assert (oip_status, rows_status, bad_status) == (200, 200, 400)
    assert bad["reason"] == "out_of_range"
    outputs = {output["name"]: output["data"] for output in oip["outputs"]}
    assert outputs["probabilities"] == many[1]["probabilities"][0]
    assert rows["probabilities"] == many[1]["probabilities"][1:5]
