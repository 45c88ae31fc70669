"""audit-docs: render the model card and audit documents from the pipeline's own outputs.

Templates under ``docs/templates/`` use ``string.Template`` placeholders
(``${accuracy}``). Every number comes from a pipeline output, so a document can
never be stale: this stage reruns whenever any of them changes, and the
reproducibility check covers the rendered files. An unknown placeholder is an
error, not a blank. Each template holds one ``${document_control}``: the block of
``stages/lib/doc_control.py``, whose input fingerprint covers the stage's dependencies as
``dvc.yaml`` declares them (``--dvc-yaml``) and its params except ``docs``.
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

from stages.lib.artifacts import atomic_write_bytes, read_bytes, read_json
from stages.lib.classifier import onnx_predict, onnx_scores
from stages.lib.doc_control import (
    HOW_TO,
    DocControlError,
    control_block,
    fingerprinted_params,
    input_fingerprint,
    stage_files,
    stage_rows,
)
from stages.lib.doc_figures import figure_context
from stages.lib.doc_robustness import (
    ink_cut_context,
    ink_kept_pairs,
    worst_shift,
    worst_silent_direction,
)
from stages.lib.doc_tables import (
    adversarial_table,
    class_counts_table,
    confusion_table,
    fmt,
    gates_table,
    importance_grid,
    library_table,
    lineage_table,
    ood_table,
    per_class_table,
    selection_table,
    shift_ink_table,
    stress_table,
)
from stages.lib.params import Params, load_params
from stages.lib.runner import StageError, run_stage

VERSION_LENGTH = 12  # the service reports the same md5 prefix as the model version
N_CLASSES = 10
CONTROL_SLOT = "\x00document-control\x00"  # where ${document_control} goes, filled last


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
    selection: dict[str, Any]
    ood: dict[str, Any]
    ood_metadata: dict[str, Any]
    figures: dict[str, Any]  # reports/figures/figures.json
    lineage: dict[str, tuple[str, int]]  # path -> (md5, size)
    blank_image: tuple[int, float, float]  # predicted label, its probability, OOD score


def file_md5(path: Path) -> str:
    """md5 of a file's bytes, as DVC records it."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def render_context(inputs: Inputs) -> dict[str, str]:
    """Every placeholder value the templates may use."""
    params, metrics, robustness = inputs.params, inputs.metrics, inputs.robustness
    model_md5 = inputs.lineage["models/model.onnx"][0]
    model_type = inputs.model_metadata["model_type"]
    model_params: dict[str, Any] = msgspec.to_builtins(getattr(params.train, model_type))
    shift_direction, shift_accuracy = worst_shift(robustness)
    gates = params.robustness.gates
    verdicts = robustness["gates"]
    parity = inputs.model_metadata["parity"]
    blank_label, blank_probability, blank_ood = inputs.blank_image
    ood, ood_meta = inputs.ood, inputs.ood_metadata
    marginal = [
        f"`{section}.{name}`"
        for section, report in (("evaluate", metrics), ("robustness", robustness), ("ood", ood))
        for name, gate in report["gates"].items()
        if gate["marginal"]
    ]
    return {
        "model_name": inputs.model_metadata["name"],
        "model_version": model_md5[:VERSION_LENGTH],
        "model_md5": model_md5,
        "model_type": model_type,
        "model_description": robustness["adversarial"].get("model", model_type),
        "hyperparameters": ", ".join(f"`{k}={v}`" for k, v in sorted(model_params.items())),
        "seed": str(params.seed),
        "data_source": params.data.source,
        "n_train": str(inputs.reference_stats["n_train"]),
        "n_test": str(inputs.reference_stats["n_test"]),
        "n_total": str(inputs.reference_stats["n_train"] + inputs.reference_stats["n_test"]),
        "n_train_rows": str(inputs.model_metadata["augmentation"]["n_train_rows"]),
        "rows_per_image": str(inputs.model_metadata["augmentation"]["rows_per_image"]),
        "augmentation": augmentation_text(params),
        "test_size": str(params.data.test_size),
        "min_class_count": str(params.data.min_class_count),
        "class_counts_table": class_counts_table(inputs.reference_stats),
        "histogram_bins": str(params.data.histogram_bins),
        "mean_pixel": fmt(float(np.mean(inputs.reference_stats["mean"])), 3),
        "accuracy": fmt(metrics["accuracy"]),
        "accuracy_ci": "{} to {}".format(*(fmt(v) for v in metrics["accuracy_ci95"])),
        "macro_f1": fmt(metrics["macro_f1"]),
        "log_loss": fmt(metrics["log_loss"]),
        "ece": fmt(metrics["ece"]),
        "calibration_bins": str(params.evaluate.calibration_bins),
        "min_accuracy": str(params.evaluate.gates.clean_accuracy.threshold),
        "per_class_table": per_class_table(metrics),
        "confusion_table": confusion_table(inputs.confusion),
        "importance_grid": importance_grid(inputs.importance),
        "importance_method": (
            f"{inputs.importance['method']} ({inputs.importance['scoring']}, "
            f"{inputs.importance['n_repeats']} repeats, {inputs.importance['dataset']})"
        ),
        "parity_max_diff": f"{parity['max_abs_probability_diff']:.3g}",
        "argmax_margin": f"{metrics['argmax_margin']['min_top2_probability_gap']:.2g}",
        "argmax_rows_near_tie": str(metrics["argmax_margin"]["rows_with_gap_below_1e-4"]),
        "argmax_rows": str(metrics["argmax_margin"]["n_rows"]),
        "ood_margin": f"{ood['min_abs_score_minus_threshold']:.2g}",
        "parity_mismatches": str(parity["argmax_mismatches"]),
        "parity_rows": str(parity["n_samples"]),
        "alignment_rule": inputs.model_metadata["alignment"].get("rule", "none"),
        "parity_tolerance": f"{parity['tolerance']:g}",
        "selection_table": selection_table(inputs.selection),
        "selection_rule": inputs.selection["rule"],
        "selection_why": inputs.selection["why"],
        "validation_size": str(params.train.selection.validation_size),
        "stress_table": stress_table(robustness),
        "shift_ink_table": shift_ink_table(robustness, gates.shift_ink_kept.pixels),
        **ink_cut_context(robustness),
        "adversarial_table": adversarial_table(robustness),
        "gradient_attack_kind": robustness["adversarial"]["gradient_attack_kind"],
        "attack_subset": str(params.robustness.attack_subset),
        "blackbox_subset": str(params.robustness.blackbox_subset),
        "gates_table": gates_table(
            {"evaluate": metrics["gates"], "robustness": verdicts, "ood": ood["gates"]}
        ),
        "marginal_gates": ", ".join(marginal) if marginal else "none",
        "noise_sigma": f"{gates.noise.sigma:g}",
        "noise_accuracy": fmt(verdicts["noise"]["value"], 3),
        "min_noise_accuracy": str(gates.noise.threshold),
        "shift_mean_accuracy": fmt(verdicts["shift_mean"]["value"], 3),
        "min_shift_mean": str(gates.shift_mean.threshold),
        "min_shift_worst": str(gates.shift_worst_direction.threshold),
        "max_shift_silent": str(gates.shift_silent_error.threshold),
        "shift_silent_error": fmt(verdicts["shift_silent_error"]["value"], 3),
        "min_shift_ink_kept": str(gates.shift_ink_kept.threshold),
        "ink_kept_pixels": str(gates.shift_ink_kept.pixels),
        "shift_ink_kept_accuracy": fmt(verdicts["shift_ink_kept"]["value"] or 0.0, 3),
        "shift_ink_kept_pairs": str(ink_kept_pairs(robustness, gates.shift_ink_kept.pixels)),
        "shift_silent_direction": worst_silent_direction(
            robustness, gates.shift_silent_error.pixels
        ),
        "adversarial_attack": gates.adversarial.attack.upper(),
        "adversarial_eps": f"{gates.adversarial.eps:g}",
        "adversarial_accuracy": fmt(verdicts["adversarial"]["value"] or 0.0, 3),
        "min_adversarial_accuracy": str(gates.adversarial.threshold),
        "worst_shift_direction": shift_direction,
        "worst_shift_accuracy": fmt(shift_accuracy, 3),
        "blank_label": str(blank_label),
        "blank_probability": fmt(blank_probability, 3),
        "blank_ood_score": fmt(blank_ood, 1),
        "ood_table": ood_table(ood),
        "ood_components": str(ood_meta["n_components"]),
        "ood_explained_variance": fmt(ood_meta["explained_variance_ratio"], 3),
        "ood_target_fpr": str(ood_meta["target_false_positive_rate"]),
        "ood_fpr_clean": fmt(ood["false_positive"]["clean_test"]["rate"], 3),
        "ood_fpr_shifted": fmt(ood["false_positive"]["shifted_1px_test"]["rate"], 3),
        "ood_max_fpr": str(params.ood.gates.max_false_positive_rate.threshold),
        "ood_max_fpr_shifted": str(params.ood.gates.max_false_positive_rate_shifted.threshold),
        "ood_min_detection": str(params.ood.gates.min_detection_rate.threshold),
        "ood_gated_sets": ", ".join(params.ood.gates.gated_sets),
        "lineage_table": lineage_table(inputs.lineage),
        "library_table": library_table(inputs.model_metadata),
        "params_yaml": yaml.safe_dump(fingerprinted_params(params), sort_keys=True).rstrip(),
    }


