"""Micro-batching: concurrent requests share one model call, an error reaches only its own
request (served answers under batching: tests/integration/test_batching_composition.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from serving.inference.batching import MicroBatcher, Prediction

pytestmark = pytest.mark.unit
REPO_ROOT = Path(__file__).resolve().parents[2]


def _poisoned_model(calls: list[int]) -> MicroBatcher:
    def infer(X: npt.NDArray[np.float32]) -> Prediction:
        calls.append(X.shape[0])
        if (X == 13).any():
            raise RuntimeError("poisoned row")
        return X[:, 0].astype(np.int64), X[:, :2] * 2, (X[:, 1] / 4).astype(np.float32)

    return MicroBatcher(infer, lambda X, labels, scores: None)


def test_an_error_reaches_only_its_own_request() -> None:
    calls: list[int] = []
    batcher = _poisoned_model(calls)
    rows = [np.full((2, 64), value, dtype=np.float32) for value in (1, 13, 3)]

    async def go() -> list[Any]:
        return list(
            await asyncio.gather(*(batcher.submit(X) for X in rows), return_exceptions=True)
        )

    good, poisoned, other = asyncio.run(go())
    assert isinstance(poisoned, RuntimeError)
    assert good[0].tolist() == [1, 1]
    assert other[0].tolist() == [3, 3]
    np.testing.assert_array_equal(other[1], np.full((2, 2), 6, dtype=np.float32))
    np.testing.assert_array_equal(other[2], np.full(2, 0.75, dtype=np.float32))
    assert calls == [6, 2, 2, 2]  # the batch, then each request alone


def test_a_lone_row_runs_as_two_and_cancelled_requests_are_skipped() -> None:
    calls: list[int] = []
    batcher = _poisoned_model(calls)

    async def go() -> Prediction:
        cancelled = batcher.submit(np.ones((3, 64), dtype=np.float32))
        cancelled.cancel()
        return await batcher.submit(np.full((1, 64), 5, dtype=np.float32))

    labels, probabilities, scores = asyncio.run(go())
    assert labels.tolist() == [5]
    assert probabilities.shape == (1, 2)
    assert scores.tolist() == [1.25]
    assert calls == [2]


def test_rows_observed_per_batch_equal_one_observation_per_request() -> None:
    from prometheus_client import Histogram

    from serving.monitoring.metrics import ROWS_BUCKETS, ServiceMetrics

    metrics = ServiceMetrics()
    batched = Histogram("test_rows_batched", "t", buckets=ROWS_BUCKETS, registry=None)
    single = Histogram("test_rows_single", "t", buckets=ROWS_BUCKETS, registry=None)
    metrics.rows = batched
    rows = [1, 1, 1, 3, 1000, 1, 3, 7, 5000, 4999, 12, 1]
    metrics.observe_rows(rows)
    for value in rows:
        single.observe(value)

    def state(histogram: Any) -> tuple[float, list[float]]:
        return histogram._sum.get(), [bucket.get() for bucket in histogram._buckets]

    assert state(batched) == state(single)
    assert state(single)[0] == sum(rows)


@pytest.mark.parametrize(("value", "times"), [(1, 1), (3, 4), (1000, 2), (10_000, 3), (0.5, 7)])
def test_observe_repeated_equals_repeated_observe_on_the_locked_prometheus_client(
    value: float, times: int
) -> None:
    """``observe_repeated`` writes prometheus_client's private Histogram fields, so it is
    pinned to the locked version: a new version must pass this test before it is locked."""
    import re
    from importlib import metadata

    from prometheus_client import Histogram

    from serving.monitoring.metrics import ROWS_BUCKETS, observe_repeated

    lock = (REPO_ROOT / "requirements" / "serving.lock").read_text(encoding="utf-8")
    locked = re.search(r"^prometheus-client==(\S+)", lock, re.MULTILINE)
    assert locked is not None
    assert metadata.version("prometheus-client") == locked.group(1)
    repeated = Histogram("test_repeated", "t", buckets=ROWS_BUCKETS, registry=None)
    single = Histogram("test_single", "t", buckets=ROWS_BUCKETS, registry=None)
    observe_repeated(repeated, value, times)
    for _ in range(times):
        single.observe(value)

    def state(histogram: Any) -> tuple[float, list[float]]:
        return histogram._sum.get(), [bucket.get() for bucket in histogram._buckets]

    assert state(repeated) == state(single)
