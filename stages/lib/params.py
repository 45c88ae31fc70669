"""One typed loader for ``params.yaml``, shared by every stage.

Any unknown key, wrong type or out-of-range value raises :class:`ParamsError`
with a single line naming the key, before a stage does any work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec

from stages.lib.params_docs import DocsParams
from stages.lib.params_messages import one_line

ModelType = Literal["logistic_regression", "mlp", "svc", "random_forest"]
# The 8 one-pixel neighbours: the 4 axes and the 4 diagonals (both axes at once).
Direction = Literal["up", "down", "left", "right", "up_left", "up_right", "down_left", "down_right"]
ALL_DIRECTIONS: tuple[Direction, ...] = (
    "up",
    "down",
    "left",
    "right",
    "up_left",
    "up_right",
    "down_left",
    "down_right",
)
# centroid: the model moves each image by the integer shift that brings its intensity
# centroid to the centre (stages/lib/align.py), inside the exported ONNX graph; none: it does not.
Alignment = Literal["centroid", "none"]

Probability = Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)]
UnitInterval = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0.0)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0.0)]


class ParamsError(ValueError):
    """A params file that cannot be used; the message is one line naming the key."""


class _Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base for params sections: unknown keys are errors, values are immutable."""


class DataParams(_Strict, frozen=True):
    """Where the data comes from and how it is split."""

    source: str = "sklearn-digits"
    label_column: str = "label"
    test_size: Probability = 0.25
    min_class_count: PositiveInt = 10
    histogram_bins: Annotated[int, msgspec.Meta(ge=2, le=256)] = 17


class LogisticRegressionParams(_Strict, frozen=True):
    """Hyperparameters of the (scaled) multinomial logistic regression."""

    C: PositiveFloat = 1.0
    max_iter: PositiveInt = 5000
    tol: PositiveFloat = 1e-6


class SVCParams(_Strict, frozen=True):
    """Hyperparameters of the RBF support vector classifier."""

    C: PositiveFloat = 10.0
    gamma: PositiveFloat | Literal["scale", "auto"] = "scale"


class RandomForestParams(_Strict, frozen=True):
    """Hyperparameters of the random forest."""

    n_estimators: PositiveInt = 200
    max_depth: PositiveInt | None = None
    min_samples_leaf: PositiveInt = 1


class MLPParams(_Strict, frozen=True):
    """Hyperparameters of the (scaled) multi-layer perceptron (Adam, fixed seed)."""

    hidden_layer_sizes: Annotated[tuple[PositiveInt, ...], msgspec.Meta(min_length=1)] = (128,)
    alpha: NonNegativeFloat = 1e-4
    learning_rate_init: PositiveFloat = 1e-3
    max_iter: PositiveInt = 300
    tol: PositiveFloat = 1e-4


PixelStrength = Annotated[float, msgspec.Meta(ge=0.0, le=16.0)]
OneLine = Annotated[str, msgspec.Meta(min_length=10, max_length=300, pattern=r"^[^\n]+$")]


class AugmentParams(_Strict, frozen=True):
    """Training-split augmentation: every image plus shifted and noisy copies.

    Each original image contributes one copy per (direction, offset) pair and
    ``noise_copies`` copies per noise sigma. Only the training data is augmented. A diagonal
    direction moves the image ``offset`` pixels along both axes.
    """

    enabled: bool = True
    shift_pixels: tuple[Annotated[int, msgspec.Meta(ge=1, le=3)], ...] = (1,)
    shift_directions: tuple[Direction, ...] = ALL_DIRECTIONS
    noise_sigmas: tuple[Annotated[float, msgspec.Meta(gt=0.0, le=16.0)], ...] = (2.0,)
    noise_copies: Annotated[int, msgspec.Meta(ge=0, le=10)] = 2


class SelectionParams(_Strict, frozen=True):
    """Which candidates compete on the validation split, and the rule that picks one.

    Rule: a candidate is eligible when its ONNX export is at most ``max_onnx_bytes``
    (a deterministic proxy for serving latency) and each validation accuracy
    (clean, mean shift and worst shift direction over the 8 directions, shifts that keep
    all ink in the frame, noise) reaches the matching test gate within the upper end of
    its 95 % Wilson interval;
    the eligible candidate with the highest ``score`` wins, ties going to the
    smaller ONNX file, then to the earlier candidate.
    """

    candidates: Annotated[tuple[ModelType, ...], msgspec.Meta(min_length=1)] = (
        "logistic_regression",
        "mlp",
        "random_forest",
    )
    validation_size: Annotated[float, msgspec.Meta(ge=0.05, le=0.5)] = 0.2
    score: Literal["worst_case", "mean"] = "worst_case"
    max_onnx_bytes: PositiveInt = 262_144
    shift_pixels: Annotated[int, msgspec.Meta(ge=1, le=3)] = 1
    noise_sigma: Annotated[float, msgspec.Meta(gt=0.0, le=16.0)] = 2.0

    def __post_init__(self) -> None:
        """Each candidate once."""
        if len(set(self.candidates)) != len(self.candidates):
            raise ValueError(f"candidates must be distinct, got {list(self.candidates)}")


