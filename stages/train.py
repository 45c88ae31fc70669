"""train: fit the selected model on augmented data, export it to joblib and ONNX, prove parity.

The stage fails when ONNX Runtime and scikit-learn disagree on the test split or on its
copies shifted 1 and 2 pixels in each of the 8 directions (max |delta probability| above
``train.onnx_tolerance`` or any argmax differs), so the served ONNX artifact, alignment
included, is always equivalent to the trained model.
"""

from __future__ import annotations

import argparse
import io
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, cast, get_args

import numpy as np
import numpy.typing as npt

from stages.lib.artifacts import ArtifactError, atomic_write_bytes, read_json, read_npz, write_json
from stages.lib.augment import augment, copies_per_image
from stages.lib.canonical import ModelWeights
from stages.lib.classifier import (
    MODEL_NAME,
    ONNX_INPUT_NAME,
    ONNX_LABEL_OUTPUT,
    ONNX_PROBABILITY_OUTPUT,
    ONNX_TARGET_OPSET,
    export_onnx,
    fit_model,
    onnx_predict,
)
from stages.lib.params import ModelType, Params, load_params, to_builtins
from stages.lib.perturbations import TRANSLATIONS, translate
from stages.lib.runner import StageError, run_stage

PARITY_SHIFTS = (1, 2)  # pixels: the test split is also compared shifted this far


class ParityError(StageError):
    """ONNX Runtime and scikit-learn disagree beyond tolerance."""


@dataclass(frozen=True)
class Parity:
    """How closely the ONNX export reproduces scikit-learn on a data set."""

    n_samples: int
    max_abs_probability_diff: float
    argmax_mismatches: int
    tolerance: float

    @property
    def ok(self) -> bool:
        """True when within tolerance and every predicted class agrees."""
        return self.max_abs_probability_diff <= self.tolerance and self.argmax_mismatches == 0


def measure_parity(model: Any, onnx_bytes: bytes, X: npt.NDArray[Any], tolerance: float) -> Parity:
    """Compare scikit-learn and ONNX Runtime probabilities and labels on ``X``."""
    sk_probabilities = model.predict_proba(X)
    onnx_labels, onnx_probabilities = onnx_predict(onnx_bytes, X)
    diff = np.abs(sk_probabilities - onnx_probabilities.astype(np.float64))
    mismatches = int(np.sum(model.predict(X) != onnx_labels)) + int(
        np.sum(np.argmax(onnx_probabilities, axis=1) != np.argmax(sk_probabilities, axis=1))
    )
    return Parity(
        n_samples=len(X),
        max_abs_probability_diff=float(diff.max()),
        argmax_mismatches=mismatches,
        tolerance=tolerance,
    )