def augmentation_text(params: Params) -> str:
    """The augmentation in words."""
    aug = params.train.augment
    if not aug.enabled:
        return "none"
    shifts = ", ".join(str(p) for p in aug.shift_pixels)
    sigmas = ", ".join(f"{s:g}" for s in aug.noise_sigmas)
    directions = ", ".join(d.replace("_", "-") for d in aug.shift_directions)
    return (
        f"each training image plus copies shifted by {shifts} pixel(s) in "
        f"{len(aug.shift_directions)} directions ({directions}; a diagonal moves along both "
        f"axes; vacated pixels 0) and {aug.noise_copies} "
        f"Gaussian-noise copy per sigma ({sigmas}), clipped to 0..16, seeded from `seed`"
    )


def render(template: str, context: Mapping[str, str], source: str) -> str:
    """Substitute every placeholder; an unknown one is an error naming it."""
    try:
        return string.Template(template).substitute(context)
    except KeyError as exc:
        raise TemplateError(f"{source}: unknown placeholder ${{{exc.args[0]}}}") from None
    except ValueError as exc:
        raise TemplateError(f"{source}: malformed placeholder: {exc}") from None


def fingerprint_of(dvc_yaml: Path, params: Params) -> str:
    """The input fingerprint: md5 of every dependency ``dvc.yaml`` declares, and the params."""
    try:
        deps, _ = stage_files(dvc_yaml)
    except DocControlError as exc:
        raise StageError(str(exc)) from None
    md5s = {}
    for dep in deps:
        path = Path(dep)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: declared dependency is missing")
        md5s[dep] = file_md5(path)
    return input_fingerprint(md5s, fingerprinted_params(params))


