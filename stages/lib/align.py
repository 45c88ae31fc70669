"""Centroid alignment: every image moved by the integer shift that brings its ink to the centre.

The served model reads an off-centre digit like a centred one because this step is part of the
model itself: the first step of the scikit-learn pipeline (:class:`CentroidAlign`) and the first
nodes of the exported ONNX graph (:func:`alignment_nodes`), so every client of the service gets
it and training, evaluation and serving run the same computation.

**Definition** (one rule, computed exactly by numpy and by ONNX Runtime alike):

1. ``q = round_half_even(256 * x)`` of each float32 pixel: integers, 0..4096 for pixels in 0..16.
2. ``S = sum q``, ``R = sum q * row``, ``C = sum q * column`` (rows and columns 0..7).
3. The vertical shift (rows moved down) is
   ``dv = #{k in 1,2,3: R < k S} - #{k in 4,5,6: R >= k S}``: the integer that moves the
   centroid row ``R / S`` into ``[3, 4)``, the half-open pixel around the centre 3.5 (at most
   3 rows: a centroid beyond row 6 lands on (3, 4]). The interval is half-open so that a
   centroid on a whole row goes one way whatever moved it there: a digit shifted without
   losing ink is moved back exactly where the unshifted digit goes. The horizontal shift
   ``dh`` is the same for columns. A blank image (``S = 0``) is not moved
   (``dv = dh = 0``): nothing is divided.
4. ``out[r, c] = x[r - dv, c - dh]``, and 0 where that falls outside the frame: ink moved out of
   the frame is dropped, vacated pixels are 0. Pixel values are copied, never recomputed.

Why it is exact: ``q``, ``S``, ``R``, ``C`` and every ``k S - R`` are integers below 2**21, which
float32 and int64 hold exactly, so no summation order, SIMD width or FMA can move a shift; a tie
(``R = k S``) is decided the same way on every machine. Scaling by 256 is exact in binary, and
ONNX ``Round`` and numpy ``rint`` both round half to even, so numpy's float64 and ONNX Runtime's
float32 agree on every float32 input in 0..16 (the service refuses anything else). Quantising to
1/256 of a pixel level only decides which side of a tie a centroid lies on.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, TransformerMixin

Alignment = Literal["centroid", "none"]
SIDE = 8
N_PIXELS = SIDE * SIDE
QUANTUM = 256  # pixels are compared at 1/256 of a level (exact in binary)
MAX_SHIFT = 3  # a centroid row lies in 0..7, so at most 3 rows (or columns) of move
N_SHIFTS = (2 * MAX_SHIFT + 1) ** 2  # every (dv, dh) pair
_LOW = (1, 2, 3)  # R < k S moves the image down (towards the centre) one more row
_HIGH = (4, 5, 6)  # R >= k S moves it up one more row
_ROW = np.repeat(np.arange(SIDE), SIDE)
_COLUMN = np.tile(np.arange(SIDE), SIDE)
N_COMPARISONS = 13  # 6 for rows, 6 for columns, 1 for a blank image


def comparison_weights() -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``W [64, 13]`` and ``b [13]``: ``q @ W + b`` gives ``k S - R`` (k = 1..3) and
    ``R - k S + 1`` (k = 4..6) for rows, the same for columns, then ``1 - S``; every value is an
    integer, > 0 exactly when its comparison holds (``R < k S``, ``R >= k S``, ``S = 0``)."""
    columns = [
        *(k - _ROW for k in _LOW),
        *(_ROW - k for k in _HIGH),
        *(k - _COLUMN for k in _LOW),
        *(_COLUMN - k for k in _HIGH),
        np.full(N_PIXELS, -1),
    ]
    bias = [0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1]
    return np.stack(columns, axis=1).astype(np.int64), np.array(bias, dtype=np.int64)


