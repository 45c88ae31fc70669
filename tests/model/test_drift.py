"""serving.monitoring.drift: PSI math, the ring buffer's running counts and the reference loader."""

from __future__ import annotations

import math
from pathlib import Path

import msgspec
import numpy as np
import pytest

from serving.lineage import LineageError
from serving.monitoring.drift import (
    PSI_EPSILON,
    SEARCHSORTED_MAX_ROWS,
    DriftMonitor,
    DriftSummary,
    ReferenceStats,
    parse_reference,
    proportions,
    psi_per_feature,
)

pytestmark = pytest.mark.model
REPO_ROOT = Path(__file__).resolve().parents[2]
REFERENCE_PATH = REPO_ROOT / "data" / "prepared" / "reference_stats.json"
EDGES = [level - 0.5 for level in range(18)]


@pytest.fixture(scope="module")
def reference() -> ReferenceStats:
    return parse_reference(REFERENCE_PATH.read_bytes(), REFERENCE_PATH)


@pytest.fixture(scope="module")
def test_pixels() -> np.ndarray:
    with np.load(REPO_ROOT / "data" / "prepared" / "test.npz") as data:
        return np.asarray(data["X"], dtype=np.float32)


def histogram(rows: np.ndarray) -> np.ndarray:
    """From-scratch ``[64, 17]`` histogram of pixel rows (np.histogram per feature)."""
    return np.stack([np.histogram(rows[:, j], bins=EDGES)[0] for j in range(64)])


def test_psi_matches_the_textbook_formula() -> None:
    current = np.array([[0.5, 0.25, 0.25]])
    reference = np.array([[0.25, 0.25, 0.5]])
    expected = (0.5 - 0.25) * math.log(0.5 / 0.25) + (0.25 - 0.5) * math.log(0.25 / 0.5)
    assert psi_per_feature(current, reference)[0] == pytest.approx(expected)
    assert psi_per_feature(reference, reference)[0] == 0.0


def test_empty_bins_are_floored_so_psi_is_finite_and_shared_empties_add_nothing() -> None:
    counts = np.array([[10, 0, 0], [0, 0, 10]], dtype=np.int64)
    p = proportions(counts)
    assert p.min() == PSI_EPSILON
    same = psi_per_feature(p[:1], p[:1])
    assert same[0] == 0.0
    disjoint = psi_per_feature(p[:1], p[1:])
    assert np.isfinite(disjoint).all()
    assert disjoint[0] == pytest.approx(2 * (1 - PSI_EPSILON) * math.log(1 / PSI_EPSILON))


def test_monitor_psi_equals_the_formula_on_a_from_scratch_histogram(
    reference: ReferenceStats, test_pixels: np.ndarray
) -> None:
    monitor = DriftMonitor(reference, window=1000, min_rows=10, threshold=0.2)
    monitor.observe(test_pixels)
    counts = histogram(test_pixels)
    np.testing.assert_array_equal(monitor.counts(), counts)
    expected = psi_per_feature(
        proportions(counts), proportions(np.asarray(reference.histograms, dtype=np.int64))
    )
    np.testing.assert_allclose(monitor.psi(), expected)
    summary = monitor.summary()
    assert summary.score == pytest.approx(float(expected.mean()))
    assert summary.psi_max == pytest.approx(float(expected.max()))
    assert summary.features_over_threshold == int((expected > 0.2).sum())


@pytest.mark.parametrize("window", [10, 37, 256])
def test_ring_buffer_counts_equal_a_histogram_of_the_last_window_rows(
    reference: ReferenceStats, window: int
) -> None:
    rng = np.random.default_rng(window)
    monitor = DriftMonitor(reference, window=window, min_rows=1, threshold=0.2)
    history: list[np.ndarray] = []
    for _ in range(60):
        size = int(rng.choice([1, 2, 3, window - 1, window, window + 1, 2 * window + 5]))
        batch = rng.integers(0, 17, size=(size, 64)).astype(np.float32)
        monitor.observe(batch)
        history.append(batch)
        seen = np.concatenate(history)
        last = seen[-window:]
        np.testing.assert_array_equal(monitor.counts(), histogram(last))
        np.testing.assert_array_equal(monitor.window_rows(), monitor.bin_indices(last))
        assert monitor.rows == min(window, len(seen))
        assert monitor.rows_seen == len(seen)


def test_values_between_and_beyond_edges_fall_in_the_histogram_bins(
    reference: ReferenceStats,
) -> None:
    monitor = DriftMonitor(reference, window=10, min_rows=1, threshold=0.2)
    row = np.zeros((1, 64), dtype=np.float32)
    row[0, :5] = [0.49, 0.5, 15.5, 16.0, 3.7]
    assert monitor.bin_indices(row)[0, :5].tolist() == [0, 1, 16, 16, 4]


