"""Input-drift monitoring: a sliding window of recent pixels against the training histograms.

Each worker keeps the bin indices of its last ``window`` input rows in a preallocated
ring buffer ``[window, 64]`` (uint8) and a running count matrix ``[64, bins]``. A batch
updates the counts by subtracting the rows it evicts and adding its own rows (one
unbuffered ``np.add.at`` / ``np.subtract.at`` each over ``feature * bins + bin``, cheaper
than a full-length ``bincount`` for the small batches of single-row traffic), so the cost
is O(rows x 64) and the PSI is computed from the counts, never by rescanning the window.

PSI of one feature: ``sum_b (p_b - q_b) * ln(p_b / q_b)`` with ``p`` the window's and
``q`` the training distribution over the reference bins; empty bins are floored at
``PSI_EPSILON`` so the PSI stays finite (a bin empty on both sides contributes 0).
The drift score is the mean PSI over the 64 pixels; it is 0 until the window holds
``min_rows`` rows, so a handful of requests cannot raise an alert.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import numpy as np
import numpy.typing as npt

from serving.lineage import LineageError

PSI_EPSILON = 1e-4
TOP_K = 5
PENDING_MAX_ROWS = 64  # observe: small batches are added to the window together
SEARCHSORTED_MAX_ROWS = 8  # bin_indices: small batches take one searchsorted call
N_FEATURES = 64
GRID = 8


class ReferenceStats(msgspec.Struct, frozen=True):
    """The fields of ``data/prepared/reference_stats.json`` drift monitoring uses."""

    feature_count: int
    n_train: int
    bin_edges: list[float]
    histograms: list[list[int]]


class FeaturePsi(msgspec.Struct):
    feature: int
    row: int
    column: int
    psi: float


class DriftReport(msgspec.Struct):
    """The drift state of one worker's window (``GET /drift``)."""

    pid: int
    ready: bool
    window_size: int
    window_rows: int
    window_fill: float
    min_rows: int
    rows_seen: int
    psi_threshold: float
    score: float
    score_definition: str
    psi_max: float
    psi_mean: float
    features_over_threshold: int
    top_features: list[FeaturePsi]


SCORE_DEFINITION = (
    "mean over the 64 pixels of the PSI between the window's and the training pixel-value "
    "histograms (17 bins, one per integer level 0..16); 0 until the window holds min_rows rows"
)


class DriftSummary(msgspec.Struct, frozen=True):
    """What the Prometheus gauges show."""

    score: float
    psi_max: float
    psi_mean: float
    features_over_threshold: int
    window_fill: float


def parse_reference(data: bytes, path: Path) -> ReferenceStats:
    """Decode and shape-check the reference statistics, or raise :class:`LineageError`."""
    try:
        stats = msgspec.json.decode(data, type=ReferenceStats)
    except msgspec.DecodeError as exc:
        raise LineageError("artifact_invalid", f"{path}: cannot be parsed: {exc}") from None
    bins = len(stats.bin_edges) - 1
    edges = np.asarray(stats.bin_edges, dtype=np.float64)
    problems = []
    if stats.feature_count != N_FEATURES or len(stats.histograms) != N_FEATURES:
        problems.append(f"expected {N_FEATURES} feature histograms")
    if bins < 2 or not bool(np.all(np.diff(edges) > 0)):
        problems.append("bin_edges must be at least 3 increasing values")
    if any(len(row) != bins or sum(row) <= 0 for row in stats.histograms):
        problems.append(f"every histogram needs {bins} counts with a positive total")
    if problems:
        raise LineageError("artifact_invalid", f"{path}: {'; '.join(problems)}")
    return stats


