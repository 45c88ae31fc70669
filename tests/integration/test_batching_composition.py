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
from serving.state import service_of
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
    load_model(service_of(service))
    assert service_of(service).predictor.model is not None
    return service


def count_model_calls(app: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows of each call of the app's model from now on (the model itself answers)."""
    model = service_of(app).predictor.model
    assert model is not None
    predict_rows = model.predict_rows
    calls: list[int] = []

    def counted(X: Any) -> Any:
        calls.append(X.shape[0])
        return predict_rows(X)

    monkeypatch.setattr(model, "predict_rows", counted)
    return calls


def _samples(n: int) -> list[list[int]]:
    return np.random.default_rng(7).integers(0, 17, size=(n, 64)).tolist()  # type: ignore[no-any-return]


def test_served_rows_do_not_depend_on_batch_composition(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    samples = _samples(12)

    async def go() -> tuple[list[Any], list[Any], Any, list[Any]]:
        alone = [await _call(app, "/predict", {"samples": [row]}) for row in samples]
        calls = count_model_calls(app, monkeypatch)
        together = await asyncio.gather(
            *(_call(app, "/predict", {"samples": [row]}) for row in samples)
        )
        batched = list(calls)
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
    assert batched == [len(samples)]  # one model call for the concurrent requests
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


def test_explain_and_predict_share_the_inference_layer(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/explain goes through the same predictor as /predict and OIP: requests that arrive
    together are one batched model call, and the rows-per-request histogram counts each."""
    samples = _samples(5)
    rows = service_of(app).metrics.rows

    def counted_requests() -> float:
        return sum(
            sample.value
            for metric in rows.collect()
            for sample in metric.samples
            if sample.name.endswith("_count")
        )

    before = counted_requests()

    async def go() -> list[tuple[int, Any]]:
        calls.clear()
        return list(
            await asyncio.gather(
                _call(app, "/predict", {"samples": samples[:3]}),
                _call(app, "/explain", {"samples": samples[3:]}),
            )
        )

    calls = count_model_calls(app, monkeypatch)
    (predict_status, predicted), (explain_status, explained) = asyncio.run(go())
    assert (predict_status, explain_status) == (200, 200), (predicted, explained)
    assert calls == [5]  # one model call for both (the occlusion runs are the model's own)
    assert counted_requests() - before == 2
    alone = asyncio.run(_call(app, "/predict", {"samples": samples[3:]}))[1]
    assert [row["label"] for row in explained["explanations"]] == alone["labels"]
