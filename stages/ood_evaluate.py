"""ood-evaluate: false-positive and detection rates of the served OOD detector, with gates.

In-distribution sets (flagging them is a false positive): the clean test split,
the test split shifted 1 pixel in each of the 8 directions (pooled), and the test
split with Gaussian noise sigma=2. Out-of-distribution sets are synthetic and seeded:
blank, all-16, uniform noise, inverted test digits, sparse 0/16 salt noise and
checkerboards. AUROC is computed against the clean test split.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from stages.lib.artifacts import read_bytes, read_npz, write_json
from stages.lib.classifier import onnx_scores
from stages.lib.gates import enforce, verdict, wilson_interval
from stages.lib.params import OodParams, OodSetName, load_params
from stages.lib.perturbations import PIXEL_MAX, TRANSLATIONS, gaussian_noise, translate
from stages.lib.runner import run_stage

_SALT = 7301
# Bins of the score histograms: 20 per decade from 0.1 to 10^1.5 (the threshold 1 is an edge).
LOG10_EDGES = tuple(k / 20 for k in range(-20, 31))
Scorer = Callable[[npt.NDArray[Any]], npt.NDArray[Any]]


def synthetic_sets(
    X_test: npt.NDArray[Any], rows: int, seed: int
) -> dict[OodSetName, npt.NDArray[Any]]:
    """Deterministic non-digit inputs, ``rows`` each (inverted: the whole test split)."""
    rng = np.random.default_rng([seed, _SALT])
    board = (np.indices((8, 8)).sum(axis=0) % 2).reshape(1, 64) * PIXEL_MAX
    boards = np.where(np.arange(rows)[:, None] % 2 == 0, board, PIXEL_MAX - board)
    return {
        "blank": np.zeros((rows, 64)),
        "all_16": np.full((rows, 64), PIXEL_MAX),
        "uniform_noise": rng.uniform(0.0, PIXEL_MAX, size=(rows, 64)),
        "inverted": PIXEL_MAX - X_test,
        "sparse_0_16": rng.choice([0.0, PIXEL_MAX], size=(rows, 64), p=[0.8, 0.2]),
        "checkerboard": boards.astype(np.float64),
    }


def in_distribution_sets(X_test: npt.NDArray[Any], seed: int) -> dict[str, npt.NDArray[Any]]:
    """Digits the detector must let through: clean, shifted 1 pixel, noisy."""
    rng = np.random.default_rng([seed, _SALT, 1])
    return {
        "clean_test": X_test,
        "shifted_1px_test": np.concatenate([translate(X_test, d, 1) for d in TRANSLATIONS]),
        "noise_sigma2_test": gaussian_noise(X_test, 2.0, rng),
    }


def rate(flags: npt.NDArray[np.bool_], level: float) -> dict[str, Any]:
    """Flagged fraction with its Wilson interval."""
    low, high = wilson_interval(int(flags.sum()), int(flags.size), level)
    return {
        "n": int(flags.size),
        "flagged": int(flags.sum()),
        "rate": float(flags.mean()),
        "ci95": [low, high],
    }


@dataclass(frozen=True)
class SetScores:
    """The detector's scores of every evaluated set, by name."""

    in_distribution: dict[str, npt.NDArray[Any]]
    synthetic: dict[str, npt.NDArray[Any]]


def score_sets(X_test: npt.NDArray[Any], score: Scorer, params: OodParams, seed: int) -> SetScores:
    """Score the in-distribution sets and the synthetic non-digits."""
    return SetScores(
        in_distribution={name: score(X) for name, X in in_distribution_sets(X_test, seed).items()},
        synthetic={
            name: score(X)
            for name, X in synthetic_sets(X_test, params.synthetic_rows, seed).items()
        },
    )


def ood_report(
    X_test: npt.NDArray[Any], score: Scorer, params: OodParams, seed: int, level: float
) -> dict[str, Any]:
    """False-positive rates, detection rates, AUROC and gate verdicts."""
    return report_of(score_sets(X_test, score, params, seed), params, level)


