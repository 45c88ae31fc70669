"""figures: the SVG figures of the audit documents, drawn from the pipeline's reports.

Each figure (:mod:`stages.lib.figures_quality`, :mod:`stages.lib.figures_robustness`) is
drawn with the deterministic settings of :mod:`stages.lib.plotting`, from the canonical
values in ``reports/``, so ``dvc repro`` reproduces every file byte for byte. Beside them,
``figures.json`` lists each figure's file, md5, title and one-sentence caption, in the order
the documents show them: ``audit-docs`` embeds them from it.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from stages.lib.artifacts import atomic_write_bytes, read_json, write_json
from stages.lib.figures_quality import (
    confusion_figure,
    per_class_recall_figure,
    reliability_figure,
    selection_figure,
)
from stages.lib.figures_robustness import attack_figure, noise_figure, ood_figure, shift_figure
from stages.lib.params import load_params
from stages.lib.plotting import Rendered
from stages.lib.runner import run_stage

INDEX = "figures.json"


def draw(args: argparse.Namespace) -> list[Rendered]:
    """Every figure, in document order."""
    params = load_params(args.params)
    level = params.evaluate.confidence_level
    gates = params.robustness.gates
    metrics = read_json(args.metrics)
    robustness = read_json(args.robustness)
    return [
        selection_figure(read_json(args.selection), params.train.selection.max_onnx_bytes, level),
        confusion_figure(read_json(args.confusion)),
        per_class_recall_figure(metrics, level),
        reliability_figure(read_json(args.calibration), metrics["ece"]),
        noise_figure(robustness, gates, level),
        shift_figure(robustness, gates, level),
        attack_figure(robustness, gates, level),
        ood_figure(read_json(args.ood_scores), read_json(args.ood_report)),
    ]


def index(figures: list[Rendered], out_dir: Path) -> dict[str, object]:
    """What the documents need of each figure: its path, md5, title and caption."""
    return {
        "figures": [
            {
                "name": figure.name,
                "path": (out_dir / f"{figure.name}.svg").as_posix(),
                "md5": hashlib.md5(figure.svg, usedforsecurity=False).hexdigest(),
                "title": figure.title,
                "caption": figure.caption,
            }
            for figure in figures
        ]
    }


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m stages.figures --params P --metrics M ... --out-dir reports/figures``."""
    parser = argparse.ArgumentParser(prog="python -m stages.figures", description=__doc__)
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--confusion", type=Path, required=True)
    parser.add_argument("--calibration", type=Path, required=True)
    parser.add_argument("--robustness", type=Path, required=True)
    parser.add_argument("--ood-report", type=Path, required=True)
    parser.add_argument("--ood-scores", type=Path, required=True)
    parser.add_argument("--selection", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args(argv)

    def body() -> None:
        figures = draw(args)
        for figure in figures:
            atomic_write_bytes(args.out_dir / f"{figure.name}.svg", figure.svg)
        write_json(args.out_dir / INDEX, index(figures, args.out_dir))
        print(f"figures: wrote {len(figures)} figures and {INDEX} to {args.out_dir}")

    return run_stage("figures", body)


if __name__ == "__main__":
    sys.exit(main())
