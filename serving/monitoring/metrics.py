"""Prometheus metrics, correct across worker processes (prometheus_client multiprocess mode).

``PROMETHEUS_MULTIPROC_DIR`` must be set before ``prometheus_client`` is first
imported; the launcher (``python -m serving``) and :func:`ensure_multiproc_dir`
take care of that. Labels are bounded: route templates (or ``unmatched``), the methods the
routes answer (or ``other``, :mod:`serving.http.observe`), status codes, class labels and a
fixed set of validation failure reasons.
"""

from __future__ import annotations

import bisect
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psutil

from serving.monitoring.access_metrics import AccessMetrics
from serving.monitoring.family import unregistered
from serving.monitoring.feedback_metrics import FeedbackMetrics

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SMALL_BATCH = 32
ROWS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


def ensure_multiproc_dir(wipe: bool) -> Path:
    """Make sure ``PROMETHEUS_MULTIPROC_DIR`` names an existing directory; optionally empty it.

    When unset, a private directory is created under the system temp dir (works with a
    read-only root file system and a writable /tmp).
    """
    configured = os.environ.get(MULTIPROC_ENV)
    if configured:
        directory = Path(configured)
        directory.mkdir(parents=True, exist_ok=True)
    else:
        directory = Path(tempfile.mkdtemp(prefix="digits-prometheus-"))
        os.environ[MULTIPROC_ENV] = str(directory)
    if wipe:
        for entry in directory.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    return directory


class ServiceMetrics:
    """The service's metric families, created once per worker process."""

    def __init__(self) -> None:
        ensure_multiproc_dir(wipe=False)
        from prometheus_client import Counter, Gauge, Histogram, values

        if values.ValueClass is values.MutexValue:
            # prometheus_client was imported before the directory was configured.
            values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        counter, gauge = unregistered(Counter), unregistered(Gauge)
        histogram = unregistered(Histogram)

        self.requests = counter(
            "http_requests_total",
            "HTTP requests answered.",
            ["route", "method", "status"],
        )
        self.duration = histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["route", "method", "status"],
            buckets=DURATION_BUCKETS,
        )
        self.in_progress = gauge(
            "http_requests_in_progress",
            "HTTP requests being answered.",
            ["route", "method"],
            multiprocess_mode="livesum",
        )
        self.predicted_class = counter(
            "model_predicted_class_total", "Predicted class labels.", ["label"]
        )
        self.rows = histogram(
            "model_rows_per_request",
            "Samples per predict/explain request.",
            buckets=ROWS_BUCKETS,
        )
        self.ood_flagged = counter(
            "model_ood_flagged_rows_total",
            "Answered rows the out-of-distribution detector flagged (ood_score > 1).",
        )
        self.validation_failures = counter(
            "model_validation_failures_total",
            "Rejected requests by reason.",
            ["reason"],
        )
        self.model_info = gauge(
            "model_info",
            "The served model (value 1); registry version and stage when built from GTO.",
            ["version", "model_type", "registry_version", "registry_stage"],
            multiprocess_mode="max",
        )
        self.model_ready = gauge(
            "model_ready",
            "1 when every live worker serves the verified model.",
            multiprocess_mode="livemin",
        )
        self.model_ready.set(0)
        self.drift = DriftGauges(Gauge)
        self.access = AccessMetrics(Counter, Gauge)
        self.feedback = FeedbackMetrics(Counter)
        self._request_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._progress_children: dict[tuple[str, str], Any] = {}
        self._class_children: dict[int, Any] = {}

    def in_progress_child(self, route: str, method: str) -> Any:
        """Cached labelled child of ``http_requests_in_progress``."""
        key = (route, method)
        child = self._progress_children.get(key)
        if child is None:
            child = self._progress_children[key] = self.in_progress.labels(route, method)
        return child

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, str(status))
        children = self._request_children.get(key)
        if children is None:
            children = (self.requests.labels(*key), self.duration.labels(*key))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_rows(self, rows_per_request: list[int]) -> None:
        """``model_rows_per_request`` for many requests at once.

        Exactly the values one ``observe`` per request gives (a bucket count and the
        sum), with one multiprocess write per distinct value instead of two per request.
        """
        tally: dict[int, int] = {}
        for rows in rows_per_request:
            tally[rows] = tally.get(rows, 0) + 1
        for rows, requests in tally.items():
            observe_repeated(self.rows, rows, requests)

    def observe_ood(self, flags: npt.NDArray[np.bool_]) -> None:
        """Count the rows of one model call that the detector flagged."""
        flagged = int(np.count_nonzero(flags))
        if flagged:
            self.ood_flagged.inc(flagged)

    def observe_predictions(self, labels: npt.NDArray[np.int64]) -> None:
        """Count predicted (non-negative integer) class labels."""
        counts: dict[int, int] = {}
        if labels.shape[0] <= SMALL_BATCH:  # cheaper than numpy for a handful of labels
            for label in labels.tolist():
                counts[label] = counts.get(label, 0) + 1
        else:
            totals = np.bincount(labels)
            nonzero = np.flatnonzero(totals).tolist()
            counts = dict(zip(nonzero, totals[nonzero].tolist(), strict=True))
        for label, count in counts.items():
            child = self._class_children.get(label)
            if child is None:
                child = self._class_children[label] = self.predicted_class.labels(str(label))
            child.inc(count)


