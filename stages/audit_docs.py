"""audit-docs: render the model card and audit documents from the pipeline's own outputs.

Templates under ``docs/templates/`` use ``string.Template`` placeholders
(``${accuracy}``). Every number comes from a pipeline output, so a document can
never be stale: this stage reruns whenever any of them changes, and the
reproducibility check covers the rendered files. An unknown placeholder is an
error, not a blank.
"""

from __future__ import annotations

import argparse
import hashlib
import string
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import yaml

from stages.artifacts import atomic_write_bytes, read_bytes, read_json
from stages.params import Params, load_params, to_builtins
from stages.runner import StageError, run_stage
from stages.train import onnx_predict

VERSION_LENGTH = 12  # the service reports the same md5 prefix as the model version
N_CLASSES = 10


class TemplateError(StageError):
    """A template refers to a value the pipeline does not produce."""


@dataclass(frozen=True)
class Inputs:
    """The pipeline outputs the documents are rendered from."""

    params: Params
    reference_stats: dict[str, Any]
    model_metadata: dict[str, Any]
    metrics: dict[str, Any]
    confusion: list[dict[str, int]]
    importance: dict[str, Any]
    robustness: dict[str, Any]
    lineage: dict[str, tuple[str, int]]  # path -> (md5, size)
    blank_image: tuple[int, float]  # predicted label and its probability


def file_md5(path: Path) -> str:
    """md5 of a file's bytes, as DVC records it."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fmt(value: float, digits: int = 4) -> str:
    """A fixed-precision number for tables."""
    return f"{value:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]], align: str = "---:") -> str:
    """A Markdown table; the first column is left-aligned."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":---"] + [align] * (len(header) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def confusion_table(rows: list[dict[str, int]]) -> str:
    """10x10 counts: rows are actual classes, columns predicted classes."""
    matrix = np.zeros((N_CLASSES, N_CLASSES), dtype=int)
    for row in rows:
        matrix[row["actual"], row["predicted"]] += 1
    header = ["actual \\ predicted", *(str(c) for c in range(N_CLASSES))]
    body = [
        [
            str(a),
            *(f"**{n}**" if a == p else (str(n) if n else "·") for p, n in enumerate(matrix[a])),
        ]
        for a in range(N_CLASSES)
    ]
    return markdown_table(header, body, align=":---:")


def per_class_table(metrics: dict[str, Any]) -> str:
    """Precision, recall, F1 and support per class."""
    body = [
        [label, fmt(m["precision"]), fmt(m["recall"]), fmt(m["f1"]), str(m["support"])]
        for label, m in sorted(metrics["per_class"].items(), key=lambda item: int(item[0]))
    ]
    return markdown_table(["class", "precision", "recall", "F1", "support"], body)


def class_counts_table(stats: dict[str, Any]) -> str:
    """Rows per class in each split."""
    body = [
        ["train", *(str(n) for n in stats["class_counts_train"])],
        ["test", *(str(n) for n in stats["class_counts_test"])],
    ]
    return markdown_table(["split", *(str(c) for c in range(N_CLASSES))], body)


def importance_grid(importance: dict[str, Any]) -> str:
    """Permutation importance of each pixel, laid out as the 8x8 image."""
    values = np.asarray(importance["importances_mean"]).reshape(8, 8)
    body = [[f"row {r}", *(fmt(v, 3) for v in values[r])] for r in range(8)]
    return markdown_table(["", *(f"col {c}" for c in range(8))], body)


def stress_table(robustness: dict[str, Any]) -> str:
    """Accuracy (flip rate) of every stress test at every strength."""
    body = []
    for test, result in sorted(robustness["stress"].items()):
        cells = [
            f"{key}: {fmt(score['accuracy'], 3)} ({fmt(score['flip_rate'], 3)})"
            for key, score in result["by_strength"].items()
        ]
        body.append([f"`{test}`", result["strength"], "; ".join(cells)])
    return markdown_table(
        ["test", "strength", "strength: accuracy (flip rate)"], body, align=":---"
    )