class TrainParams(_Strict, frozen=True):
    """Augmentation, candidate models with their hyperparameters, and the selection rule."""

    onnx_tolerance: PositiveFloat = 1e-5
    alignment: Alignment = "centroid"
    augment: AugmentParams = AugmentParams()
    selection: SelectionParams = SelectionParams()
    logistic_regression: LogisticRegressionParams = LogisticRegressionParams()
    mlp: MLPParams = MLPParams()
    svc: SVCParams = SVCParams()
    random_forest: RandomForestParams = RandomForestParams()


class Gate(_Strict, frozen=True, kw_only=True):
    """A threshold and the one-line user need it stands for."""

    threshold: UnitInterval
    rationale: OneLine


class EvaluateGates(_Strict, frozen=True):
    """Gates of the evaluate stage."""

    clean_accuracy: Gate = Gate(
        threshold=0.975,
        rationale="API clients need at least 97.5 % of clean, centred digits read correctly.",
    )


class EvaluateParams(_Strict, frozen=True):
    """Quality gate and evaluation settings."""

    gates: EvaluateGates = EvaluateGates()
    confidence_level: Annotated[float, msgspec.Meta(ge=0.5, lt=1.0)] = 0.95
    calibration_bins: Annotated[int, msgspec.Meta(ge=2, le=100)] = 10
    permutation_repeats: PositiveInt = 5


AttackName = Literal["fgsm", "pgd", "hopskipjump"]
NoiseGrid = Annotated[tuple[PixelStrength, ...], msgspec.Meta(min_length=1)]
RateGrid = Annotated[tuple[UnitInterval, ...], msgspec.Meta(min_length=1)]
PixelCountGrid = Annotated[
    tuple[Annotated[int, msgspec.Meta(ge=0, le=8)], ...], msgspec.Meta(min_length=1)
]


class ShiftGate(_Strict, frozen=True, kw_only=True):
    """A bound on test digits shifted by ``pixels``: accuracy (mean or worst direction, or the
    shifts that keep all ink in the frame) or the silent-error rate (worst direction)."""

    pixels: Annotated[int, msgspec.Meta(ge=1, le=8)] = 1
    threshold: UnitInterval
    rationale: OneLine


class NoiseGate(_Strict, frozen=True, kw_only=True):
    """Minimum accuracy under Gaussian noise of ``sigma`` (on the noise grid)."""

    sigma: PixelStrength = 2.0
    threshold: UnitInterval
    rationale: OneLine


class AdversarialGate(_Strict, frozen=True, kw_only=True):
    """Minimum accuracy of the served model under ``attack`` at L-inf ``eps``.

    ``fgsm``/``pgd`` are white-box where ART has the served model's gradients and
    transferred from a surrogate otherwise; ``hopskipjump`` is decision-based.
    """

    attack: AttackName = "fgsm"
    eps: PixelStrength = 1.0
    threshold: UnitInterval
    rationale: OneLine


class RobustnessGates(_Strict, frozen=True):
    """Gates the robustness stage enforces (strengths must be on the grids)."""

    shift_mean: ShiftGate = ShiftGate(
        threshold=0.96,
        rationale="Clients send off-centre digits: a 1-pixel offset in any direction must not cost "
        "accuracy.",
    )
    shift_worst_direction: ShiftGate = ShiftGate(
        threshold=0.94,
        rationale="No offset direction, diagonals included, may be a blind spot for clients who "
        "crop that way.",
    )
    shift_silent_error: ShiftGate = ShiftGate(
        threshold=0.05,
        rationale="A misread off-centre digit must be flagged, not answered with confidence, in "
        "every direction.",
    )
    shift_ink_kept: ShiftGate = ShiftGate(
        pixels=2,
        threshold=0.95,
        rationale="A digit 2 pixels off-centre with all its ink in the frame is a whole digit and "
        "must be read right.",
    )
    noise: NoiseGate = NoiseGate(
        threshold=0.93,
        rationale="Scanned and hand-drawn inputs are noisy: sigma=2 noise must keep answers right.",
    )
    adversarial: AdversarialGate = AdversarialGate(
        threshold=0.8,
        rationale="A client who knows the public data must not flip most answers with tiny edits.",
    )


