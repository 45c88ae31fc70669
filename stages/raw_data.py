"""raw-data: write scikit-learn's bundled 8x8 digits as a CSV, the pipeline's hashed raw input.

The file is deterministic (same rows, same order, integer pixel values, LF line ends), so
its md5 in ``dvc.lock`` names the raw data every later artifact comes from. data-prep
reads it through ``data.source``; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt

from stages.lib.artifacts import atomic_write_bytes
from stages.lib.runner import StageError, run_stage

N_FEATURES = 64
LABEL_COLUMN = "label"


def csv_bytes(X: npt.NDArray[np.float64], y: npt.NDArray[np.int64], label_column: str) -> bytes:
    """Header ``pixel_0..pixel_63,<label_column>``, one row per image, whole-number values."""
    if X.ndim != 2 or X.shape[1] != N_FEATURES or len(X) != len(y):
        raise StageError(f"raw-data: expected [n, 64] pixels and n labels, got {X.shape}")
    if not np.all(np.round(X) == X):
        raise StageError("raw-data: pixel values must be whole numbers to be written exactly")
    out = io.StringIO(newline="")
    out.write(",".join([*(f"pixel_{i}" for i in range(N_FEATURES)), label_column]) + "\n")
    for row, label in zip(X.astype(np.int64), y, strict=True):
        out.write(",".join(str(int(v)) for v in row) + f",{int(label)}\n")
    return out.getvalue().encode("utf-8")


def bundled_digits_csv(label_column: str = LABEL_COLUMN) -> bytes:
    """The bundled digits set (1797 rows) as CSV bytes."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    X = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    return csv_bytes(X, y, label_column)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: ``python -m stages.raw_data --out data/raw/digits.csv``."""
    parser = argparse.ArgumentParser(prog="python -m stages.raw_data", description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--label-column", default=LABEL_COLUMN)
    args = parser.parse_args(argv)

    def body() -> None:
        data = bundled_digits_csv(args.label_column)
        atomic_write_bytes(args.out, data)
        rows = data.count(b"\n") - 1
        print(f"raw-data: {rows} rows written to {args.out}")

    return run_stage("raw-data", body)


if __name__ == "__main__":
    sys.exit(main())
