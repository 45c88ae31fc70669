"""ood: fit the out-of-distribution detector and export it as one ONNX graph.

The detector is scikit-learn's PCA fitted on the augmented training split
(the validation split held out), so shifted and noisy digits count as
in-distribution. Two scores are combined:

* Hotelling T^2, ``sum(z_k^2 / var_k)``: how far a row lies from the digits
  *inside* the principal subspace (a blank or saturated image);
* Q (squared prediction error), ``||x - mean||^2 - ||z||^2``: how far it lies
  *outside* it (noise, inverted strokes).

Each is divided by its ``component_quantile`` on the augmented validation split,
the larger of the two is taken, and that is divided by the threshold that
flags ``target_false_positive_rate`` of the augmented validation split. A row
the ink-cut rule (:mod:`stages.lib.ink_cut`, ``ood.ink_cut_blank_rows``) finds
cut off at its top or bottom edge scores at least ``CUT_SCORE`` = 2. The
served ``ood_score`` is therefore > 1 exactly for flagged rows; ``ood_pca_score``
is the PCA part alone (for the reports; the service does not read it).

The detector scores the **input pixels, not the aligned ones** the classifier
reads. Three reasons: (1) the service runs ``ood.onnx`` beside ``model.onnx`` on
the same input, so an aligned detector would run the alignment a second time per
request, and the two copies cost more than the 5 % serving budget allows; (2) fitted
on the augmented split (1-pixel shifts in 8 directions), it flags at most about 2 %
of 1-pixel shifted digits in any direction (gated, pooled, in ``ood-evaluate``) and
still every blank, all-16 and uniform-noise image; (3) where the ink sits in the frame
is what tells a cut-off digit, and the alignment moves it away from the edge it was
cut at.

skl2onnx exports the PCA; the few arithmetic nodes after it are appended with
``onnx.helper``. The stage checks the ONNX scores against numpy before writing.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from stages.lib.artifacts import atomic_write_bytes, read_npz, write_json
from stages.lib.augment import augment, validation_split
from stages.lib.canonical import canonical_estimator, float32_scalar
from stages.lib.classifier import (
    ONNX_INPUT_NAME,
    ONNX_TARGET_OPSET,
    OOD_PCA_SCORE_OUTPUT,
    OOD_SCORE_OUTPUT,
    onnx_scores,
)
from stages.lib.ink_cut import CUT_SCORE, cut_weights, edge_weights, ink_cut
from stages.lib.params import OodParams, Params, load_params
from stages.lib.runner import StageError, run_stage

PARITY_RTOL = 1e-3
PARITY_ATOL = 1e-3


class Detector:
    """A fitted PCA with its two score scales, the calibrated threshold and the ink-cut rule."""

    def __init__(
        self, pca: Any, t2_scale: float, q_scale: float, threshold: float, blank_rows: int
    ) -> None:
        self.pca = pca
        self.t2_scale = t2_scale
        self.q_scale = q_scale
        self.threshold = threshold
        self.blank_rows = blank_rows

    def raw_scores(self, X: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        """Hotelling T^2 and Q per row, in float64."""
        return pca_scores(self.pca, X)

    def pca_score(self, X: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """The PCA part of the score (``ood_pca_score``), in float64."""
        t2, q = self.raw_scores(X)
        combined = np.maximum(t2 / self.t2_scale, q / self.q_scale)
        return np.asarray(combined / self.threshold, dtype=np.float64)

    def score(self, X: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """The served score (> 1 means out of distribution), in float64."""
        cut = np.where(ink_cut(X, self.blank_rows), CUT_SCORE, 0.0)
        return np.asarray(np.maximum(self.pca_score(X), cut), dtype=np.float64)


def pca_scores(pca: Any, X: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Hotelling T^2 and Q of each row under a fitted PCA (float64)."""
    centred = np.asarray(X, dtype=np.float64) - pca.mean_
    z = centred @ pca.components_.T
    t2 = np.sum(z**2 / pca.explained_variance_, axis=1)
    q = np.sum(centred**2, axis=1) - np.sum(z**2, axis=1)
    return t2, q


