"""Robustness stage: input-space attacks, gates and the CLI's exit code on a failed gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from stages.artifacts import atomic_write_bytes, read_json, write_npz
from stages.params import (
    RandomForestParams,
    RobustnessGates,
    RobustnessParams,
    TrainParams,
    parse_params,
)
from stages.robustness import (
    adversarial_attacks,
    evaluate_gates,
    gate_failures,
    gradient_attacks,
    gradient_classifier,
    input_space_logistic_regression,
    main,
)
from stages.train import export_onnx, fit_model, joblib_bytes, onnx_predict

# ART warns at import that PyTorch (not used here) is absent.
pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore:PyTorch not found:UserWarning")]

Split = tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any]]


@pytest.fixture(scope="module")
def digits() -> Split:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X[:1200].astype(np.float64), y[:1200], X[1200:1400].astype(np.float64), y[1200:1400]


@pytest.fixture(scope="module")
def linear_model(digits: Split) -> Any:
    X_train, y_train, _, _ = digits
    return fit_model(TrainParams(), 0, X_train, y_train)


def _sk_predict(model: Any) -> Any:
    return lambda batch: model.predict(batch)


def test_folded_model_matches_pipeline_and_has_exact_input_gradients(
    linear_model: Any, digits: Split
) -> None:
    _, _, X, y = digits
    folded = input_space_logistic_regression(linear_model)
    np.testing.assert_allclose(folded.predict_proba(X), linear_model.predict_proba(X), atol=1e-10)
    art_model, status = gradient_classifier(linear_model)
    assert status == "ok"
    assert art_model is not None
    one_hot = np.eye(10)[y[:20]]
    gradient = art_model.loss_gradient(X[:20], one_hot)
    # Cross-entropy gradient in pixel space, chained through the scaler (ART divides by n_classes).
    scaler, classifier = linear_model.named_steps["scaler"], linear_model.named_steps["classifier"]
    expected = (linear_model.predict_proba(X[:20]) - one_hot) @ classifier.coef_ / scaler.scale_
    np.testing.assert_allclose(gradient, expected / 10, rtol=1e-8, atol=1e-12)


def test_fgsm_lowers_accuracy_and_stays_in_pixel_range(linear_model: Any, digits: Split) -> None:
    _, _, X, y = digits
    art_model, _ = gradient_classifier(linear_model)
    params = RobustnessParams(
        attack_eps=(0.0, 1.0, 4.0), pgd_max_iter=10, gates=RobustnessGates(adversarial_eps=1.0)
    )
    results = gradient_attacks(art_model, X, y, _sk_predict(linear_model), params)
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
    params = RobustnessParams(attack_subset=50, pgd_max_iter=3)
    first = adversarial_attacks(linear_model, X, y, _sk_predict(linear_model), params, 3)
    again = adversarial_attacks(linear_model, X, y, _sk_predict(linear_model), params, 3)
    assert first == again
    assert first["hopskipjump"]["status"].startswith("skipped: ")


def test_model_without_gradients_gets_black_box_attack(digits: Split) -> None:
    X_train, y_train, X, y = digits
    forest = fit_model(
        TrainParams(model="random_forest", random_forest=RandomForestParams(n_estimators=10)),
        0,
        X_train,
        y_train,
    )
    params = RobustnessParams(
        blackbox_subset=3, blackbox_max_iter=2, blackbox_max_eval=100, blackbox_init_eval=10
    )
    report = adversarial_attacks(forest, X, y, _sk_predict(forest), params, 0)
    assert report["fgsm"]["status"].startswith("skipped: ART has no loss gradients")
    assert report["pgd"]["status"] == report["fgsm"]["status"]
    hsj = report["hopskipjump"]
    assert hsj["status"] == "ok"
    assert hsj["subset_size"] == 3
    assert set(hsj["by_eps"]) == {"0", "0.25", "0.5", "1", "2"}
    assert 0.0 <= hsj["unbounded"]["mean_linf"] <= 16.0
    verdicts = evaluate_gates({"stress": _stress(0.9), "adversarial": report}, RobustnessGates())
    assert not verdicts["min_adversarial_accuracy"]["passed"]
    (message,) = gate_failures(verdicts)
    assert "min_adversarial_accuracy failed" in message
    assert "not measured: skipped: ART has no loss gradients" in message


def _stress(noise_accuracy: float) -> dict[str, Any]:
    return {"gaussian_noise": {"by_strength": {"2": {"accuracy": noise_accuracy}}}}


def _adversarial(accuracy: float) -> dict[str, Any]:
    return {"fgsm": {"status": "ok", "by_eps": {"0.5": {"adversarial_accuracy": accuracy}}}}


def test_gates_pass_and_fail_with_named_threshold_and_measurement() -> None:
    gates = RobustnessGates(min_noise_accuracy=0.7, min_adversarial_accuracy=0.99)
    verdicts = evaluate_gates({"stress": _stress(0.75), "adversarial": _adversarial(0.8)}, gates)
    assert verdicts["min_noise_accuracy"]["passed"]
    assert not verdicts["min_adversarial_accuracy"]["passed"]
    assert gate_failures(verdicts) == [
        "gate robustness.gates.min_adversarial_accuracy failed: fgsm adversarial accuracy "
        "at eps=0.5 = 0.8000, threshold 0.99"
    ]
    at_threshold = RobustnessGates(min_noise_accuracy=0.75, min_adversarial_accuracy=0.8)
    verdicts = evaluate_gates(
        {"stress": _stress(0.75), "adversarial": _adversarial(0.8)}, at_threshold
    )
    assert gate_failures(verdicts) == []


def test_gate_strength_must_be_on_the_grid() -> None:
    from stages.params import ParamsError

    with pytest.raises(ParamsError, match=r"gates.adversarial_eps must be one of attack_eps"):
        parse_params("robustness:\n  attack_eps: [0, 1]\n  gates: {noise_sigma: 2.0}\n")


@pytest.fixture(scope="module")
def stage_inputs(
    tmp_path_factory: pytest.TempPathFactory, linear_model: Any, digits: Split
) -> Path:
    root = tmp_path_factory.mktemp("robustness-stage")
    _, _, X, y = digits
    write_npz(root / "data" / "test.npz", {"X": X, "y": y.astype(np.int64)})
    atomic_write_bytes(root / "models" / "model.joblib", joblib_bytes(linear_model))
    atomic_write_bytes(root / "models" / "model.onnx", export_onnx(linear_model))
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


SMALL = "robustness:\n  attack_subset: 40\n  pgd_max_iter: 2\n"


def test_stage_fails_on_impossible_gate_after_writing_report(
    stage_inputs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run_stage(
        stage_inputs, SMALL + "  gates:\n    min_noise_accuracy: 1.0\n", "impossible"
    )
    stderr = capsys.readouterr().err
    assert code == 1
    assert "robustness: error: gate robustness.gates.min_noise_accuracy failed: accuracy " in stderr
    assert "under Gaussian noise sigma=2 = 0." in stderr
    assert "threshold 1.0" in stderr
    report = read_json(out / "robustness.json")
    assert report["passed"] is False
    assert report["gates"]["min_noise_accuracy"]["passed"] is False
    assert report["gates"]["min_adversarial_accuracy"]["passed"] is True
    assert read_json(out / "plots" / "robustness_shift.json")[0]["pixels"] == 0.0


def test_stage_passes_default_gates_and_writes_plots(
    stage_inputs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run_stage(stage_inputs, SMALL, "defaults")
    assert code == 0, capsys.readouterr().err
    report = read_json(out / "robustness.json")
    assert report["passed"] is True
    labels, _ = onnx_predict(
        (stage_inputs / "models" / "model.onnx").read_bytes(), np.zeros((1, 64))
    )
    assert labels.shape == (1,)
    adversarial = read_json(out / "plots" / "robustness_adversarial.json")
    assert [row["eps"] for row in adversarial] == [0.0, 0.25, 0.5, 1.0, 2.0]
    assert set(adversarial[0]) == {"eps", "fgsm", "pgd"}
    noise = read_json(out / "plots" / "robustness_gaussian_noise.json")
    assert noise[0]["accuracy"] == report["clean"]["accuracy"]


def test_stage_rejects_bad_params(stage_inputs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = _run_stage(stage_inputs, "robustness:\n  noise_sigmas: [-1]\n", "bad")
    assert code == 2
    assert "robustness.noise_sigmas.0" in capsys.readouterr().err
