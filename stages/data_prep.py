"""data-prep: load the digits data, validate it, split it, and write reference stats.

The default source is scikit-learn's bundled 8x8 digits set (nothing is
downloaded). ``data.source`` may instead name a CSV file with 64 pixel
columns and a label column.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from stages.lib.artifacts import write_json, write_npz
from stages.lib.params import DataParams, load_params
from stages.lib.runner import StageError, run_stage

N_FEATURES = 64
N_CLASSES = 10
PIXEL_MIN = 0.0
PIXEL_MAX = 16.0
BUILTIN_SOURCE = "sklearn-digits"

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class DataValidationError(StageError):
    """The dataset failed a named validation check."""

    def __init__(self, check: str, detail: str) -> None:
        super().__init__(f"data validation failed [{check}]: {detail}")
        self.check = check


@dataclass(frozen=True)
class Dataset:
    """Features, labels and each row's index in the source."""

    X: FloatArray
    y: IntArray
    row_ids: IntArray


@dataclass(frozen=True)
class Split:
    """A stratified train/test split."""

    train: Dataset
    test: Dataset


def load_builtin_digits() -> Dataset:
    """scikit-learn's bundled digits (1797 samples, shipped with the package)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    X = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    return Dataset(X=X, y=y, row_ids=np.arange(len(y), dtype=np.int64))


def load_csv(path: Path, label_column: str) -> Dataset:
    """A CSV with a header: 64 pixel columns plus ``label_column``."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise DataValidationError("source_exists", f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataValidationError("source_readable", f"{path}: {exc}") from None
    if not rows:
        raise DataValidationError("not_empty", f"{path} is empty")
    header, body = rows[0], rows[1:]
    if label_column not in header:
        raise DataValidationError(
            "label_column", f"{path} has no column {label_column!r} (header: {header[:5]}...)"
        )
    label_index = header.index(label_column)
    feature_indices = [i for i in range(len(header)) if i != label_index]
    if len(feature_indices) != N_FEATURES:
        raise DataValidationError(
            "feature_count", f"{path} has {len(feature_indices)} feature columns, need 64"
        )
    X = np.empty((len(body), N_FEATURES), dtype=np.float64)
    labels = np.empty(len(body), dtype=np.float64)
    for line_number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataValidationError(
                "row_length",
                f"{path}:{line_number} has {len(row)} fields, header has {len(header)}",
            )
        try:
            X[line_number - 2] = [float(row[i]) for i in feature_indices]
            labels[line_number - 2] = float(row[label_index])
        except ValueError as exc:
            raise DataValidationError("numeric", f"{path}:{line_number}: {exc}") from None
    if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
        raise DataValidationError("label_values", "labels must be whole numbers 0..9")
    return Dataset(X=X, y=labels.astype(np.int64), row_ids=np.arange(len(body), dtype=np.int64))


def load_source(params: DataParams, base_dir: Path) -> Dataset:
    """The dataset named by ``data.source`` (relative paths resolve from ``base_dir``)."""
    if params.source == BUILTIN_SOURCE:
        return load_builtin_digits()
    return load_csv(base_dir / params.source, params.label_column)


def validate_dataset(data: Dataset, min_class_count: int) -> None:
    """Check shape, value range, labels and class balance; raise naming the failed check."""
    if data.X.ndim != 2 or data.X.shape[1] != N_FEATURES:
        raise DataValidationError("feature_count", f"expected 64 features, got {data.X.shape}")
    if len(data.y) != len(data.X):
        raise DataValidationError("label_count", f"{len(data.X)} rows but {len(data.y)} labels")
    if not np.all(np.isfinite(data.X)):
        bad = int(np.argwhere(~np.isfinite(data.X))[0][0])
        raise DataValidationError("finite", f"row {int(data.row_ids[bad])} has NaN or infinity")
    out_of_range = (data.X < PIXEL_MIN) | (data.X > PIXEL_MAX)
    if np.any(out_of_range):
        row, col = (int(v) for v in np.argwhere(out_of_range)[0])
        value = float(data.X[row, col])
        raise DataValidationError(
            "pixel_range", f"row {int(data.row_ids[row])} pixel {col} = {value!r} is outside 0..16"
        )
    bad_labels = sorted({int(v) for v in data.y if not 0 <= v < N_CLASSES})
    if bad_labels:
        raise DataValidationError("label_values", f"labels must be 0..9, found {bad_labels[:10]}")
    counts = np.bincount(data.y, minlength=N_CLASSES)
    too_small = {label: int(count) for label, count in enumerate(counts) if count < min_class_count}
    if too_small:
        raise DataValidationError(
            "min_class_count",
            f"classes below data.min_class_count={min_class_count}: {too_small}",
        )