def render_document(
    template_path: Path,
    output_path: Path,
    context: Mapping[str, str],
    fingerprint: str,
    params: Params,
) -> str:
    """One document, its document-control block filled from the pipeline."""
    source = str(template_path)
    text = render(
        template_path.read_text(encoding="utf-8"),
        {**context, "document_control": CONTROL_SLOT},
        source,
    )
    if text.count(CONTROL_SLOT) != 1:
        raise TemplateError(f"{source}: needs exactly one ${{document_control}} placeholder")
    title = next((line[2:] for line in text.splitlines() if line.startswith("# ")), None)
    if title is None:
        raise TemplateError(f"{source}: needs a '# ' title line")
    rows = stage_rows(
        title=title,
        document=str(output_path),
        template=source,
        model_version=context["model_version"],
        fingerprint=fingerprint,
        docs=params.docs,
    )
    return text.replace(CONTROL_SLOT, f"{control_block(rows)}\n\n{HOW_TO}")


def load_inputs(args: argparse.Namespace) -> Inputs:
    """Read every pipeline output the documents use."""
    onnx_bytes = read_bytes(args.model_dir / "model.onnx")
    labels, probabilities = onnx_predict(onnx_bytes, np.zeros((1, 64)))
    blank_ood = float(onnx_scores(read_bytes(args.model_dir / "ood.onnx"), np.zeros((1, 64)))[0])
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
        selection=read_json(args.selection),
        ood=read_json(args.ood_report),
        ood_metadata=read_json(args.model_dir / "ood.json"),
        figures=read_json(args.figures),
        lineage=lineage,
        blank_image=(int(labels[0]), float(probabilities[0].max()), blank_ood),
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
    parser.add_argument("--selection", type=Path, required=True)
    parser.add_argument("--ood-report", type=Path, required=True)
    parser.add_argument("--figures", type=Path, required=True, help="the figures stage's index")
    parser.add_argument("--lineage", type=Path, nargs="+", required=True)
    parser.add_argument("--render", action="append", required=True, metavar="TEMPLATE:OUTPUT")
    parser.add_argument("--dvc-yaml", type=Path, required=True, help="declares this stage's deps")
    args = parser.parse_args(argv)

    def body() -> None:
        pairs = parse_render_pairs(args.render)
        inputs = load_inputs(args)
        context = render_context(inputs)
        fingerprint = fingerprint_of(args.dvc_yaml, inputs.params)
        rendered = []
        for template_path, output_path in pairs:
            if not template_path.is_file():
                raise FileNotFoundError(f"{template_path}: template is missing")
            with_figures = {**context, **figure_context(inputs.figures, output_path)}
            text = render_document(
                template_path, output_path, with_figures, fingerprint, inputs.params
            )
            rendered.append((output_path, text))
        for output_path, text in rendered:
            atomic_write_bytes(output_path, text.encode("utf-8"))
        print(f"audit-docs: rendered {', '.join(str(o) for o, _ in rendered)}")

    return run_stage("audit-docs", body)


if __name__ == "__main__":
    sys.exit(main())
