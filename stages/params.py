"""One typed loader for ``params.yaml``, shared by every stage.

Any unknown key, wrong type or out-of-range value raises :class:`ParamsError`
with a single line naming the key, before a stage does any work.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import yaml

ModelType = Literal["logistic_regression", "svc", "random_forest"]

Probability = Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)]
UnitInterval = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0.0)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0.0)]


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-5`` as a float, as YAML 1.2 (and DVC) do."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.VERBOSE,
    ),
    list("-+0123456789."),
)


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


class TrainParams(_Strict, frozen=True):
    """Which model to train, with the hyperparameters of each model type."""

    model: ModelType = "logistic_regression"
    onnx_tolerance: PositiveFloat = 1e-5
    logistic_regression: LogisticRegressionParams = LogisticRegressionParams()
    svc: SVCParams = SVCParams()
    random_forest: RandomForestParams = RandomForestParams()


class EvaluateParams(_Strict, frozen=True):
    """Quality gate and evaluation settings."""

    min_accuracy: UnitInterval = 0.95
    calibration_bins: Annotated[int, msgspec.Meta(ge=2, le=100)] = 10
    permutation_repeats: PositiveInt = 5


AttackName = Literal["fgsm", "pgd", "hopskipjump"]
PixelStrength = Annotated[float, msgspec.Meta(ge=0.0, le=16.0)]
NoiseGrid = Annotated[tuple[PixelStrength, ...], msgspec.Meta(min_length=1)]
RateGrid = Annotated[tuple[UnitInterval, ...], msgspec.Meta(min_length=1)]
PixelCountGrid = Annotated[
    tuple[Annotated[int, msgspec.Meta(ge=0, le=8)], ...], msgspec.Meta(min_length=1)
]


class RobustnessGates(_Strict, frozen=True):
    """Minimum accuracies the robustness stage enforces (strengths must be on the grids)."""

    noise_sigma: PixelStrength = 2.0
    min_noise_accuracy: UnitInterval = 0.0
    adversarial_attack: AttackName = "fgsm"
    adversarial_eps: PixelStrength = 0.5
    min_adversarial_accuracy: UnitInterval = 0.0


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
    gates: RobustnessGates = RobustnessGates()

    def __post_init__(self) -> None:
        """Gate strengths must be measured, i.e. lie on their grids."""
        if self.gates.noise_sigma not in self.noise_sigmas:
            raise ValueError(
                f"gates.noise_sigma must be one of noise_sigmas {list(self.noise_sigmas)}, "
                f"got {self.gates.noise_sigma}"
            )
        if self.gates.adversarial_eps not in self.attack_eps:
            raise ValueError(
                f"gates.adversarial_eps must be one of attack_eps {list(self.attack_eps)}, "
                f"got {self.gates.adversarial_eps}"
            )


class Params(_Strict, frozen=True):
    """The whole of ``params.yaml``."""

    seed: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)] = 42
    data: DataParams = DataParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    robustness: RobustnessParams = RobustnessParams()


_PATH_IN_MESSAGE = re.compile(r" - at `\$\.?([^`]*)`$")
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `([^`]*)`$")
_MISSING = object()


def _lookup(raw: object, dotted_key: str) -> object:
    """The raw value at a dotted key, or ``_MISSING``."""
    node = raw
    for part in dotted_key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _one_line(error: msgspec.ValidationError, raw: object) -> str:
    """Rewrite msgspec's message as ``key: problem, got value`` on one line."""
    message = str(error).replace("\n", " ")
    match = _PATH_IN_MESSAGE.search(message)
    key = ""
    if match is not None:
        key = match.group(1).replace("[", ".").replace("]", "")
        message = message[: match.start()]
    unknown = _UNKNOWN_FIELD.match(message)
    if unknown is not None:
        return f"{key + '.' if key else ''}{unknown.group(1)}: unknown key"
    value = _lookup(raw, key) if key else _MISSING
    redundant = (
        value is _MISSING
        or ", got " in message
        or (isinstance(value, str) and repr(value) in message)
    )
    got = "" if redundant else f", got {value!r}"
    return f"{key or '<top level>'}: {message}{got}"


def parse_params(text: str, source: str = "params.yaml") -> Params:
    """Decode and validate params from YAML text."""
    try:
        # _Yaml12Loader is a SafeLoader subclass: no arbitrary object construction.
        raw = yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506  # nosec B506
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise ParamsError(f"{source}: not valid YAML{where}: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: top level must be a mapping, got {type(raw).__name__}")
    try:
        return msgspec.convert(raw, Params, strict=True)
    except msgspec.ValidationError as exc:
        raise ParamsError(f"{source}: {_one_line(exc, raw)}") from None


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
