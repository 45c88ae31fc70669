"""Dynamic micro-batching with no added latency: one model call per event-loop iteration.

Validated requests that reach the model in the same event-loop iteration are stacked
into one ONNX Runtime call (one GIL release and thread hand-off, one drift-window
update, one class-counter update per batch). The first request of a batch schedules
the flush with ``loop.call_soon`` (no timer); requests submitted before the loop gets
to it join the batch; the flush resolves each request's future with its own rows.

Per-row results do not depend on batch composition as long as ONNX Runtime sees at
least two rows: its single-row kernel sums in a different order (probabilities differ
in the last bits). A lone single-row batch is therefore run with its row twice, so a
row's answer is the same whatever it was batched with
(tests/integration/test_batching_composition.py).

A failing batch is retried request by request, so an error reaches only the request
that causes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
# Per-row labels [n], probabilities [n, k] and out-of-distribution scores [n].
Prediction = tuple[IntArray, FloatArray, FloatArray]


class MicroBatcher:
    """Stacks the samples submitted in one event-loop iteration into one ``infer`` call.

    ``infer(X)`` returns per-row labels ``[n]``, probabilities ``[n, k]`` and OOD scores
    ``[n]`` for a ``[n, 64]`` batch; ``observe(X, labels, ood_scores)`` records a batch that
    succeeded (drift window, class and OOD counters), once per model call;
    ``count_requests(rows)`` gets the row count of every submitted request, once per flush.
    """

    def __init__(
        self,
        infer: Callable[[FloatArray], Prediction],
        observe: Callable[[FloatArray, IntArray, FloatArray], None],
        count_requests: Callable[[list[int]], None] = lambda rows: None,
    ) -> None:
        self._infer = infer
        self._observe = observe
        self._count_requests = count_requests
        self._pending: list[tuple[FloatArray, asyncio.Future[Prediction]]] = []

    def submit(self, X: FloatArray) -> asyncio.Future[Prediction]:
        """A future for ``X``'s prediction, resolved by this iteration's flush."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Prediction] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((X, future))
        return future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        self._count_requests([X.shape[0] for X, _ in pending])
        live = [(X, future) for X, future in pending if not future.done()]
        if not live:
            return
        stacked = live[0][0] if len(live) == 1 else np.concatenate([X for X, _ in live])
        try:
            prediction = self._run(stacked)
        except Exception as exc:
            if len(live) == 1:
                live[0][1].set_exception(exc)
                return
            for X, future in live:  # one by one: an error reaches only its own request
                try:
                    future.set_result(self._run(X))
                except Exception as own:
                    future.set_exception(own)
            return
        start = 0
        for X, future in live:
            stop = start + X.shape[0]
            labels, probabilities, scores = prediction
            future.set_result((labels[start:stop], probabilities[start:stop], scores[start:stop]))
            start = stop

    def _run(self, X: FloatArray) -> Prediction:
        if X.shape[0] == 1:  # at least two rows: the same kernel as any larger batch
            labels, probabilities, scores = self._infer(np.concatenate([X, X]))
            labels, probabilities, scores = labels[:1], probabilities[:1], scores[:1]
        else:
            labels, probabilities, scores = self._infer(X)
        self._observe(X, labels, scores)
        return labels, probabilities, scores