def adversarial_table(robustness: dict[str, Any]) -> str:
    """Adversarial accuracy, success rate and perturbation size per attack and eps."""
    adversarial = robustness["adversarial"]
    body = []
    for attack in ("fgsm", "pgd", "hopskipjump"):
        result = adversarial.get(attack, {})
        if result.get("status") != "ok":
            body.append([attack.upper(), "—", result.get("status", "not run"), "", "", ""])
            continue
        for eps, score in result["by_eps"].items():
            body.append(
                [
                    attack.upper(),
                    eps,
                    fmt(score["adversarial_accuracy"], 3),
                    fmt(score["attack_success_rate"], 3),
                    fmt(score["mean_linf"], 3),
                    fmt(score["mean_l2"], 3),
                ]
            )
    return markdown_table(
        ["attack", "eps (L∞)", "adversarial accuracy", "success rate", "mean L∞", "mean L2"], body
    )


def gates_table(inputs: Inputs) -> str:
    """Every gate with its threshold, measured value and verdict."""
    quality = inputs.metrics["quality_gate"]
    body = [
        [
            "quality: test accuracy",
            f"≥ {quality['min_accuracy']}",
            fmt(quality["measured_accuracy"]),
            "pass" if quality["passed"] else "FAIL",
        ]
    ]
    for name, gate in sorted(inputs.robustness["gates"].items()):
        body.append(
            [
                f"robustness: {gate['description']} (`{name}`)",
                f"≥ {gate['threshold']}",
                fmt(gate["measured"]) if gate.get("measured") is not None else "—",
                "pass" if gate["passed"] else "FAIL",
            ]
        )
    return markdown_table(["gate", "threshold", "measured", "verdict"], body, align=":---")


def lineage_table(lineage: Mapping[str, tuple[str, int]]) -> str:
    """Each upstream artifact with the md5 that dvc.lock records for it."""
    body = [[f"`{path}`", f"`{md5}`", str(size)] for path, (md5, size) in sorted(lineage.items())]
    return markdown_table(["artifact", "md5", "bytes"], body, align=":---")


def library_table(metadata: dict[str, Any]) -> str:
    """Library versions the model was trained and exported with."""
    body = [[name, version] for name, version in sorted(metadata["library_versions"].items())]
    return markdown_table(["library", "version"], body, align=":---")


def worst_shift(robustness: dict[str, Any]) -> tuple[str, float]:
    """The 1-pixel shift direction with the lowest accuracy."""
    shifts = {
        test: result["by_strength"]["1"]["accuracy"]
        for test, result in robustness["stress"].items()
        if test.startswith("shift_") and "1" in result["by_strength"]
    }
    direction = min(shifts, key=lambda k: shifts[k])
    return direction.removeprefix("shift_"), shifts[direction]


def render_context(inputs: Inputs) -> dict[str, str]:
    """Every placeholder value the templates may use."""
    params, metrics, robustness = inputs.params, inputs.metrics, inputs.robustness
    model_md5 = inputs.lineage["models/model.onnx"][0]
    model_params: dict[str, Any] = msgspec.to_builtins(getattr(params.train, params.train.model))
    noise = robustness["stress"]["gaussian_noise"]["by_strength"]
    shift_direction, shift_accuracy = worst_shift(robustness)
    gates = params.robustness.gates
    parity = inputs.model_metadata["parity"]
    blank_label, blank_probability = inputs.blank_image
    return {
        "model_name": inputs.model_metadata["name"],
        "model_version": model_md5[:VERSION_LENGTH],
        "model_md5": model_md5,
        "model_type": params.train.model,
        "model_description": robustness["adversarial"].get("model", params.train.model),
        "hyperparameters": ", ".join(f"`{k}={v}`" for k, v in sorted(model_params.items())),
        "seed": str(params.seed),
        "data_source": params.data.source,
        "n_train": str(inputs.reference_stats["n_train"]),
        "n_test": str(inputs.reference_stats["n_test"]),
        "n_total": str(inputs.reference_stats["n_train"] + inputs.reference_stats["n_test"]),
        "test_size": str(params.data.test_size),
        "min_class_count": str(params.data.min_class_count),
        "class_counts_table": class_counts_table(inputs.reference_stats),
        "histogram_bins": str(params.data.histogram_bins),
        "mean_pixel": fmt(float(np.mean(inputs.reference_stats["mean"])), 3),
        "accuracy": fmt(metrics["accuracy"]),
        "macro_f1": fmt(metrics["macro_f1"]),
        "log_loss": fmt(metrics["log_loss"]),
        "ece": fmt(metrics["ece"]),
        "calibration_bins": str(params.evaluate.calibration_bins),
        "min_accuracy": str(params.evaluate.min_accuracy),
        "per_class_table": per_class_table(metrics),
        "confusion_table": confusion_table(inputs.confusion),
        "importance_grid": importance_grid(inputs.importance),
        "importance_method": (
            f"{inputs.importance['method']} ({inputs.importance['scoring']}, "
            f"{inputs.importance['n_repeats']} repeats, {inputs.importance['dataset']})"
        ),
        "parity_max_diff": f"{parity['max_abs_probability_diff']:.3g}",
        "parity_mismatches": str(parity["argmax_mismatches"]),
        "parity_tolerance": f"{parity['tolerance']:g}",
        "stress_table": stress_table(robustness),
        "adversarial_table": adversarial_table(robustness),
        "attack_subset": str(params.robustness.attack_subset),
        "gates_table": gates_table(inputs),
        "noise_sigma": f"{gates.noise_sigma:g}",
        "noise_accuracy": fmt(noise[f"{gates.noise_sigma:g}"]["accuracy"], 3),
        "min_noise_accuracy": str(gates.min_noise_accuracy),
        "adversarial_attack": gates.adversarial_attack.upper(),
        "adversarial_eps": f"{gates.adversarial_eps:g}",
        "min_adversarial_accuracy": str(gates.min_adversarial_accuracy),
        "worst_shift_direction": shift_direction,
        "worst_shift_accuracy": fmt(shift_accuracy, 3),
        "blank_label": str(blank_label),
        "blank_probability": fmt(blank_probability, 3),
        "lineage_table": lineage_table(inputs.lineage),
        "library_table": library_table(inputs.model_metadata),
        "params_yaml": yaml.safe_dump(to_builtins(params), sort_keys=True).rstrip(),
    }


