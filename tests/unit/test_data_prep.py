"""data-prep: loading, validation checks, deduplication, split and reference stats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stages.data_prep import (
    Dataset,
    DataValidationError,
    check_disjoint,
    deduplicate,
    load_builtin_digits,
    load_csv,
    prepare,
    reference_stats,
    split_dataset,
    validate_dataset,
)
from stages.lib.params import DataParams

pytestmark = pytest.mark.unit


def _dataset(X: np.ndarray, y: np.ndarray) -> Dataset:
    return Dataset(
        X=np.asarray(X, dtype=np.float64),
        y=np.asarray(y, dtype=np.int64),
        row_ids=np.arange(len(y), dtype=np.int64),
    )


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_builtin_digits()


def _write_csv(path: Path, X: np.ndarray, y: np.ndarray) -> Path:
    header = ",".join([f"pixel_{i}" for i in range(64)] + ["label"])
    rows = [
        ",".join([*(f"{v:g}" for v in x), str(int(label))]) for x, label in zip(X, y, strict=True)
    ]
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_builtin_digits_pass_validation(digits: Dataset) -> None:
    assert digits.X.shape == (1797, 64)
    validate_dataset(digits, min_class_count=10)


@pytest.mark.parametrize(
    ("mutate", "check"),
    [
        (lambda X, y: (X[:, :63], y), "feature_count"),
        (lambda X, y: (X, y[:-1]), "label_count"),
        (lambda X, y: (np.where(np.arange(64) == 5, np.nan, X), y), "finite"),
        (lambda X, y: (np.where(np.arange(64) == 5, np.inf, X), y), "finite"),
        (lambda X, y: (X + 0.5, y), "pixel_range"),
        (lambda X, y: (X - 1.0, y), "pixel_range"),
        (lambda X, y: (X, np.where(np.arange(len(y)) == 3, 10, y)), "label_values"),
        (lambda X, y: (X, np.where(np.arange(len(y)) == 3, -1, y)), "label_values"),
        (lambda X, y: (X[y != 7], y[y != 7]), "min_class_count"),
    ],
)
def test_each_failed_check_is_named(digits: Dataset, mutate: object, check: str) -> None:
    X, y = mutate(digits.X.copy(), digits.y.copy())  # type: ignore[operator]
    with pytest.raises(DataValidationError, match=rf"^data validation failed \[{check}\]"):
        validate_dataset(_dataset(X, y), min_class_count=10)


def test_deduplicate_drops_exact_copies_and_rejects_conflicts(digits: Dataset) -> None:
    X = np.vstack([digits.X, digits.X[:5]])
    y = np.concatenate([digits.y, digits.y[:5]])
    assert len(deduplicate(_dataset(X, y)).y) == len(digits.y)
    conflicting = np.concatenate([digits.y, (digits.y[:5] + 1) % 10])
    with pytest.raises(DataValidationError, match=r"\[consistent_labels\]"):
        deduplicate(_dataset(X, conflicting))


def test_split_is_stratified_seeded_and_disjoint(digits: Dataset) -> None:
    first = split_dataset(digits, test_size=0.25, seed=3)
    again = split_dataset(digits, test_size=0.25, seed=3)
    other = split_dataset(digits, test_size=0.25, seed=4)
    np.testing.assert_array_equal(first.test.row_ids, again.test.row_ids)
    assert not np.array_equal(first.test.row_ids, other.test.row_ids)
    assert len(first.test.y) == 450
    train_share = np.bincount(first.train.y) / np.bincount(digits.y)
    assert np.all(np.abs(train_share - 0.75) < 0.02)
    assert not set(first.train.row_ids) & set(first.test.row_ids)
    check_disjoint(first)


def test_check_disjoint_catches_leaked_rows(digits: Dataset) -> None:
    split = split_dataset(digits, test_size=0.25, seed=0)
    leaky = type(split)(
        train=split.train,
        test=_dataset(np.vstack([split.test.X, split.train.X[:1]]), np.append(split.test.y, 0)),
    )
    with pytest.raises(DataValidationError, match=r"\[disjoint_splits\]"):
        check_disjoint(leaky)


def test_reference_stats_describe_the_training_split(digits: Dataset) -> None:
    split = split_dataset(digits, test_size=0.25, seed=0)
    stats = reference_stats(split, bins=17, source="sklearn-digits")
    assert len(stats["mean"]) == len(stats["std"]) == 64
    assert np.allclose(stats["mean"], split.train.X.mean(axis=0))
    assert len(stats["bin_edges"]) == 18
    assert stats["bin_edges"][0] == -0.5
    assert stats["bin_edges"][-1] == 16.5
    assert all(sum(h) == len(split.train.y) for h in stats["histograms"])
    assert sum(stats["class_counts_train"]) == stats["n_train"]


def test_csv_source_round_trips(tmp_path: Path, digits: Dataset) -> None:
    path = _write_csv(tmp_path / "digits.csv", digits.X, digits.y)
    loaded = load_csv(path, "label")
    np.testing.assert_array_equal(loaded.X, digits.X)
    np.testing.assert_array_equal(loaded.y, digits.y)
    _, stats = prepare(DataParams(source="digits.csv"), seed=42, base_dir=tmp_path)
    assert stats["n_train"] + stats["n_test"] == 1797
    assert stats["source"] == "digits.csv"


@pytest.mark.parametrize(
    ("content", "check"),
    [
        ("", "not_empty"),
        ("a,b\n1,2\n", "label_column"),
        (",".join(f"p{i}" for i in range(10)) + ",label\n", "feature_count"),
        (",".join(f"p{i}" for i in range(64)) + ",label\n" + "1," * 64 + "\n", "numeric"),
        (",".join(f"p{i}" for i in range(64)) + ",label\n" + "1," * 63 + "1\n", "row_length"),
        (",".join(f"p{i}" for i in range(64)) + ",label\n" + "1," * 64 + "2.5\n", "label_values"),
    ],
)
def test_bad_csv_names_the_check(tmp_path: Path, content: str, check: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataValidationError, match=rf"\[{check}\]"):
        load_csv(path, "label")


def test_missing_csv_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"\[source_exists\]"):
        load_csv(tmp_path / "absent.csv", "label")
