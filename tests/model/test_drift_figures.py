"""docs/drift.md quotes exactly what `make drift-doc` computes, and says where it came from."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO_ROOT
from tools.drift_figures import BEGIN, END, REFERENCE, TEST_SPLIT, figures, locked_md5

pytestmark = pytest.mark.model
DOC = REPO_ROOT / "docs" / "drift.md"


def generated_section() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1
    assert text.count(END) == 1
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n").splitlines()


def test_drift_doc_figures_are_what_the_script_computes() -> None:
    _provenance, blank, *quoted = generated_section()
    assert blank == ""
    assert quoted == figures(REPO_ROOT), "docs/drift.md is stale: run `make drift-doc`"


def test_drift_doc_names_the_command_the_commit_and_the_inputs() -> None:
    provenance = generated_section()[0]
    assert "`make drift-doc`" in provenance
    assert f"`{TEST_SPLIT}` (md5 `{locked_md5(REPO_ROOT, TEST_SPLIT)}`)" in provenance
    assert f"`{REFERENCE}` (md5 `{locked_md5(REPO_ROOT, REFERENCE)}`)" in provenance
    # The hash itself is not looked up: a rebase or squash merge rewrites it.
    assert re.search(r"at commit `[0-9a-f]{12}`", provenance), provenance


def test_the_scores_separate_clean_from_shifted_and_inverted_digits() -> None:
    scores = {
        cells[0]: float(cells[2])
        for line in figures(REPO_ROOT)
        if line.startswith("| ") and not line.startswith("| inputs")
        for cells in [[cell.strip() for cell in line.strip("|").split("|")]]
    }
    assert scores["clean test digits"] < 0.2 < scores["shifted one pixel right"]
    assert scores["shifted one pixel right"] < scores["inverted (`16 - x`)"]