_PER_WORKER = (
    " Per worker (label pid, multiprocess_mode liveall): each worker scores its own window;"
    " aggregate with max by (instance)."
)


def observe_repeated(histogram: Any, value: float, times: int) -> None:
    """``histogram.observe(value)`` ``times`` times, as two multiprocess writes.

    The only place that touches prometheus_client's private Histogram fields
    (``_sum``, ``_upper_bounds``, ``_buckets``); tests/unit/test_batching.py pins the
    result to plain ``observe`` calls on the locked prometheus_client version.
    """
    if times == 1:
        histogram.observe(value)
        return
    histogram._sum.inc(value * times)
    histogram._buckets[bisect.bisect_left(histogram._upper_bounds, value)].inc(times)


class DriftGauges:
    """Input-drift gauges (see docs/drift.md). One series per live worker (``pid`` label)."""

    def __init__(self, gauge_kind: Any) -> None:
        gauge = unregistered(gauge_kind)

        def make(name: str, text: str) -> Any:
            return gauge(name, text + _PER_WORKER, multiprocess_mode="liveall")

        self.score = make(
            "input_drift_score",
            "Input drift score: mean per-pixel PSI of the recent input window against the"
            " training histograms; 0 until the window holds the minimum rows.",
        )
        self.psi_max = make("input_drift_psi_max", "Largest per-pixel PSI in the input window.")
        self.psi_mean = make("input_drift_psi_mean", "Mean per-pixel PSI in the input window.")
        self.features_over = make(
            "input_drift_features_over_threshold",
            "Pixels whose PSI exceeds DIGITS_DRIFT_PSI_THRESHOLD.",
        )
        self.window_fill = make(
            "input_drift_window_fill", "Rows in the drift window / window size (0..1)."
        )
        for child in (self.score, self.psi_max, self.psi_mean, self.features_over):
            child.set(0)
        self.window_fill.set(0)

    def publish(
        self,
        score: float,
        psi_max: float,
        psi_mean: float,
        features_over_threshold: int,
        window_fill: float,
    ) -> None:
        self.score.set(score)
        self.psi_max.set(psi_max)
        self.psi_mean.set(psi_mean)
        self.features_over.set(features_over_threshold)
        self.window_fill.set(window_fill)


def render_latest() -> tuple[bytes, str]:
    """Prometheus text exposition aggregated over all worker processes."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int | None = None) -> None:
    """Drop the live gauges of ``pid`` (default: this process, on graceful shutdown)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(os.getpid() if pid is None else pid)  # type: ignore[no-untyped-call]


# Dead workers: a worker that exits normally removes its own live-gauge files
# (mark_process_dead in the lifespan). A worker killed by SIGKILL (or the OOM killer)
# cannot, and granian respawns a new one with a new pid: the dead worker's
# livesum/livemin/liveall files would keep counting its in-flight requests, readiness and
# drift gauges. Workers sweep at start-up and on every scrape; counters and histograms of
# dead workers are kept (cumulative totals must not go backwards).
_LIVE_GAUGE_PREFIX = "gauge_live"


def parent_pid(pid: int) -> int | None:
    """The parent pid of ``pid``, or None when the process is gone."""
    try:
        return int(psutil.Process(pid).ppid())
    except psutil.Error:
        return None


def is_live_sibling(pid: int) -> bool:
    """Whether ``pid`` is this process or another live worker of the same server."""
    if pid == os.getpid():
        return True
    return parent_pid(pid) == os.getppid()


def sweep_dead_workers(directory: Path | None = None) -> list[int]:
    """Drop the live gauges of pids that are no longer workers of this server.

    Returns those pids. Uses prometheus_client's ``mark_process_dead`` (which removes
    exactly the ``gauge_live*_<pid>.db`` files); safe to run concurrently in every worker.
    """
    if directory is None:
        configured = os.environ.get(MULTIPROC_ENV)
        if not configured:
            return []
        directory = Path(configured)
    try:
        names = [entry.name for entry in directory.iterdir()]
    except OSError:
        return []
    pids = set()
    for name in names:
        if name.startswith(_LIVE_GAUGE_PREFIX) and name.endswith(".db"):
            digits = name[:-3].rpartition("_")[2]
            if digits.isdigit():
                pids.add(int(digits))
    dead = sorted(pid for pid in pids if not is_live_sibling(pid))
    from prometheus_client import multiprocess

    for pid in dead:
        multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
    return dead