class RobustnessParams(_Strict, frozen=True):
    """Stress-test grids, attack budgets and gates of the robustness stage."""

    noise_sigmas: NoiseGrid = (0.0, 0.5, 1.0, 2.0, 4.0)
    salt_and_pepper_rates: RateGrid = (0.0, 0.02, 0.05, 0.1)
    shift_pixels: PixelCountGrid = (0, 1, 2)
    occlusion_patches: PixelCountGrid = (0, 2, 3, 4)
    attack_eps: NoiseGrid = (0.0, 0.25, 0.5, 1.0, 2.0)
    attack_subset: PositiveInt = 200
    pgd_max_iter: PositiveInt = 10
    pgd_step_fraction: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.25
    blackbox_subset: PositiveInt = 20
    blackbox_max_iter: PositiveInt = 10
    blackbox_max_eval: PositiveInt = 1000
    blackbox_init_eval: PositiveInt = 100
    bootstrap_resamples: Annotated[int, msgspec.Meta(ge=100, le=100_000)] = 2000
    gates: RobustnessGates = RobustnessGates()

    def __post_init__(self) -> None:
        """Gate strengths must be measured, i.e. lie on their grids."""
        gates = self.gates
        if gates.noise.sigma not in self.noise_sigmas:
            raise ValueError(
                f"gates.noise.sigma must be one of noise_sigmas {list(self.noise_sigmas)}, "
                f"got {gates.noise.sigma}"
            )
        if gates.adversarial.eps not in self.attack_eps:
            raise ValueError(
                f"gates.adversarial.eps must be one of attack_eps {list(self.attack_eps)}, "
                f"got {gates.adversarial.eps}"
            )
        for name in ("shift_mean", "shift_worst_direction", "shift_silent_error", "shift_ink_kept"):
            pixels = getattr(gates, name).pixels
            if pixels not in self.shift_pixels:
                raise ValueError(
                    f"gates.{name}.pixels must be one of shift_pixels "
                    f"{list(self.shift_pixels)}, got {pixels}"
                )


OodSetName = Literal["blank", "all_16", "uniform_noise", "inverted", "sparse_0_16", "checkerboard"]


class OodGates(_Strict, frozen=True):
    """Gates of the out-of-distribution detector."""

    max_false_positive_rate: Gate = Gate(
        threshold=0.02,
        rationale="Clients must not see more than 2 % of genuine digits flagged as non-digits.",
    )
    max_false_positive_rate_shifted: Gate = Gate(
        threshold=0.02,
        rationale="A digit written 1 pixel off-centre is still a digit: at most 2 % of them may be "
        "flagged.",
    )
    min_detection_rate: Gate = Gate(
        threshold=0.95,
        rationale="A blank, saturated, noise or inverted image must not get a confident digit.",
    )
    gated_sets: Annotated[tuple[OodSetName, ...], msgspec.Meta(min_length=1)] = (
        "blank",
        "all_16",
        "uniform_noise",
        "inverted",
    )


class OodParams(_Strict, frozen=True):
    """PCA detector: Hotelling T^2 within, and residual Q outside, the principal subspace;
    and the ink-cut rule: a row with ink in its top (bottom) pixel row and its bottom (top)
    ``ink_cut_blank_rows`` pixel rows blank is flagged (0 turns the rule off)."""

    n_components: Annotated[int, msgspec.Meta(ge=2, le=63)] = 30
    ink_cut_blank_rows: Annotated[int, msgspec.Meta(ge=0, le=6)] = 2
    component_quantile: Annotated[float, msgspec.Meta(ge=0.5, lt=1.0)] = 0.995
    target_false_positive_rate: Annotated[float, msgspec.Meta(gt=0.0, le=0.2)] = 0.01
    synthetic_rows: Annotated[int, msgspec.Meta(ge=10, le=10_000)] = 200
    gates: OodGates = OodGates()


class Params(_Strict, frozen=True):
    """The whole of ``params.yaml``."""

    seed: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)] = 42
    data: DataParams = DataParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    robustness: RobustnessParams = RobustnessParams()
    ood: OodParams = OodParams()
    docs: DocsParams = DocsParams()


def parse_params(text: str, source: str = "params.yaml") -> Params:
    """Decode and validate params from YAML text."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        # YAML 1.2 (``1e-5`` is a float, ``yes`` a string), safe types only: as DVC reads it.
        raw = YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise ParamsError(f"{source}: not valid YAML{where}: {problem}") from None
    except ValueError as exc:  # a scalar YAML resolves but cannot build, e.g. 2025-02-31
        raise ParamsError(f"{source}: not valid YAML: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: top level must be a mapping, got {type(raw).__name__}")
    try:
        return msgspec.convert(raw, Params, strict=True)
    except msgspec.ValidationError as exc:
        raise ParamsError(f"{source}: {one_line(exc, raw)}") from None


def load_params(path: Path) -> Params:
    """Read and validate a params file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ParamsError(f"{path}: cannot read params file: {exc}") from None
    return parse_params(text, source=str(path))


def to_builtins(params: Params) -> dict[str, object]:
    """Params as plain JSON-ready data (for metadata and lineage)."""
    result = msgspec.to_builtins(params)
    if not isinstance(result, dict):  # pragma: no cover - a Struct always converts to a dict
        raise TypeError(f"params converted to {type(result).__name__}, not a mapping")
    return result