def fit_detector(X: npt.NDArray[Any], y: npt.NDArray[Any], params: Params) -> Detector:
    """Fit on the augmented fit rows, calibrate on the augmented validation rows."""
    from sklearn.decomposition import PCA

    fit_rows, validation_rows = validation_split(
        y, params.train.selection.validation_size, params.seed
    )
    X_fit, _ = augment(X[fit_rows], y[fit_rows], params.train.augment, params.seed)
    X_val, _ = augment(X[validation_rows], y[validation_rows], params.train.augment, params.seed)
    ood = params.ood
    pca = canonical_estimator(PCA(n_components=ood.n_components, svd_solver="full").fit(X_fit))
    t2, q = pca_scores(pca, X_val)
    # Scales and threshold come out of float64 linear algebra too: canonical like the PCA.
    t2_scale = float32_scalar(float(np.quantile(t2, ood.component_quantile)))
    q_scale = float32_scalar(float(np.quantile(q, ood.component_quantile)))
    combined = np.maximum(t2 / t2_scale, q / q_scale)
    threshold = float32_scalar(float(np.quantile(combined, 1.0 - ood.target_false_positive_rate)))
    if not (t2_scale > 0 and q_scale > 0 and threshold > 0):
        raise StageError("OOD calibration produced a non-positive scale; check ood params")
    return Detector(pca, t2_scale, q_scale, threshold, ood.ink_cut_blank_rows)


def export_detector(detector: Detector) -> bytes:
    """One ONNX graph: float32 ``pixels[N, 64]`` in, ``ood_score[N]`` and ``ood_pca_score[N]``
    out."""
    from onnx import TensorProto, helper, numpy_helper
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    base = to_onnx(
        detector.pca,
        initial_types=[(ONNX_INPUT_NAME, FloatTensorType([None, 64]))],
        target_opset=ONNX_TARGET_OPSET[""],
    )
    graph = base.graph
    z = graph.output[0].name
    pca = detector.pca

    def const(name: str, value: npt.NDArray[Any] | float) -> None:
        array = np.asarray(value, dtype=np.float32)
        graph.initializer.append(numpy_helper.from_array(array, name=f"ood_{name}"))

    # One score per row with few nodes (each ONNX Runtime node costs ~1 us per call):
    #   [t2_rel, q_rel] = (z*z) @ Cz + (xc*xc) @ Cx, score = max of the two,
    # with the scales and the threshold folded into Cz [k, 2] and Cx [64, 2]:
    #   t2_rel = sum(z^2 / var) / (t2_scale * threshold)
    #   q_rel = (sum(xc^2) - sum(z^2)) / (q_scale * threshold)
    # Row sums are MatMuls, not ReduceSum: ONNX Runtime's ReduceSum adds a row in an order
    # that depends on its position in the batch, so a row's score would change in the last
    # bit with the request it arrived in. (ReduceMax over 2 values is exact in any order.)
    k = int(pca.n_components_)
    t2_unit = 1.0 / (detector.t2_scale * detector.threshold)
    q_unit = 1.0 / (detector.q_scale * detector.threshold)
    z_weights = np.stack([t2_unit / pca.explained_variance_, np.full(k, -q_unit)], axis=1)
    x_weights = np.stack([np.zeros(64), np.full(64, q_unit)], axis=1)
    const("z_weights", z_weights)
    const("x_weights", x_weights)
    sub_node = next(node for node in graph.node if node.op_type == "Sub")
    centred = sub_node.output[0]  # skl2onnx's PCA graph: Sub(mean), then MatMul(components)
    nodes = [
        ("Mul", [z, z], "z2"),
        ("Mul", [centred, centred], "centred2"),
        ("MatMul", ["ood_z2", "ood_z_weights"], "from_z"),
        ("MatMul", ["ood_centred2", "ood_x_weights"], "from_x"),
        ("Add", ["ood_from_z", "ood_from_x"], "relative"),
    ]
    scored = "ood_relative"
    if detector.blank_rows:
        # The ink-cut rule: edge row sums (exact: pixels are >= 0), Sign (0 or 1 each),
        # CUT_SCORE * Relu(top inked - bottom inked) and the reverse, beside the PCA scores.
        const("edges", edge_weights(detector.blank_rows))
        const("cut_weights", cut_weights())
        nodes += [
            ("MatMul", [graph.input[0].name, "ood_edges"], "edge_sums"),
            ("Sign", ["ood_edge_sums"], "edge_inked"),
            ("MatMul", ["ood_edge_inked", "ood_cut_weights"], "cut_linear"),
            ("Relu", ["ood_cut_linear"], "cut"),
        ]
        scored = "ood_scored"
    for op, inputs, out in nodes:
        graph.node.append(helper.make_node(op, inputs, [f"ood_{out}"], name=f"ood_{out}"))
    if detector.blank_rows:
        graph.node.append(
            helper.make_node("Concat", ["ood_relative", "ood_cut"], [scored], name=scored, axis=1)
        )
    for source, output in ((scored, OOD_SCORE_OUTPUT), ("ood_relative", OOD_PCA_SCORE_OUTPUT)):
        graph.node.append(
            helper.make_node("ReduceMax", [source], [output], name=output, axes=[1], keepdims=0)
        )
    del graph.output[:]
    for output in (OOD_SCORE_OUTPUT, OOD_PCA_SCORE_OUTPUT):
        graph.output.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, [None]))
    base.doc_string = (
        "digits OOD detector: PCA T^2 / Q score over the calibrated threshold, "
        f"and {CUT_SCORE:g} for a row with ink cut off at its top or bottom edge"
    )
    from onnx.checker import check_model

    check_model(base, full_check=True)
    serialised: bytes = base.SerializeToString(deterministic=True)
    return serialised