def score_histograms(scores: SetScores) -> dict[str, Any]:
    """Counts of every set's scores in log10 bins (``LOG10_EDGES``), for the OOD figure.

    Scores outside the edges are counted as ``below`` / ``above``; the closest log10 score
    to an edge says how far float noise is from moving a row to another bin.
    """
    edges = np.asarray(LOG10_EDGES, dtype=np.float64)
    sets: dict[str, Any] = {}
    closest = np.inf
    for role, named in (
        ("in-distribution", scores.in_distribution),
        ("non-digit", scores.synthetic),
    ):
        for name, values in named.items():
            logs = np.log10(np.asarray(values, dtype=np.float64))
            counts, _ = np.histogram(logs, bins=edges)
            inside = logs[(logs >= edges[0]) & (logs <= edges[-1])]
            if inside.size:
                gaps = np.abs(inside[:, None] - edges[None, :]).min()
                closest = min(closest, float(gaps))
            sets[name] = {
                "role": role,
                "n": int(logs.size),
                "counts": [int(c) for c in counts],
                "below": int(np.sum(logs < edges[0])),
                "above": int(np.sum(logs > edges[-1])),
            }
    return {
        "flag_rule": "ood_score > 1",
        "threshold": 1.0,
        "log10_edges": list(LOG10_EDGES),
        "min_log10_distance_to_an_edge": closest,
        "sets": sets,
    }


def report_of(scores: SetScores, params: OodParams, level: float) -> dict[str, Any]:
    """The report of :func:`ood_report` from the scored sets."""
    from sklearn.metrics import roc_auc_score

    clean_scores = scores.in_distribution["clean_test"]
    in_dist: dict[str, Any] = {}
    margin = np.inf  # closest |score - 1| of any scored row: where a flag could flip
    for name, set_scores in scores.in_distribution.items():
        margin = min(margin, float(np.min(np.abs(set_scores.astype(np.float64) - 1.0))))
        in_dist[name] = rate(set_scores > 1.0, level)
    out_dist: dict[str, Any] = {}
    for name, set_scores in scores.synthetic.items():
        margin = min(margin, float(np.min(np.abs(set_scores.astype(np.float64) - 1.0))))
        labels = np.concatenate([np.zeros(len(clean_scores)), np.ones(len(set_scores))])
        out_dist[name] = {
            **rate(set_scores > 1.0, level),
            "auroc": float(roc_auc_score(labels, np.concatenate([clean_scores, set_scores]))),
        }
    gates = params.gates
    fpr, shifted = in_dist["clean_test"], in_dist["shifted_1px_test"]
    worst = min(gates.gated_sets, key=lambda name: out_dist[name]["rate"])
    verdicts = {
        "max_false_positive_rate": verdict(
            description="fraction of clean test digits flagged",
            value=fpr["rate"],
            threshold=gates.max_false_positive_rate.threshold,
            rationale=gates.max_false_positive_rate.rationale,
            interval=(fpr["ci95"][0], fpr["ci95"][1]),
            kind="max",
        ),
        "max_false_positive_rate_shifted": verdict(
            description=(
                f"fraction of test digits shifted 1 pixel flagged ({len(TRANSLATIONS)} "
                "directions pooled)"
            ),
            value=shifted["rate"],
            threshold=gates.max_false_positive_rate_shifted.threshold,
            rationale=gates.max_false_positive_rate_shifted.rationale,
            interval=(shifted["ci95"][0], shifted["ci95"][1]),
            kind="max",
        ),
        "min_detection_rate": verdict(
            description=f"lowest detection rate over {', '.join(gates.gated_sets)} ({worst})",
            value=out_dist[worst]["rate"],
            threshold=gates.min_detection_rate.threshold,
            rationale=gates.min_detection_rate.rationale,
            interval=(out_dist[worst]["ci95"][0], out_dist[worst]["ci95"][1]),
        ),
    }
    return {
        "flag_rule": "ood_score > 1",
        "min_abs_score_minus_threshold": margin,
        "false_positive": in_dist,
        "detection": out_dist,
        "gates": verdicts,
        "passed": all(v["passed"] for v in verdicts.values()),
    }


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m stages.ood_evaluate --params P --data-dir D --model-dir M --report R``."""
    parser = argparse.ArgumentParser(prog="python -m stages.ood_evaluate", description=__doc__)
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--score-histograms", type=Path, required=True)
    args = parser.parse_args(argv)

    def body() -> None:
        params = load_params(args.params)
        test = read_npz(args.data_dir / "test.npz", ("X", "y"))
        onnx_bytes = read_bytes(args.model_dir / "ood.onnx")
        scores = score_sets(
            test["X"], lambda X: onnx_scores(onnx_bytes, X), params.ood, params.seed
        )
        report = report_of(scores, params.ood, params.evaluate.confidence_level)
        write_json(args.report, report)
        write_json(args.score_histograms, score_histograms(scores))
        print(
            "ood-evaluate: false positives "
            + ", ".join(f"{k} {v['rate']:.3f}" for k, v in report["false_positive"].items())
            + "; detection "
            + ", ".join(f"{k} {v['rate']:.3f}" for k, v in report["detection"].items())
        )
        enforce("ood.gates", report["gates"])

    return run_stage("ood-evaluate", body)


if __name__ == "__main__":
    sys.exit(main())
