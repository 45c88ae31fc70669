"""Centroid alignment: its definition, ties, and parity of the ONNX graph with numpy and with
the scikit-learn pipeline, bit for bit, on digits, shifted digits, ties and float pixels."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import pytest

from stages.lib.align import CentroidAlign, align, centroid_shifts, register_converter
from stages.lib.classifier import ONNX_INPUT_NAME, export_onnx, fit_model, onnx_predict
from stages.lib.params import MLPParams, TrainParams
from stages.lib.perturbations import TRANSLATIONS, ink_kept, translate
from stages.train import measure_parity

pytestmark = pytest.mark.unit

Images = npt.NDArray[np.float64]


@pytest.fixture(scope="module")
def digits() -> tuple[Images, npt.NDArray[np.int64]]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X.astype(np.float64), y.astype(np.int64)


@pytest.fixture(scope="module")
def alignment_onnx() -> bytes:
    """The alignment step alone, exported by the converter the model export uses."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    register_converter()
    model = to_onnx(
        CentroidAlign().fit(np.zeros((1, 64))),
        initial_types=[(ONNX_INPUT_NAME, FloatTensorType([None, 64]))],
        target_opset={"": 17},
    )
    return bytes(model.SerializeToString())


def onnx_align(onnx_bytes: bytes, X: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    from stages.lib.classifier import onnx_session

    (aligned,) = onnx_session(onnx_bytes).run(None, {ONNX_INPUT_NAME: X.astype(np.float32)})
    return np.asarray(aligned)


def pixel(row: int, column: int, value: float = 16.0) -> Images:
    image = np.zeros((1, 64))
    image[0, row * 8 + column] = value
    return image


def ties_and_edges() -> Images:
    """Images whose centroid sits exactly on a whole row or column, on a rounding boundary,
    or nowhere (blank), and saturated and sub-1/512 images."""
    rows = []
    for a, b in ((2, 4), (1, 3), (4, 6), (0, 2), (5, 7), (3, 4)):  # centroid on row (a+b)/2
        image = pixel(a, 3) + pixel(b, 3)
        rows += [image, image.reshape(8, 8).T.reshape(1, 64)]  # and the same in columns
    # Rows 2 and 4 weigh 1 and 1 - 0.5/256: 255.5 rounds half to even, to 256 (a tie, stays);
    # 1 - 1.5/256 gives 254.5 -> 254 (row 2 heavier: moved down one row).
    for weight in (1 - 0.5 / 256, 1 - 1.5 / 256, 1 - 1e-4, 1 + 1e-4):
        rows.append(pixel(2, 3, 1.0) + pixel(4, 3, weight))
    rows += [np.zeros((1, 64)), np.full((1, 64), 16.0), np.full((1, 64), 1e-3)]
    return np.concatenate(rows)


@pytest.mark.parametrize(
    ("row", "moved"), [(0, 3), (1, 2), (2, 1), (3, 0), (4, -1), (5, -2), (6, -3), (7, -3)]
)
def test_a_lone_pixel_moves_to_the_centre_rows(row: int, moved: int) -> None:
    dv, dh = centroid_shifts(pixel(row, row))
    assert (int(dv[0]), int(dh[0])) == (moved, moved)
    aligned = align(pixel(row, row)).reshape(8, 8)
    assert aligned[row + moved, row + moved] == 16.0
    assert aligned.sum() == 16.0


def test_a_centroid_on_a_whole_row_lands_on_row_3() -> None:
    X = ties_and_edges()
    dv, dh = centroid_shifts(X)
    # Centroid rows 3, 2, 5, 1, 6 and 3.5 all land in [3, 4): on a whole row, at row 3.
    assert dv[0:12:2].tolist() == [0, 1, -2, 2, -3, 0]
    assert dh[1:12:2].tolist() == [0, 1, -2, 2, -3, 0]
    assert dh[0:12:2].tolist() == [0] * 6  # column 3: centroid 3, in [3, 4)
    # Rounded to 1/256 of a level: half to even decides, in numpy as in ONNX.
    assert dv[12:16].tolist() == [0, 1, 0, 0]


def test_blank_and_uniform_images_are_not_moved() -> None:
    X = ties_and_edges()[-3:]
    dv, dh = centroid_shifts(X)
    assert dv.tolist() == dh.tolist() == [0, 0, 0]  # blank: nothing divided, nothing moved
    np.testing.assert_array_equal(align(X), X)


def test_onnx_alignment_equals_numpy_bit_for_bit(
    alignment_onnx: bytes, digits: tuple[Images, npt.NDArray[np.int64]]
) -> None:
    X = digits[0][:300]
    rng = np.random.default_rng(0)
    inputs = np.concatenate(
        [
            X,
            *(translate(X[:60], d, p) for d in TRANSLATIONS for p in (1, 2, 3)),
            ties_and_edges(),
            rng.uniform(0.0, 16.0, size=(200, 64)),  # float pixels of every magnitude
            np.round(rng.uniform(0.0, 16.0, size=(200, 64)) * 512) / 512,  # on 1/512 steps
            X[:100] * rng.uniform(0.3, 1.0, size=(100, 1)),
        ]
    )
    expected = align(inputs.astype(np.float32))
    got = onnx_align(alignment_onnx, inputs)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    # A row's alignment does not depend on the batch it arrives in.
    alone = np.concatenate([onnx_align(alignment_onnx, row[None, :]) for row in inputs[:50]])
    np.testing.assert_array_equal(alone, got[:50])


def test_alignment_undoes_every_shift_that_keeps_the_ink(
    digits: tuple[Images, npt.NDArray[np.int64]],
) -> None:
    X = digits[0]
    undone = 0
    for direction in TRANSLATIONS:
        for pixels in (1, 2, 3):
            kept = ink_kept(X, direction, pixels)
            moved = translate(X[kept], direction, pixels)
            np.testing.assert_array_equal(align(moved), align(X[kept]))
            undone += int(kept.sum())
    assert undone > 1000  # all horizontal: every digit touches the top and bottom rows


def test_the_exported_model_aligns_first_and_matches_sklearn_on_shifted_digits(
    digits: tuple[Images, npt.NDArray[np.int64]],
) -> None:
    X, y = digits
    params = TrainParams(mlp=MLPParams(hidden_layer_sizes=(32,), learning_rate_init=3e-3))
    model = fit_model("mlp", params, 0, X[:1200], y[:1200])
    assert [name for name, _ in model.steps] == ["align", "scaler", "classifier"]
    onnx_bytes = export_onnx(model)
    graph = onnx.load_from_string(onnx_bytes).graph
    readers = {n.op_type for n in graph.node if ONNX_INPUT_NAME in n.input}
    assert readers == {"Mul", "Pad"}  # only the alignment reads the input: it cannot be skipped
    held_out = X[1200:]
    shifted = np.concatenate(
        [held_out, ties_and_edges(), *(translate(held_out, d, 2) for d in TRANSLATIONS)]
    )
    parity = measure_parity(model, onnx_bytes, shifted, tolerance=1e-5)
    assert parity.ok, parity
    # A digit moved without losing ink gets the answer of the unmoved digit, probabilities
    # and all, though this model never saw a shifted digit.
    labels, probabilities = onnx_predict(onnx_bytes, held_out)
    compared = 0
    for direction in TRANSLATIONS:
        for pixels in (1, 2):
            kept = ink_kept(held_out, direction, pixels)
            if not kept.any():  # every vertical shift cuts ink: each digit fills the height
                continue
            moved = onnx_predict(onnx_bytes, translate(held_out[kept], direction, pixels))
            np.testing.assert_array_equal(moved[0], labels[kept])
            np.testing.assert_array_equal(moved[1], probabilities[kept])
            compared += int(kept.sum())
    assert compared > 500


def test_without_alignment_the_pipeline_has_no_align_step() -> None:
    from stages.lib.models import build_model

    model = build_model("random_forest", TrainParams(alignment="none"), 0)
    assert type(model).__name__ == "RandomForestClassifier"
    aligned = build_model("random_forest", TrainParams(), 0)
    assert [name for name, _ in aligned.steps] == ["align", "classifier"]


def test_the_step_is_stateless_and_unpickles_from_its_module() -> None:
    import joblib

    step = CentroidAlign()
    X = ties_and_edges()
    np.testing.assert_array_equal(step.transform(X), align(X))  # usable unfitted
    buffer = io.BytesIO()
    joblib.dump(step.fit(X), buffer)
    assert b"stages.lib.align" in buffer.getvalue()
    buffer.seek(0)
    np.testing.assert_array_equal(joblib.load(buffer).transform(X), align(X))
    with pytest.raises(ValueError, match=r"expected a batch of shape \[n, 64\]"):
        centroid_shifts(np.zeros((2, 63)))
