"""Robustness stage: white-box, transfer and black-box attacks, gates and the CLI's exit code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from stages.lib.adversarial import (
    adversarial_attacks,
    gradient_attacks,
    gradient_classifier,
    input_space_logistic_regression,
    transfer_surrogate,
)
from stages.lib.artifacts import atomic_write_bytes, read_json, write_npz
from stages.lib.classifier import export_onnx, fit_model, onnx_predict
from stages.lib.params import MLPParams, RobustnessParams, TrainParams, parse_params
from stages.lib.perturbations import TRANSLATIONS
from stages.lib.runner import StageError
from stages.ood import export_detector, fit_detector
from stages.robustness import main
from stages.train import joblib_bytes

# ART warns at import that PyTorch (not used here) is absent.
pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore:PyTorch not found:UserWarning")]

Split = tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any]]
Predict = Any

SMALL_BLACKBOX = {
    "blackbox_subset": 3,
    "blackbox_max_iter": 2,
    "blackbox_max_eval": 100,
    "blackbox_init_eval": 10,
}


@pytest.fixture(scope="module")
def digits() -> Split:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X[:1200].astype(np.float64), y[:1200], X[1200:1400].astype(np.float64), y[1200:1400]


@pytest.fixture(scope="module")
def linear_model(digits: Split) -> Any:
    """A logistic regression on the input pixels (no alignment): ART has its gradients."""
    X_train, y_train, _, _ = digits
    return fit_model("logistic_regression", TrainParams(alignment="none"), 0, X_train, y_train)


def _small(attack_subset: int, pgd_max_iter: int) -> RobustnessParams:
    """Default grids and gates with small attack budgets."""
    return RobustnessParams(
        attack_subset=attack_subset,
        pgd_max_iter=pgd_max_iter,
        blackbox_subset=SMALL_BLACKBOX["blackbox_subset"],
        blackbox_max_iter=SMALL_BLACKBOX["blackbox_max_iter"],
        blackbox_max_eval=SMALL_BLACKBOX["blackbox_max_eval"],
        blackbox_init_eval=SMALL_BLACKBOX["blackbox_init_eval"],
    )


def _sk_predict(model: Any) -> Predict:
    return lambda batch: model.predict(batch)


def _onnx_predict(onnx_bytes: bytes) -> tuple[Predict, Predict]:
    def predict(batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return onnx_predict(onnx_bytes, batch)[0]

    def predict_proba(batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return onnx_predict(onnx_bytes, batch)[1]

    return predict, predict_proba


def _no_surrogate() -> Any:
    pytest.fail("a white-box attack must not train a surrogate")


def test_folded_model_matches_pipeline_and_has_exact_input_gradients(
    linear_model: Any, digits: Split
) -> None:
    _, _, X, y = digits
    folded = input_space_logistic_regression(linear_model)
    np.testing.assert_allclose(folded.predict_proba(X), linear_model.predict_proba(X), atol=1e-10)
    art_model = gradient_classifier(linear_model)
    assert art_model is not None
    one_hot = np.eye(10)[y[:20]]
    gradient = art_model.loss_gradient(X[:20], one_hot)
    # Cross-entropy gradient in pixel space, chained through the scaler (ART divides by n_classes).
    scaler, classifier = linear_model.named_steps["scaler"], linear_model.named_steps["classifier"]
    expected = (linear_model.predict_proba(X[:20]) - one_hot) @ classifier.coef_ / scaler.scale_
    np.testing.assert_allclose(gradient, expected / 10, rtol=1e-8, atol=1e-12)


def test_models_without_art_gradients_get_none(digits: Split) -> None:
    X_train, y_train, _, _ = digits
    mlp = fit_model(
        "mlp",
        TrainParams(mlp=MLPParams(hidden_layer_sizes=(16,), learning_rate_init=1e-2)),
        0,
        X_train,
        y_train,
    )
    assert gradient_classifier(mlp) is None
    # Behind the alignment (an integer shift, no gradient) a linear model has none either.
    aligned = fit_model("logistic_regression", TrainParams(), 0, X_train, y_train)
    assert gradient_classifier(aligned) is None
    with pytest.raises(StageError, match="cannot fold Pipeline"):
        input_space_logistic_regression(aligned)


def test_fgsm_lowers_accuracy_and_stays_in_pixel_range(linear_model: Any, digits: Split) -> None:
    _, _, X, y = digits
    art_model = gradient_classifier(linear_model)
    params = RobustnessParams(attack_eps=(0.0, 1.0, 4.0), pgd_max_iter=10)
    results = gradient_attacks(art_model, X, y, _sk_predict(linear_model), params, "white-box")
    assert results["fgsm"]["kind"] == results["pgd"]["kind"] == "white-box"
    fgsm = results["fgsm"]["by_eps"]
    assert fgsm["0"]["adversarial_accuracy"] > 0.9
    assert fgsm["0"]["mean_linf"] == 0.0
    assert fgsm["1"]["adversarial_accuracy"] < fgsm["0"]["adversarial_accuracy"] - 0.2
    assert fgsm["4"]["adversarial_accuracy"] < fgsm["1"]["adversarial_accuracy"]
    assert fgsm["1"]["mean_linf"] == pytest.approx(1.0)
    assert fgsm["4"]["attack_success_rate"] > 0.9
    assert results["pgd"]["by_eps"]["1"]["adversarial_accuracy"] <= (
        fgsm["1"]["adversarial_accuracy"] + 0.02
    )

    from art.attacks.evasion import FastGradientMethod

    adversarial = FastGradientMethod(art_model, eps=4.0).generate(X, y=np.eye(10)[y])
    assert adversarial.min() >= 0.0
    assert adversarial.max() <= 16.0
    assert np.abs(adversarial - X).max() <= 4.0 + 1e-9


def test_attacks_are_bit_reproducible(linear_model: Any, digits: Split) -> None:
    _, _, X, y = digits
    params = _small(50, 3)
    predict, predict_proba = _onnx_predict(export_onnx(linear_model))

    def run() -> dict[str, Any]:
        return adversarial_attacks(
            linear_model, _no_surrogate, X, y, predict, predict_proba, params, 3
        )

    first = run()
    assert first == run()
    assert first["fgsm"]["kind"].startswith("white-box")
    assert first["gradient_attack_kind"] == first["fgsm"]["kind"]
    hsj = first["hopskipjump"]
    assert hsj["status"] == "ok"
    assert hsj["kind"].startswith("black-box")
    assert hsj["subset_size"] == 3
    assert set(hsj["by_eps"]) == {"0", "0.25", "0.5", "1", "2"}
    assert 0.0 <= hsj["unbounded"]["mean_linf"] <= 16.0
    # A row counts as robust at eps unless an adversarial example was found that close.
    robust = [hsj["by_eps"][k]["adversarial_accuracy"] for k in ("0", "0.25", "0.5", "1", "2")]
    assert robust == sorted(robust, reverse=True)


def test_transfer_attack_is_scored_on_the_served_model(digits: Split) -> None:
    X_train, y_train, X, y = digits
    train = TrainParams(mlp=MLPParams(hidden_layer_sizes=(32,), learning_rate_init=3e-3))
    served = fit_model("mlp", train, 0, X_train, y_train)
    predict, predict_proba = _onnx_predict(export_onnx(served))
    surrogates: list[Any] = []

    def surrogate() -> Any:
        model = transfer_surrogate(X_train, y_train, train, 0)
        surrogates.append(model)
        return model

    params = _small(60, 3)
    report = adversarial_attacks(served, surrogate, X, y, predict, predict_proba, params, 0)

    (surrogate_model,) = surrogates  # trained once, only because the MLP has no ART gradients
    assert surrogate_model.named_steps["classifier"].__class__.__name__ == "LogisticRegression"
    assert "align" not in surrogate_model.named_steps  # on the input pixels: it has gradients
    for attack in ("fgsm", "pgd"):
        assert report[attack]["kind"].startswith("transfer")
        assert "LogisticRegression" in report[attack]["kind"]
        assert "MLPClassifier" in report[attack]["kind"]
    assert report["model"] == "Pipeline(CentroidAlign, StandardScaler, MLPClassifier)"
    assert report["hopskipjump"]["kind"].startswith("black-box")

    # Re-craft the FGSM images on the surrogate with ART and score them ourselves.
    from art.attacks.evasion import FastGradientMethod

    rows = np.sort(np.random.default_rng([0, 101]).permutation(len(X))[: params.attack_subset])
    X_attack, y_attack = X[rows], y[rows]
    fgsm = FastGradientMethod(gradient_classifier(surrogate_model), eps=1.0, batch_size=len(rows))
    X_adv = fgsm.generate(X_attack, y=np.eye(10)[y_attack])
    served_accuracy = float(np.mean(predict(X_adv) == y_attack))
    reported = report["fgsm"]["by_eps"]["1"]["adversarial_accuracy"]
    assert reported == served_accuracy
    # The served MLP, not the surrogate that crafted the images, is what was scored: the two
    # read the adversarial images differently.
    assert not np.array_equal(predict(X_adv), surrogate_model.predict(X_adv))
    assert report["clean_accuracy_subset"] == float(np.mean(predict(X_attack) == y_attack))


RATIONALE = "A rationale naming the user need."


def _gate(threshold: float) -> str:
    return f"{{threshold: {threshold}, rationale: {RATIONALE}}}"


@pytest.fixture(scope="module")
def stage_inputs(
    tmp_path_factory: pytest.TempPathFactory, linear_model: Any, digits: Split
) -> Path:
    root = tmp_path_factory.mktemp("robustness-stage")
    X_train, y_train, X, y = digits
    write_npz(root / "data" / "test.npz", {"X": X, "y": y.astype(np.int64)})
    atomic_write_bytes(root / "models" / "model.joblib", joblib_bytes(linear_model))
    atomic_write_bytes(root / "models" / "model.onnx", export_onnx(linear_model))
    detector = fit_detector(X_train, y_train, parse_params("ood: {n_components: 20}"))
    atomic_write_bytes(root / "models" / "ood.onnx", export_detector(detector))
    return root


def _run_stage(root: Path, params_text: str, name: str) -> tuple[int, Path]:
    params = root / f"{name}.yaml"
    params.write_text(params_text, encoding="utf-8")
    out = root / name
    code = main(
        [
            "--params", str(params),
            "--data-dir", str(root / "data"),
            "--model-dir", str(root / "models"),
            "--report", str(out / "robustness.json"),
            "--plots-dir", str(out / "plots"),
        ]
    )  # fmt: skip
    return code, out


SMALL = (
    "robustness:\n  attack_subset: 40\n  pgd_max_iter: 2\n  bootstrap_resamples: 200\n"
    + "".join(f"  {key}: {value}\n" for key, value in SMALL_BLACKBOX.items())
)


def test_unaugmented_linear_model_fails_the_shift_gates_after_writing_report(
    stage_inputs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run_stage(stage_inputs, SMALL, "defaults")
    stderr = capsys.readouterr().err
    assert code == 1
    assert "robustness: error: gate robustness.gates.shift_mean failed: mean accuracy " in stderr
    assert "needs >= 0.96 (Clients send off-centre digits" in stderr
    report = read_json(out / "robustness.json")
    assert report["passed"] is False
    assert report["gates"]["shift_mean"]["passed"] is False
    assert report["gates"]["shift_worst_direction"]["passed"] is False
    assert report["gates"]["shift_silent_error"]["passed"] is False  # misread and unflagged
    assert read_json(out / "plots" / "robustness_shift.json")[0]["pixels"] == 0.0
    # Every family and strength carries the flag and silent-error rates; shifts split by ink.
    for family in report["stress"].values():
        for record in family["by_strength"].values():
            assert record["silent_error_rate"] <= 1.0 - record["accuracy"] + 1e-9
            assert 0.0 <= record["flag_rate"] <= 1.0
    up_2 = report["stress"]["shift_up"]["by_strength"]["2"]
    assert (up_2["ink_kept"]["n"], up_2["ink_cut"]["n"]) == (0, 200)  # every digit is cut
    assert report["ink_cut_flag"]["by_direction"]["up"]["rule_flag_rate"] == 1.0
    silent = read_json(out / "plots" / "robustness_silent_errors.json")
    assert [row["pixels"] for row in silent] == [0.0, 1.0, 2.0]
    assert set(silent[0]) == {"pixels", *TRANSLATIONS}


def test_stage_passes_gates_it_meets_and_writes_plots(
    stage_inputs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gates = "".join(
        f"    {name}: {_gate(0.1)}\n"
        for name in ("shift_mean", "shift_worst_direction", "noise", "adversarial")
    )
    gates += f"    shift_silent_error: {_gate(1.0)}\n"
    # Unaligned and unaugmented, the linear model reads no 2-pixel shift right, ink kept or not.
    gates += f"    shift_ink_kept: {{pixels: 2, threshold: 0.0, rationale: {RATIONALE}}}\n"
    code, out = _run_stage(stage_inputs, SMALL + "  gates:\n" + gates, "met")
    assert code == 0, capsys.readouterr().err
    report = read_json(out / "robustness.json")
    assert report["passed"] is True
    assert all(gate["passed"] for gate in report["gates"].values())
    adversarial = read_json(out / "plots" / "robustness_adversarial.json")
    assert [row["eps"] for row in adversarial] == [0.0, 0.25, 0.5, 1.0, 2.0]
    assert set(adversarial[0]) == {"eps", "fgsm", "pgd", "hopskipjump"}
    noise = read_json(out / "plots" / "robustness_gaussian_noise.json")
    assert noise[0]["accuracy"] == report["clean"]["accuracy"]


def test_stage_rejects_bad_params(stage_inputs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = _run_stage(stage_inputs, "robustness:\n  noise_sigmas: [-1]\n", "bad")
    assert code == 2
    assert "robustness.noise_sigmas.0" in capsys.readouterr().err
