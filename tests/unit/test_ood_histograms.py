"""ood-evaluate's score histograms (the OOD figure's data) and the figures' Markdown in the
audit documents, on scores and an index made here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stages.lib.doc_figures import figure_context
from stages.ood_evaluate import LOG10_EDGES, SetScores, score_histograms

pytestmark = pytest.mark.unit


def test_every_score_is_counted_once_in_its_log_bin() -> None:
    scores = SetScores(
        in_distribution={"clean_test": np.array([0.5, 0.5, 0.99, 0.05], dtype=np.float32)},
        synthetic={"blank": np.array([1.2, 100.0], dtype=np.float32)},
    )
    histograms = score_histograms(scores)
    assert histograms["log10_edges"] == list(LOG10_EDGES)
    assert 0.0 in histograms["log10_edges"]  # the threshold 1 is an edge
    clean, blank = histograms["sets"]["clean_test"], histograms["sets"]["blank"]
    assert (clean["role"], blank["role"]) == ("in-distribution", "non-digit")
    assert clean["n"] == 4
    assert clean["below"] == 1  # 0.05 is under the first edge (0.1)
    assert sum(clean["counts"]) == 3
    bin_of_half = int(np.floor((np.log10(0.5) + 1.0) * 20))
    assert clean["counts"][bin_of_half] == 2
    assert blank["above"] == 1
    assert sum(blank["counts"]) == 1
    first_flagged = LOG10_EDGES.index(0.0)
    assert sum(blank["counts"][first_flagged:]) == 1
    assert sum(clean["counts"][first_flagged:]) == 0
    # 0.5 (log10 -0.30103) is the score closest to an edge (-0.3); 0.99 is 0.00436 below 0.
    assert histograms["min_log10_distance_to_an_edge"] == pytest.approx(
        float(np.log10(2.0)) - 0.3, rel=1e-6
    )


def test_figures_are_embedded_with_paths_relative_to_the_document() -> None:
    index = {
        "figures": [
            {
                "name": "robustness_noise",
                "path": "reports/figures/robustness_noise.svg",
                "title": "Accuracy against noise",
                "caption": "Look at the star.",
            }
        ]
    }
    in_docs = figure_context(index, Path("docs/model_card.md"))
    image = "![Accuracy against noise](../reports/figures/robustness_noise.svg)"
    caption = "*Figure — Accuracy against noise.* Look at the star."
    assert in_docs == {"figure_robustness_noise": f"{image}\n\n{caption}"}
    at_root = figure_context(index, Path("README.md"))["figure_robustness_noise"]
    assert "](reports/figures/robustness_noise.svg)" in at_root