def shift_index_weights() -> npt.NDArray[np.int64]:
    """``[13]``: the comparisons that hold, weighted into ``7 dv + dh`` (one index per shift).

    A blank image holds every ``R >= k S`` (0 >= 0): -24, which its own column cancels.
    """
    width = 2 * MAX_SHIFT + 1
    blank = MAX_SHIFT * (width + 1)
    return np.array([width] * 3 + [-width] * 3 + [1] * 3 + [-1] * 3 + [blank], dtype=np.int64)


def source_table() -> npt.NDArray[np.int64]:
    """``[49, 64]``: for the shift with index ``i = 7 dv + dh`` (row ``i mod 49``), the input pixel
    each output pixel copies, or 64 (a zero appended to the row) where it falls outside."""
    width = 2 * MAX_SHIFT + 1
    table = np.full((N_SHIFTS, N_PIXELS), N_PIXELS, dtype=np.int64)
    for dv in range(-MAX_SHIFT, MAX_SHIFT + 1):
        for dh in range(-MAX_SHIFT, MAX_SHIFT + 1):
            rows, columns = _ROW - dv, _COLUMN - dh
            inside = (rows >= 0) & (rows < SIDE) & (columns >= 0) & (columns < SIDE)
            table[(width * dv + dh) % N_SHIFTS, inside] = (rows * SIDE + columns)[inside]
    return table