def proportions(counts: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Row-normalised ``[features, bins]`` counts, with empty bins floored at ``PSI_EPSILON``."""
    totals = counts.sum(axis=1, keepdims=True)
    share: npt.NDArray[np.float64] = np.maximum(counts / np.maximum(totals, 1), PSI_EPSILON)
    return share


def psi_per_feature(
    current: npt.NDArray[np.float64], reference: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """PSI of each feature: ``sum_b (p - q) * ln(p / q)`` over ``[features, bins]`` proportions."""
    result: npt.NDArray[np.float64] = ((current - reference) * np.log(current / reference)).sum(
        axis=1
    )
    return result


class DriftMonitor:
    """A bounded window of recent inputs and its PSI against the training reference."""

    def __init__(
        self, reference: ReferenceStats, window: int, min_rows: int, threshold: float
    ) -> None:
        self.window = window
        self.min_rows = min(min_rows, window)
        self.threshold = threshold
        self._edges = np.asarray(reference.bin_edges[1:-1], dtype=np.float32)
        self.bins = len(reference.bin_edges) - 1
        self._offsets = (np.arange(N_FEATURES, dtype=np.intp) * self.bins)[None, :]
        self._reference = proportions(np.asarray(reference.histograms, dtype=np.int64))
        self._buffer = np.zeros((window, N_FEATURES), dtype=np.uint8)
        self._counts = np.zeros(N_FEATURES * self.bins, dtype=np.int64)
        self._head = 0
        self._rows = 0
        self._rows_seen = 0
        self._pending: list[npt.NDArray[np.float32]] = []
        self._pending_rows = 0
        self._lock = threading.Lock()
        self._publish: Callable[[DriftSummary], None] | None = None
        self._publish_interval = 0.0
        self._clock: Callable[[], float] = time.monotonic
        self._published_at = -float("inf")

    def attach(
        self,
        publish: Callable[[DriftSummary], None],
        interval_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Call ``publish(summary)`` after a batch at most every ``interval_seconds``."""
        self._publish, self._publish_interval, self._clock = publish, interval_seconds, clock
        self.publish()

    def publish(self) -> None:
        """Publish the current summary now (e.g. right before a scrape)."""
        if self._publish is not None:
            self._published_at = self._clock()
            self._publish(self.summary())

    def _publish_if_due(self) -> None:
        if self._publish is not None and (
            self._clock() - self._published_at >= self._publish_interval
        ):
            self.publish()

    def bin_indices(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        """Reference bin of every pixel (values beyond the outer edges go to the outer bins).

        The same result as ``np.searchsorted(edges, X, side="right")``, which it is for
        small batches; above ``SEARCHSORTED_MAX_ROWS`` rows, counting the edges each
        value has reached (one comparison per edge over the whole batch) is faster, and
        slower for a row or two, so both are kept.
        """
        if X.shape[0] <= SEARCHSORTED_MAX_ROWS:
            return np.searchsorted(self._edges, X, side="right").astype(np.uint8)
        indices = np.zeros(X.shape, dtype=np.uint8)
        for edge in self._edges:
            indices += edge <= X
        return indices

    def _flat(self, bins: npt.NDArray[np.uint8]) -> npt.NDArray[np.intp]:
        return (bins + self._offsets).ravel()

    def observe(self, X: npt.NDArray[np.float32]) -> None:
        """Add a ``[n, 64]`` batch to the window; publish the summary when due.

        Small batches are queued and added together once ``PENDING_MAX_ROWS`` rows are
        waiting (one binning and one count update instead of one per model call); every
        read (counts, rows, PSI, summary, report) adds the queued rows first, so what it
        sees is exactly as if each batch had been added at once. ``X`` is kept by
        reference until then: callers never mutate a batch after the model saw it.
        """
        self._pending.append(X)
        self._pending_rows += X.shape[0]
        if self._pending_rows >= PENDING_MAX_ROWS:
            self._add_pending()
        self._publish_if_due()

    def _add_pending(self) -> None:
        if not self._pending:
            return
        pending, self._pending, self._pending_rows = self._pending, [], 0
        self._add(pending[0] if len(pending) == 1 else np.concatenate(pending))

    @property
    def rows(self) -> int:
        """Rows in the window (at most ``window``)."""
        self._add_pending()
        return self._rows

    @property
    def rows_seen(self) -> int:
        """Rows observed since start-up."""
        self._add_pending()
        return self._rows_seen

    def _add(self, X: npt.NDArray[np.float32]) -> None:
        """Add a ``[n, 64]`` batch to the window, evicting the oldest rows beyond its size."""
        bins = self.bin_indices(X[-self.window :])
        n = bins.shape[0]
        size = self._counts.size
        with self._lock:
            self._rows_seen += X.shape[0]
            if n == self.window:
                self._buffer[:] = bins
                self._counts[:] = np.bincount(self._flat(bins), minlength=size)
                self._head, self._rows = 0, self.window
                return
            first = min(n, self.window - self._head)
            segments = ((self._head, first, 0), (0, n - first, first))
            for start, length, offset in segments:
                if length == 0:
                    continue
                target = self._buffer[start : start + length]
                evicted = max(0, min(length, self._rows - start))
                if evicted:
                    np.subtract.at(self._counts, self._flat(target[:evicted]), 1)
                incoming = bins[offset : offset + length]
                target[:] = incoming
                np.add.at(self._counts, self._flat(incoming), 1)
            self._head = (self._head + n) % self.window
            self._rows = min(self.window, self._rows + n)

    def counts(self) -> npt.NDArray[np.int64]:
        """The window's ``[64, bins]`` histogram (a copy)."""
        self._add_pending()
        with self._lock:
            return self._counts.reshape(N_FEATURES, self.bins).copy()

    def window_rows(self) -> npt.NDArray[np.uint8]:
        """The bin indices of the rows in the window, oldest first (for tests)."""
        self._add_pending()
        with self._lock:
            if self._rows < self.window:
                return self._buffer[: self._rows].copy()
            return np.roll(self._buffer, -self._head, axis=0)

    @property
    def ready(self) -> bool:
        return self.rows >= self.min_rows

    def psi(self) -> npt.NDArray[np.float64]:
        """Per-feature PSI of the window against the reference (zeros while not ready)."""
        if not self.ready:
            return np.zeros(N_FEATURES, dtype=np.float64)
        return psi_per_feature(proportions(self.counts()), self._reference)

    def summary(self) -> DriftSummary:
        values = self.psi()
        return DriftSummary(
            score=float(values.mean()),
            psi_max=float(values.max()),
            psi_mean=float(values.mean()),
            features_over_threshold=int((values > self.threshold).sum()),
            window_fill=self.rows / self.window,
        )

    def report(self, top_k: int = TOP_K) -> DriftReport:
        values = self.psi()
        order = np.argsort(-values, kind="stable")[:top_k].tolist() if self.ready else []
        grid = GRID
        return DriftReport(
            pid=os.getpid(),
            ready=self.ready,
            window_size=self.window,
            window_rows=self.rows,
            window_fill=self.rows / self.window,
            min_rows=self.min_rows,
            rows_seen=self.rows_seen,
            psi_threshold=self.threshold,
            score=float(values.mean()),
            score_definition=SCORE_DEFINITION,
            psi_max=float(values.max()),
            psi_mean=float(values.mean()),
            features_over_threshold=int((values > self.threshold).sum()),
            top_features=[
                FeaturePsi(feature=j, row=j // grid, column=j % grid, psi=float(values[j]))
                for j in order
            ],
        )