def deduplicate(data: Dataset) -> Dataset:
    """Drop exact duplicate rows; identical pixels with different labels is an error."""
    _, first_index, inverse = np.unique(data.X, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    conflicting = [
        int(data.row_ids[i])
        for i in range(len(data.y))
        if data.y[i] != data.y[first_index[inverse[i]]]
    ]
    if conflicting:
        raise DataValidationError(
            "consistent_labels", f"identical pixels carry different labels, rows {conflicting[:10]}"
        )
    keep = np.sort(first_index)
    return Dataset(X=data.X[keep], y=data.y[keep], row_ids=data.row_ids[keep])


def split_dataset(data: Dataset, test_size: float, seed: int) -> Split:
    """A stratified, seeded train/test split."""
    from sklearn.model_selection import train_test_split

    try:
        train_idx, test_idx = train_test_split(
            np.arange(len(data.y)), test_size=test_size, random_state=seed, stratify=data.y
        )
    except ValueError as exc:
        raise DataValidationError("split", str(exc)) from None

    def take(index: IntArray) -> Dataset:
        ordered = np.sort(index)
        return Dataset(X=data.X[ordered], y=data.y[ordered], row_ids=data.row_ids[ordered])

    return Split(train=take(train_idx), test=take(test_idx))


def check_disjoint(split: Split) -> None:
    """No sample (by pixels) may appear in both splits."""
    train_rows = {row.tobytes() for row in split.train.X}
    leaked = [
        int(rid)
        for row, rid in zip(split.test.X, split.test.row_ids, strict=True)
        if row.tobytes() in train_rows
    ]
    if leaked:
        raise DataValidationError("disjoint_splits", f"test rows also in train: {leaked[:10]}")


def histogram_edges(bins: int) -> FloatArray:
    """Fixed bin edges over the pixel range; 17 bins give one bin per level 0..16."""
    return np.linspace(PIXEL_MIN - 0.5, PIXEL_MAX + 0.5, bins + 1)


def reference_stats(split: Split, bins: int, source: str) -> dict[str, Any]:
    """Training statistics used by the service to monitor input drift."""
    X = split.train.X
    edges = histogram_edges(bins)
    histograms = [
        np.histogram(X[:, j], bins=edges)[0].astype(int).tolist() for j in range(X.shape[1])
    ]
    return {
        "source": source,
        "feature_count": N_FEATURES,
        "pixel_range": [PIXEL_MIN, PIXEL_MAX],
        "n_train": len(split.train.y),
        "n_test": len(split.test.y),
        "class_counts_train": np.bincount(split.train.y, minlength=N_CLASSES).tolist(),
        "class_counts_test": np.bincount(split.test.y, minlength=N_CLASSES).tolist(),
        "mean": [float(v) for v in X.mean(axis=0)],
        "std": [float(v) for v in X.std(axis=0)],
        "bin_edges": [float(v) for v in edges],
        "histograms": histograms,
    }


def prepare(params: DataParams, seed: int, base_dir: Path) -> tuple[Split, dict[str, Any]]:
    """Load, validate, deduplicate and split; return the split and reference stats."""
    data = load_source(params, base_dir)
    validate_dataset(data, params.min_class_count)
    data = deduplicate(data)
    validate_dataset(data, params.min_class_count)
    split = split_dataset(data, params.test_size, seed)
    check_disjoint(split)
    return split, reference_stats(split, params.histogram_bins, params.source)


def write_split(split: Split, out_dir: Path) -> None:
    """Write ``train.npz`` and ``test.npz`` deterministically."""
    for name, part in (("train", split.train), ("test", split.test)):
        write_npz(out_dir / f"{name}.npz", {"X": part.X, "y": part.y, "row_ids": part.row_ids})


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: ``python -m stages.data_prep --params P --out-dir D``."""
    parser = argparse.ArgumentParser(prog="python -m stages.data_prep", description=__doc__)
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args(argv)

    def body() -> None:
        params = load_params(args.params)
        split, stats = prepare(params.data, params.seed, args.params.resolve().parent)
        write_split(split, args.out_dir)
        write_json(args.out_dir / "reference_stats.json", stats)
        print(
            f"data-prep: {stats['n_train']} train / {stats['n_test']} test rows "
            f"written to {args.out_dir}"
        )

    return run_stage("data-prep", body)


if __name__ == "__main__":
    sys.exit(main())