def quantised(X: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """``round_half_even(256 * x)`` of the float32 pixels, as integers (step 1)."""
    pixels = np.asarray(X, dtype=np.float32)
    if pixels.ndim != 2 or pixels.shape[1] != N_PIXELS:
        raise ValueError(f"expected a batch of shape [n, {N_PIXELS}], got {list(pixels.shape)}")
    return np.asarray(np.rint(pixels * np.float32(QUANTUM)), dtype=np.int64)


def centroid_shifts(X: npt.NDArray[Any]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Each image's shift ``(dv, dh)``: rows moved down and columns moved right (steps 1-3)."""
    weights, bias = comparison_weights()
    holds = (quantised(X) @ weights + bias) > 0
    moving = ~holds[:, 12]  # a blank image stays
    dv = (holds[:, 0:3].sum(axis=1) - holds[:, 3:6].sum(axis=1)) * moving
    dh = (holds[:, 6:9].sum(axis=1) - holds[:, 9:12].sum(axis=1)) * moving
    return dv.astype(np.int64), dh.astype(np.int64)


def align(X: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Every image moved by its centroid shift (step 4), in ``X``'s dtype."""
    array = np.asarray(X)
    dv, dh = centroid_shifts(array)
    index = (2 * MAX_SHIFT + 1) * dv + dh
    padded = np.concatenate([array, np.zeros((len(array), 1), dtype=array.dtype)], axis=1)
    return np.take_along_axis(padded, source_table()[index % N_SHIFTS], axis=1)


class CentroidAlign(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """The pipeline step of :func:`align`: stateless, exported by :func:`alignment_nodes`.

    Imported by whatever unpickles ``models/model.joblib`` (the pipeline's stages, the
    benchmark's baseline and MLServer): this module needs numpy and scikit-learn only.
    """

    def fit(self, X: npt.NDArray[Any], y: Any = None) -> CentroidAlign:
        """Nothing to learn; checks the shape."""
        self.n_features_in_ = int(np.asarray(X).shape[1])
        return self

    def transform(self, X: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """The aligned images (float64)."""
        return align(np.asarray(X, dtype=np.float64))

    def __sklearn_is_fitted__(self) -> bool:
        """Stateless: always ready."""
        return True


NodeSpec = tuple[str, list[str], list[str], dict[str, Any]]


def alignment_nodes(
    pixels: str, aligned: str, prefix: str
) -> tuple[list[NodeSpec], dict[str, npt.NDArray[Any]]]:
    """ONNX nodes that compute ``aligned`` = :func:`align` of float32 ``pixels[N, 64]``.

    Ten nodes (each ONNX Runtime node costs about a microsecond per call, so few of them):
    ``Mul``, ``Round`` (step 1); one ``Gemm`` for every comparison; ``Clip(0, 1)`` turns each
    integer into whether it is > 0; a ``MatMul`` counts them into the shift index ``7 dv + dh``,
    which ``Cast`` and ``Reshape`` make a vector of integers and ``Gather`` turns into the
    source pixel of each output pixel (a negative index counts from the end of the table, as
    :func:`align` does with ``mod 49``); ``Pad`` appends the zero that vacated pixels copy and
    ``GatherElements`` copies. (A ``MatMul`` by a ``[13, 1]`` matrix, not a vector: ONNX
    Runtime multiplies by a vector about ten times slower.)
    Returns the nodes (op type, inputs, outputs, attributes) and the initializers, every name
    starting with ``prefix``; :func:`quantised_name` names step 1's tensor for other uses.
    """
    from onnx import TensorProto

    def name(part: str) -> str:
        return f"{prefix}{part}"

    weights, bias = comparison_weights()
    initializers: dict[str, npt.NDArray[Any]] = {
        name("quantum"): np.array(QUANTUM, dtype=np.float32),
        name("comparisons"): weights.astype(np.float32),
        name("comparison_bias"): bias.astype(np.float32),
        name("zero"): np.array(0.0, dtype=np.float32),
        name("one"): np.array(1.0, dtype=np.float32),
        name("index_weights"): shift_index_weights().astype(np.float32).reshape(-1, 1),
        name("flat"): np.array([-1], dtype=np.int64),
        name("sources"): source_table(),
        name("pads"): np.array([0, 0, 0, 1], dtype=np.int64),
    }
    nodes: list[NodeSpec] = [
        ("Mul", [pixels, name("quantum")], [name("scaled")], {}),
        ("Round", [name("scaled")], [quantised_name(prefix)], {}),
        (
            "Gemm",
            [quantised_name(prefix), name("comparisons"), name("comparison_bias")],
            [name("compared")],
            {},
        ),
        ("Clip", [name("compared"), name("zero"), name("one")], [name("holds")], {}),
        ("MatMul", [name("holds"), name("index_weights")], [name("index_float")], {}),
        ("Cast", [name("index_float")], [name("index_column")], {"to": TensorProto.INT64}),
        ("Reshape", [name("index_column"), name("flat")], [name("index")], {}),
        ("Gather", [name("sources"), name("index")], [name("source")], {"axis": 0}),
        ("Pad", [pixels, name("pads")], [name("padded")], {"mode": "constant"}),
        ("GatherElements", [name("padded"), name("source")], [aligned], {"axis": 1}),
    ]
    return nodes, initializers


def quantised_name(prefix: str) -> str:
    """The name of the quantised pixels ``q`` in :func:`alignment_nodes`'s graph."""
    return f"{prefix}quantised"


def _shape_calculator(operator: Any) -> None:
    from skl2onnx.common.data_types import FloatTensorType

    rows = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = FloatTensorType([rows, N_PIXELS])


def _converter(scope: Any, operator: Any, container: Any) -> None:
    from onnx import helper

    prefix = scope.get_unique_variable_name("align_") + "_"
    nodes, initializers = alignment_nodes(
        operator.inputs[0].full_name, operator.outputs[0].full_name, prefix
    )
    for initializer_name, value in initializers.items():
        onnx_type = helper.np_dtype_to_tensor_dtype(value.dtype)
        container.add_initializer(
            initializer_name, onnx_type, list(value.shape), value.ravel().tolist()
        )
    for op_type, inputs, outputs, attributes in nodes:
        container.add_node(op_type, inputs, outputs, name=outputs[0], **attributes)


def register_converter() -> None:
    """Teach skl2onnx to export :class:`CentroidAlign` (idempotent)."""
    from skl2onnx import update_registered_converter

    update_registered_converter(
        CentroidAlign, "DigitsCentroidAlign", _shape_calculator, _converter, overwrite=True
    )
