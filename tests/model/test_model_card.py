"""The generated model card quotes the numbers of the artifacts it describes."""

from __future__ import annotations

import json
import re

import pytest

from stages.audit_docs import file_md5
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.model


def test_rendered_model_card_quotes_the_pipeline_numbers() -> None:
    card = (REPO_ROOT / "docs" / "model_card.md").read_text(encoding="utf-8")
    metrics = json.loads((REPO_ROOT / "reports" / "metrics.json").read_text(encoding="utf-8"))
    assert f"| accuracy | {metrics['accuracy']:.4f} |" in card
    assert f"| macro-F1 | {metrics['macro_f1']:.4f} |" in card
    onnx_md5 = file_md5(REPO_ROOT / "models" / "model.onnx")
    assert f"`{onnx_md5[:12]}`" in card
    assert re.search(rf"^\| `models/model\.onnx` +\| `{onnx_md5}` +\|", card, flags=re.MULTILINE)
    ood_md5 = file_md5(REPO_ROOT / "models" / "ood.onnx")
    assert re.search(rf"^\| `models/ood\.onnx` +\| `{ood_md5}` +\|", card, flags=re.MULTILINE)
    selection = json.loads((REPO_ROOT / "reports" / "model_selection.json").read_text())
    assert selection["winner"] in card
    robustness = json.loads((REPO_ROOT / "reports" / "robustness.json").read_text())
    for name, gate in robustness["gates"].items():
        assert gate["rationale"] in card, name
    assert "${" not in card


def test_model_card_says_test_accuracy_is_optimistic_for_unseen_writers() -> None:
    """R17's mitigation: the generated card itself limits what its accuracy claims."""
    card = (REPO_ROOT / "docs" / "model_card.md").read_text(encoding="utf-8")
    sections = {
        section.splitlines()[0].strip(): section for section in ("## " + card).split("\n## ")[1:]
    }
    limitations = next(text for title, text in sections.items() if "imitation" in title)
    sentence = " ".join(limitations.split())
    assert "Writers are not kept apart across the split" in sentence
    assert "test accuracy is optimistic for unseen writers" in sentence
