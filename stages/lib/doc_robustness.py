"""The figures of reports/robustness.json the audit documents quote in words: the worst
shift direction, the direction with the most silent errors, the ink-kept pairs and the
ink-cut experiment (read by ``python -m stages.audit_docs``)."""

from __future__ import annotations

from typing import Any

from stages.lib.doc_tables import fmt, ink_cut_table
from stages.lib.perturbations import TRANSLATIONS, family_name


def worst_shift(robustness: dict[str, Any]) -> tuple[str, float]:
    """The 1-pixel shift direction (of the 8) with the lowest accuracy; on a tie the first in
    the order the gates use (up, down, left, right, then the diagonals)."""
    stress = robustness["stress"]
    shifts = {
        direction: stress[family_name(direction)]["by_strength"]["1"]["accuracy"]
        for direction in TRANSLATIONS
        if "1" in stress[family_name(direction)]["by_strength"]
    }
    direction = min(shifts, key=lambda k: shifts[k])
    return direction.replace("_", "-"), shifts[direction]


def worst_silent_direction(robustness: dict[str, Any], pixels: int) -> str:
    """The direction with the highest silent-error rate at ``pixels`` (first on a tie)."""
    stress = robustness["stress"]
    rates = {
        d: stress[family_name(d)]["by_strength"][str(pixels)]["silent_error_rate"]
        for d in TRANSLATIONS
    }
    return max(rates, key=lambda d: rates[d]).replace("_", "-")


def ink_kept_pairs(robustness: dict[str, Any], pixels: int) -> int:
    """How many (image, direction) pairs keep all their ink when shifted ``pixels``."""
    stress = robustness["stress"]
    return sum(
        int(stress[family_name(d)]["by_strength"][str(pixels)]["ink_kept"]["n"])
        for d in TRANSLATIONS
    )


def ink_cut_context(robustness: dict[str, Any]) -> dict[str, str]:
    """The ink-cut experiment's figures the documents quote (largest shift of the grid)."""
    experiment = robustness["ink_cut_flag"]
    cut = {d: r for d, r in experiment["by_direction"].items() if r["n"]}
    vertical = {d: r for d, r in cut.items() if d.split("_")[0] in ("up", "down")}
    noisy = experiment["with_noise"]
    false_flags = experiment["rule_false_flags"]

    def span(records: dict[str, Any], field: str) -> str:
        values = sorted({fmt(r[field], 3) for r in records.values()}, key=float)
        if not values:
            return "—"
        return values[0] if len(values) == 1 else f"{values[0]} to {values[-1]}"

    return {
        "cut_pixels": str(experiment["pixels"]),
        "cut_blank_rows": str(experiment["blank_rows"]),
        "cut_rule": experiment["rule"],
        "cut_vertical_accuracy": span(vertical, "accuracy"),
        "cut_vertical_silent_pca": span(vertical, "silent_error_rate_pca_only"),
        "cut_vertical_silent": span(vertical, "silent_error_rate"),
        "cut_vertical_flag": span(vertical, "flag_rate"),
        "cut_rule_false_flags": (
            f"{fmt(false_flags['clean_test'], 3)} of clean, "
            f"{fmt(false_flags['shifted_1px_test'], 3)} of 1-pixel shifted and "
            f"{fmt(false_flags['noise_test'], 3)} of noisy test digits"
        ),
        "cut_noise_sigma": f"{noisy['sigma']:g}",
        "cut_noise_accuracy": fmt(noisy.get("accuracy", 0.0), 3),
        "cut_noise_flag": fmt(noisy.get("flag_rate", 0.0), 3),
        "cut_noise_silent": fmt(noisy.get("silent_error_rate", 0.0), 3),
        "cut_noise_rule": fmt(noisy.get("rule_flag_rate", 0.0), 3),
        "ink_cut_table": ink_cut_table(experiment),
    }