def test_score_is_zero_until_the_minimum_rows(
    reference: ReferenceStats, test_pixels: np.ndarray
) -> None:
    monitor = DriftMonitor(reference, window=500, min_rows=200, threshold=0.2)
    monitor.observe(16 - test_pixels[:199])
    report = monitor.report()
    assert not report.ready
    assert report.score == 0.0
    assert report.top_features == []
    assert report.window_fill == pytest.approx(199 / 500)
    monitor.observe(16 - test_pixels[199:200])
    assert monitor.report().ready
    assert monitor.report().score > 0.2


def test_clean_data_scores_low_shifted_and_inverted_high(
    reference: ReferenceStats, test_pixels: np.ndarray
) -> None:
    scores = {}
    variants = {
        "clean": test_pixels,
        "shifted": np.roll(test_pixels.reshape(-1, 8, 8), 1, axis=2).reshape(-1, 64),
        "inverted": 16 - test_pixels,
    }
    for name, pixels in variants.items():
        monitor = DriftMonitor(reference, window=2000, min_rows=200, threshold=0.2)
        monitor.observe(pixels)
        scores[name] = monitor.report().score
    assert scores["clean"] < 0.1
    assert scores["shifted"] > 0.5
    assert scores["inverted"] > 2.0


def test_report_lists_the_top_drifting_pixels(
    reference: ReferenceStats, test_pixels: np.ndarray
) -> None:
    monitor = DriftMonitor(reference, window=2000, min_rows=200, threshold=0.2)
    pixels = test_pixels.copy()
    pixels[:, 0] = 16  # the top-left pixel is always 0 in training
    monitor.observe(pixels)
    report = monitor.report(top_k=3)
    assert len(report.top_features) == 3
    top = report.top_features[0]
    assert (top.feature, top.row, top.column) == (0, 0, 0)
    assert top.psi == pytest.approx(report.psi_max)
    assert [f.psi for f in report.top_features] == sorted(
        (f.psi for f in report.top_features), reverse=True
    )


def test_publishing_is_throttled_and_can_be_forced(reference: ReferenceStats) -> None:
    now = [0.0]
    published: list[DriftSummary] = []
    monitor = DriftMonitor(reference, window=20, min_rows=5, threshold=0.2)
    monitor.attach(published.append, interval_seconds=1.0, clock=lambda: now[0])
    assert len(published) == 1  # attach publishes the empty state
    batch = np.zeros((5, 64), dtype=np.float32)
    monitor.observe(batch)
    assert len(published) == 1
    now[0] = 1.5
    monitor.observe(batch)
    assert len(published) == 2
    assert published[-1].window_fill == pytest.approx(0.5)
    monitor.publish()
    assert len(published) == 3


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d.update(histograms=d["histograms"][:63]), "64 feature histograms"),
        (lambda d: d.update(bin_edges=[0.0, 1.0]), "bin_edges"),
        (lambda d: d["histograms"][3].pop(), "17 counts"),
    ],
)
def test_malformed_reference_is_refused(mutate: object, fragment: str) -> None:
    data = msgspec.json.decode(REFERENCE_PATH.read_bytes())
    mutate(data)  # type: ignore[operator]
    with pytest.raises(LineageError) as error:
        parse_reference(msgspec.json.encode(data), REFERENCE_PATH)
    assert error.value.reason == "artifact_invalid"
    assert fragment in str(error.value)


def test_unparseable_reference_is_refused() -> None:
    with pytest.raises(LineageError, match="cannot be parsed"):
        parse_reference(b"{", REFERENCE_PATH)


@pytest.mark.parametrize("rows", [1, SEARCHSORTED_MAX_ROWS, SEARCHSORTED_MAX_ROWS + 1, 300])
def test_bin_indices_match_searchsorted_for_small_and_large_batches(
    reference: ReferenceStats, rows: int
) -> None:
    """Both ways of binning (small batches, large batches) give searchsorted's answer."""
    monitor = DriftMonitor(reference, window=10, min_rows=1, threshold=0.2)
    rng = np.random.default_rng(rows)
    X = rng.uniform(-1.0, 17.0, size=(rows, 64)).astype(np.float32)
    X[:, :18] = np.asarray(reference.bin_edges, dtype=np.float32)[None, :18]  # exactly on edges
    expected = np.searchsorted(np.asarray(reference.bin_edges[1:-1], np.float32), X, "right")
    assert monitor.bin_indices(X).dtype == np.uint8
    np.testing.assert_array_equal(monitor.bin_indices(X), expected)
