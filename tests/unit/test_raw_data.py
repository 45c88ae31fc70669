"""raw-data: the bundled digits as a deterministic CSV that data-prep reads back exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stages.data_prep import load_builtin_digits, load_csv
from stages.lib.runner import StageError
from stages.raw_data import bundled_digits_csv, csv_bytes, main

pytestmark = pytest.mark.unit


def test_csv_round_trips_to_the_bundled_arrays(tmp_path: Path) -> None:
    out = tmp_path / "raw" / "digits.csv"
    assert main(["--out", str(out)]) == 0
    loaded = load_csv(out, "label")
    builtin = load_builtin_digits()
    np.testing.assert_array_equal(loaded.X, builtin.X)
    np.testing.assert_array_equal(loaded.y, builtin.y)
    assert out.read_bytes() == bundled_digits_csv()  # same bytes every run


def test_header_and_rows() -> None:
    text = bundled_digits_csv().decode()
    lines = text.splitlines()
    assert lines[0].split(",") == [*(f"pixel_{i}" for i in range(64)), "label"]
    assert len(lines) == 1 + 1797
    assert "\r" not in text


def test_non_integer_pixels_are_refused() -> None:
    X = np.full((2, 64), 0.5)
    with pytest.raises(StageError, match="whole numbers"):
        csv_bytes(X, np.array([1, 2], dtype=np.int64), "label")