def detector_metadata(detector: Detector, params: OodParams, n_fit: int) -> dict[str, Any]:
    """``models/ood.json``: how the detector was built and how its score reads."""
    pca = detector.pca
    return {
        "method": "PCA Hotelling T^2 or Q (squared prediction error), or ink cut at the frame",
        "score": (
            f"max(max(T2 / t2_scale, Q / q_scale) / threshold, {CUT_SCORE:g} if ink cut); "
            "> 1 means out of distribution"
        ),
        "input": "the input pixels (not aligned)",
        "onnx": {
            "input": ONNX_INPUT_NAME,
            "output": OOD_SCORE_OUTPUT,
            "pca_output": OOD_PCA_SCORE_OUTPUT,
        },
        "ink_cut": {
            "blank_rows": params.ink_cut_blank_rows,
            "rule": (
                "ink in the top (bottom) pixel row and the bottom (top) blank_rows rows blank"
                if params.ink_cut_blank_rows
                else "off"
            ),
            "score": CUT_SCORE,
        },
        "flag_above": 1.0,
        "n_components": int(pca.n_components_),
        "explained_variance_ratio": float(np.sum(pca.explained_variance_ratio_)),
        "component_quantile": params.component_quantile,
        "target_false_positive_rate": params.target_false_positive_rate,
        "t2_scale": detector.t2_scale,
        "q_scale": detector.q_scale,
        "threshold": detector.threshold,
        "n_train_images": n_fit,
    }


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m stages.ood --params P --data-dir D --out-dir M``."""
    parser = argparse.ArgumentParser(prog="python -m stages.ood", description=__doc__)
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args(argv)

    def body() -> None:
        params = load_params(args.params)
        train = read_npz(args.data_dir / "train.npz", ("X", "y"))
        detector = fit_detector(train["X"], train["y"], params)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            onnx_bytes = export_detector(detector)
        expected = detector.score(train["X"])
        served = onnx_scores(onnx_bytes, train["X"])
        if not np.allclose(served, expected, rtol=PARITY_RTOL, atol=PARITY_ATOL):
            worst = float(np.max(np.abs(served - expected)))
            raise StageError(f"OOD ONNX export disagrees with numpy: max |d score| = {worst:.3g}")
        metadata = detector_metadata(detector, params.ood, n_fit=len(train["y"]))
        atomic_write_bytes(args.out_dir / "ood.onnx", onnx_bytes)
        write_json(args.out_dir / "ood.json", metadata)
        print(
            f"ood: PCA({metadata['n_components']}) detector written to {args.out_dir}; "
            f"threshold {detector.threshold:.4g}, "
            f"flagged training rows {float(np.mean(served > 1.0)):.4f}"
        )

    return run_stage("ood", body)


if __name__ == "__main__":
    sys.exit(main())