def parity_inputs(X: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The rows the export is compared on: ``X``, then ``X`` shifted by each of
    ``PARITY_SHIFTS`` pixels in each of the 8 directions (the alignment moves them back)."""
    shifted = [translate(X, d, p) for p in PARITY_SHIFTS for d in TRANSLATIONS]
    return np.concatenate([X, *shifted])


def linear_explanation(model: Any) -> dict[str, Any] | None:
    """Coefficients that let the service compute exact per-pixel contributions (written exactly).

    None unless the model is linear in the input pixels: behind an alignment step the
    coefficients apply to the moved image, so the service explains by occlusion instead.
    """
    if not hasattr(model, "named_steps") or "align" in model.named_steps:
        return None
    classifier = model.named_steps["classifier"]
    if not hasattr(classifier, "coef_"):
        return None
    scaler = model.named_steps["scaler"]
    return {
        "coef": ModelWeights(classifier.coef_),
        "intercept": ModelWeights(classifier.intercept_),
        "scaler_mean": ModelWeights(scaler.mean_),
        "scaler_scale": ModelWeights(scaler.scale_),
    }


def model_metadata(
    model: Any, model_type: ModelType, params: Params, parity: Parity, n_train: int
) -> dict[str, Any]:
    """The ``model.json`` document shipped beside the ONNX file."""
    return {
        "name": MODEL_NAME,
        "model_type": model_type,
        "classes": [int(c) for c in model.classes_],
        "n_features": 64,
        "feature_range": [0.0, 16.0],
        "image_shape": [8, 8],
        "onnx": {
            "input": ONNX_INPUT_NAME,
            "input_dtype": "float32",
            "outputs": [ONNX_LABEL_OUTPUT, ONNX_PROBABILITY_OUTPUT],
            "opset": ONNX_TARGET_OPSET,
        },
        "n_train": n_train,
        "alignment": alignment_metadata(params),
        "augmentation": {
            "rows_per_image": copies_per_image(params.train.augment),
            "n_train_rows": n_train * copies_per_image(params.train.augment),
        },
        # Only the params this stage depends on (dvc.yaml): anything else could change
        # without rerunning train, leaving this file stale against a fresh repro.
        "params": {"seed": params.seed, "train": to_builtins(params)["train"]},
        "parity": {
            "n_samples": parity.n_samples,
            "max_abs_probability_diff": parity.max_abs_probability_diff,
            "argmax_mismatches": parity.argmax_mismatches,
            "tolerance": parity.tolerance,
        },
        "linear_explanation": linear_explanation(model),
        "library_versions": {
            name: version(name)
            for name in ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "joblib")
        },
    }


def alignment_metadata(params: Params) -> dict[str, Any]:
    """What the model does to an image before it classifies it (``train.alignment``)."""
    if params.train.alignment == "none":
        return {"method": "none"}
    return {
        "method": "centroid",
        "in_onnx_graph": True,
        "rule": (
            "each image moved by the integer shift (rows, columns; at most 3) that brings its "
            "intensity centroid, computed on pixels rounded to 1/256, into [3, 4), the "
            "half-open pixel around the centre 3.5 (so a digit shifted without losing ink "
            "lands where the unshifted digit does); none for a blank image; vacated pixels 0"
        ),
    }


def read_winner(path: Path) -> ModelType:
    """The winner recorded in a selection report, validated against the known model types."""
    report = read_json(path)
    winner = report.get("winner") if isinstance(report, dict) else None
    if winner not in get_args(ModelType):
        raise ArtifactError(f"{path}: no valid 'winner' (got {winner!r})")
    return cast(ModelType, winner)


def joblib_bytes(model: Any) -> bytes:
    """The fitted model as an uncompressed joblib pickle (for the pipeline only)."""
    import joblib

    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=0)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m stages.train --params P --data-dir D --selection S --out-dir M``."""
    parser = argparse.ArgumentParser(prog="python -m stages.train", description=__doc__)
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--selection", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args(argv)

    def body() -> None:
        params = load_params(args.params)
        model_type = read_winner(args.selection)
        train = read_npz(args.data_dir / "train.npz", ("X", "y"))
        test = read_npz(args.data_dir / "test.npz", ("X", "y"))
        X_aug, y_aug = augment(train["X"], train["y"], params.train.augment, params.seed)
        model = fit_model(model_type, params.train, params.seed, X_aug, y_aug)
        onnx_bytes = export_onnx(model)
        parity = measure_parity(
            model, onnx_bytes, parity_inputs(test["X"]), params.train.onnx_tolerance
        )
        if not parity.ok:
            raise ParityError(
                f"ONNX export disagrees with scikit-learn on {parity.n_samples} test rows "
                "(clean and shifted): "
                f"max |dprob| = {parity.max_abs_probability_diff:.3g} "
                f"(tolerance {parity.tolerance:g}), argmax mismatches = {parity.argmax_mismatches}"
            )
        metadata = model_metadata(model, model_type, params, parity, n_train=len(train["y"]))
        atomic_write_bytes(args.out_dir / "model.joblib", joblib_bytes(model))
        atomic_write_bytes(args.out_dir / "model.onnx", onnx_bytes)
        write_json(args.out_dir / "model.json", metadata)
        print(
            f"train: {model_type} fitted on {len(y_aug)} augmented rows, written to "
            f"{args.out_dir}; ONNX parity on "
            f"{parity.n_samples} rows: max |dprob| = {parity.max_abs_probability_diff:.3g}, "
            f"argmax mismatches = {parity.argmax_mismatches}"
        )

    return run_stage("train", body)


if __name__ == "__main__":
    sys.exit(main())