def render(template: str, context: Mapping[str, str], source: str) -> str:
    """Substitute every placeholder; an unknown one is an error naming it."""
    try:
        return string.Template(template).substitute(context)
    except KeyError as exc:
        raise TemplateError(f"{source}: unknown placeholder ${{{exc.args[0]}}}") from None
    except ValueError as exc:
        raise TemplateError(f"{source}: malformed placeholder: {exc}") from None


def load_inputs(args: argparse.Namespace) -> Inputs:
    """Read every pipeline output the documents use."""
    onnx_bytes = read_bytes(args.model_dir / "model.onnx")
    labels, probabilities = onnx_predict(onnx_bytes, np.zeros((1, 64)))
    lineage: dict[str, tuple[str, int]] = {}
    for path in args.lineage:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: required input is missing")
        lineage[str(path)] = (file_md5(path), path.stat().st_size)
    return Inputs(
        params=load_params(args.params),
        reference_stats=read_json(args.data_dir / "reference_stats.json"),
        model_metadata=read_json(args.model_dir / "model.json"),
        metrics=read_json(args.metrics),
        confusion=read_json(args.confusion),
        importance=read_json(args.importance),
        robustness=read_json(args.robustness),
        lineage=lineage,
        blank_image=(int(labels[0]), float(probabilities[0].max())),
    )


def parse_render_pairs(pairs: list[str]) -> list[tuple[Path, Path]]:
    """``TEMPLATE:OUTPUT`` pairs from the command line."""
    result = []
    for pair in pairs:
        template, sep, output = pair.partition(":")
        if not sep or not template or not output:
            raise StageError(f"--render expects TEMPLATE:OUTPUT, got {pair!r}")
        result.append((Path(template), Path(output)))
    return result


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m stages.audit_docs --params P ... --render T:O [--render T:O ...]``."""
    parser = argparse.ArgumentParser(prog="python -m stages.audit_docs", description=__doc__)
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--confusion", type=Path, required=True)
    parser.add_argument("--importance", type=Path, required=True)
    parser.add_argument("--robustness", type=Path, required=True)
    parser.add_argument("--lineage", type=Path, nargs="+", required=True)
    parser.add_argument("--render", action="append", required=True, metavar="TEMPLATE:OUTPUT")
    args = parser.parse_args(argv)

    def body() -> None:
        pairs = parse_render_pairs(args.render)
        inputs = load_inputs(args)
        context = render_context(inputs)
        rendered = []
        for template_path, output_path in pairs:
            if not template_path.is_file():
                raise FileNotFoundError(f"{template_path}: template is missing")
            text = render(template_path.read_text(encoding="utf-8"), context, str(template_path))
            rendered.append((output_path, text))
        for output_path, text in rendered:
            atomic_write_bytes(output_path, text.encode("utf-8"))
        print(f"audit-docs: rendered {', '.join(str(o) for o, _ in rendered)}")

    return run_stage("audit-docs", body)


if __name__ == "__main__":
    sys.exit(main())
