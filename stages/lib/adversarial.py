"""Adversarial evaluation of the served model with the Adversarial Robustness Toolbox (ART).

* FGSM and PGD are white-box when ART has the served model's loss gradients
  (logistic regression on the input pixels); otherwise (other classifiers, or any
  classifier behind the centroid alignment, whose integer shift has no gradient) they
  are crafted on a gradient-capable surrogate, a logistic regression on the input
  pixels trained on the same augmented data, and *transferred* to the served model.
* HopSkipJump is decision-based and queries the served ONNX model itself.

Every adversarial image is scored by the served ONNX model; each result says
which kind of attack produced it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from stages.lib.params import RobustnessParams, TrainParams
from stages.lib.perturbations import PIXEL_MAX, PIXEL_MIN
from stages.lib.runner import StageError

N_CLASSES = 10
HOPSKIPJUMP_INIT_SIZE = 100
_HOPSKIPJUMP_INIT_SALT = 303
Predict = Callable[[npt.NDArray[Any]], npt.NDArray[Any]]


def strength_key(value: float) -> str:
    """A stable report key for a strength: ``0.5``, ``2``."""
    return f"{value:g}"


def input_space_logistic_regression(model: Any) -> Any:
    """Fold a fitted ``Pipeline(StandardScaler, LogisticRegression)`` into one input-space model.

    ``z = W (x - mean) / scale + b = (W / scale) x + (b - (W / scale) mean)``, so the
    folded model has the same probabilities and its gradients are exact in pixel
    space. (ART 1.20's ScikitlearnLogisticRegression.loss_gradient re-applies its
    ``preprocessing`` inside ``predict``, so ``preprocessing=(mean, scale)`` gives
    wrong loss gradients; folding avoids that.)
    """
    from sklearn.linear_model import LogisticRegression

    if isinstance(model, LogisticRegression):
        return model
    steps = getattr(model, "named_steps", {})
    classifier, scaler = steps.get("classifier"), steps.get("scaler")
    if not isinstance(classifier, LogisticRegression) or scaler is None or "align" in steps:
        raise StageError(f"cannot fold {type(model).__name__} into an input-space linear model")
    folded = LogisticRegression()
    scale = np.asarray(scaler.scale_, dtype=np.float64)
    mean = np.asarray(scaler.mean_, dtype=np.float64)
    folded.coef_ = np.asarray(classifier.coef_, dtype=np.float64) / scale
    folded.intercept_ = np.asarray(classifier.intercept_, dtype=np.float64) - folded.coef_ @ mean
    folded.classes_ = classifier.classes_
    folded.n_features_in_ = len(mean)
    return folded


def gradient_classifier(model: Any) -> Any | None:
    """An ART classifier with loss gradients in pixel space, or ``None`` if ART has none."""
    from sklearn.linear_model import LogisticRegression

    steps = getattr(model, "named_steps", {})
    classifier = steps.get("classifier", model)
    if not isinstance(classifier, LogisticRegression) or "align" in steps:
        return None
    from art.estimators.classification.scikitlearn import ScikitlearnLogisticRegression

    return ScikitlearnLogisticRegression(
        input_space_logistic_regression(model), clip_values=(PIXEL_MIN, PIXEL_MAX)
    )


def describe(model: Any) -> str:
    """``Pipeline(StandardScaler, CalibratedClassifierCV)``-style model description."""
    steps = getattr(model, "named_steps", None)
    if steps is None:
        return type(model).__name__
    return f"Pipeline({', '.join(type(step).__name__ for step in steps.values())})"


def subset_indices(n: int, size: int, seed: int, salt: int) -> npt.NDArray[Any]:
    """A seeded, sorted subset of ``min(size, n)`` row indices."""
    rng = np.random.default_rng([seed, salt])
    return np.sort(rng.permutation(n)[: min(size, n)])


def attack_scores(
    X: npt.NDArray[Any],
    X_adv: npt.NDArray[Any],
    y: npt.NDArray[Any],
    y_clean: npt.NDArray[Any],
    predict: Predict,
) -> dict[str, float]:
    """Adversarial accuracy, perturbation norms and success rate on initially-correct rows."""
    y_adv = predict(X_adv)
    delta = (X_adv - X).astype(np.float64)
    correct = y_clean == y
    return {
        "adversarial_accuracy": float(np.mean(y_adv == y)),
        "mean_linf": float(np.mean(np.max(np.abs(delta), axis=1))),
        "mean_l2": float(np.mean(np.linalg.norm(delta, axis=1))),
        "attack_success_rate": float(np.mean(y_adv[correct] != y[correct]))
        if np.any(correct)
        else 0.0,
    }


def gradient_attacks(
    art_model: Any,
    X: npt.NDArray[Any],
    y: npt.NDArray[Any],
    predict: Predict,
    params: RobustnessParams,
    kind: str,
) -> dict[str, dict[str, Any]]:
    """FGSM and PGD (L-inf) crafted on ``art_model`` at every eps, scored by ``predict``."""
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent

    y_clean = predict(X)
    one_hot = np.eye(N_CLASSES)[y]
    results: dict[str, dict[str, Any]] = {
        "fgsm": {"status": "ok", "kind": kind, "norm": "inf", "by_eps": {}},
        "pgd": {
            "status": "ok",
            "kind": kind,
            "norm": "inf",
            "max_iter": params.pgd_max_iter,
            "eps_step": f"{params.pgd_step_fraction:g} * eps",
            "by_eps": {},
        },
    }
    for eps in params.attack_eps:
        key = strength_key(eps)
        if eps == 0:
            for name in ("fgsm", "pgd"):
                results[name]["by_eps"][key] = attack_scores(X, X.copy(), y, y_clean, predict)
            continue
        fgsm = FastGradientMethod(art_model, norm=np.inf, eps=eps, batch_size=len(X))
        results["fgsm"]["by_eps"][key] = attack_scores(
            X, fgsm.generate(X, y=one_hot), y, y_clean, predict
        )
        pgd = ProjectedGradientDescent(
            art_model,
            norm=np.inf,
            eps=eps,
            eps_step=eps * params.pgd_step_fraction,
            max_iter=params.pgd_max_iter,
            num_random_init=0,
            batch_size=len(X),
            verbose=True,
        )
        results["pgd"]["by_eps"][key] = attack_scores(
            X, pgd.generate(X, y=one_hot), y, y_clean, predict
        )
    return results


def initial_adversarials(
    predict: Predict, X: npt.NDArray[Any], seed: int, draws: int = HOPSKIPJUMP_INIT_SIZE
) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
    """Per row, the first of ``draws`` seeded uniform images the model labels differently.

    HopSkipJump starts from such an image; ART draws it from an unseeded
    ``np.random.RandomState()``, so the start is drawn here, reproducibly.
    Returns the starting images and whether one was found for each row.
    """
    rng = np.random.default_rng([seed, _HOPSKIPJUMP_INIT_SALT])
    images = rng.uniform(PIXEL_MIN, PIXEL_MAX, size=(len(X), draws, X.shape[1]))
    labels = np.asarray(predict(images.reshape(-1, X.shape[1]))).reshape(len(X), draws)
    differs = labels != np.asarray(predict(X))[:, None]
    return images[np.arange(len(X)), differs.argmax(axis=1)], differs.any(axis=1)


def hopskipjump_attack(
    predict_proba: Predict,
    X: npt.NDArray[Any],
    y: npt.NDArray[Any],
    predict: Predict,
    params: RobustnessParams,
    seed: int,
) -> dict[str, Any]:
    """Black-box, minimal L-inf HopSkipJump on ``X`` (untargeted).

    Adversarial accuracy at eps counts a row as robust when the attack found no
    adversarial example within L-inf distance eps.
    """
    from art.attacks.evasion import HopSkipJump
    from art.estimators.classification import BlackBoxClassifier

    black_box = BlackBoxClassifier(
        lambda batch: np.asarray(predict_proba(batch), dtype=np.float64),
        input_shape=(X.shape[1],),
        nb_classes=N_CLASSES,
        clip_values=(PIXEL_MIN, PIXEL_MAX),
    )
    attack = HopSkipJump(
        black_box,
        targeted=False,
        norm=np.inf,
        max_iter=params.blackbox_max_iter,
        max_eval=params.blackbox_max_eval,
        init_eval=params.blackbox_init_eval,
        init_size=HOPSKIPJUMP_INIT_SIZE,
        batch_size=64,
        verbose=True,
    )
    start, found = initial_adversarials(predict, X, seed)
    X_adv = X.copy()  # a row without a starting image keeps no adversarial example
    if np.any(found):
        np.random.seed(seed)  # HopSkipJump's updates draw from numpy's global generator.
        X_adv[found] = np.clip(
            attack.generate(X[found], x_adv_init=start[found]), PIXEL_MIN, PIXEL_MAX
        )
    y_clean = predict(X)
    y_adv = predict(X_adv)
    distance = np.max(np.abs(X_adv - X), axis=1)
    found = y_adv != y
    overall = attack_scores(X, X_adv, y, y_clean, predict)
    by_eps = {
        strength_key(eps): {
            "adversarial_accuracy": float(np.mean(~(found & (distance <= eps)))),
        }
        for eps in params.attack_eps
    }
    return {
        "status": "ok",
        "kind": "black-box (decision-based, on the served ONNX model)",
        "norm": "inf",
        "subset_size": len(X),
        "max_iter": params.blackbox_max_iter,
        "unbounded": overall,
        "by_eps": by_eps,
    }


def transfer_surrogate(
    X_train: npt.NDArray[Any], y_train: npt.NDArray[Any], params: TrainParams, seed: int
) -> Any:
    """A gradient-capable surrogate: logistic regression on the input pixels (no alignment),
    trained on the same augmented training data."""
    import msgspec

    from stages.lib.augment import augment
    from stages.lib.classifier import fit_model

    X_aug, y_aug = augment(X_train, y_train, params.augment, seed)
    unaligned = msgspec.structs.replace(params, alignment="none")
    return fit_model("logistic_regression", unaligned, seed, X_aug, y_aug)


def adversarial_attacks(
    model: Any,
    surrogate: Callable[[], Any],
    X: npt.NDArray[Any],
    y: npt.NDArray[Any],
    predict: Predict,
    predict_proba: Predict,
    params: RobustnessParams,
    seed: int,
) -> dict[str, Any]:
    """FGSM/PGD (white-box, or transferred from ``surrogate()``) and HopSkipJump (black-box).

    Every attack's adversarial images are scored by ``predict``, the served model.
    """
    attack_rows = subset_indices(len(X), params.attack_subset, seed, salt=101)
    X_attack, y_attack = X[attack_rows], y[attack_rows]
    report: dict[str, Any] = {
        "model": describe(model),
        "input_space": "pixels 0..16, adversarial images clipped to 0..16",
        "subset_size": len(attack_rows),
        "clean_accuracy_subset": float(np.mean(predict(X_attack) == y_attack)),
    }
    art_model = gradient_classifier(model)
    if art_model is not None:
        kind = "white-box (ART gradients of the served model)"
    else:
        surrogate_model = surrogate()
        art_model = gradient_classifier(surrogate_model)
        kind = (
            f"transfer (crafted with ART on a {describe(surrogate_model)} surrogate trained "
            f"on the same augmented data; ART has no gradients for {describe(model)})"
        )
    report["gradient_attack_kind"] = kind
    report.update(gradient_attacks(art_model, X_attack, y_attack, predict, params, kind))
    bb_rows = subset_indices(len(X), params.blackbox_subset, seed, salt=202)
    report["hopskipjump"] = hopskipjump_attack(
        predict_proba, X[bb_rows], y[bb_rows], predict, params, seed
    )
    return report
