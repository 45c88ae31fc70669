"""Every alert's ``runbook_url`` names a section that exists in the repository's docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "digits-alerts.yml"


def anchors(document: Path) -> set[str]:
    """GitHub's anchors of the document's headings (lower case, punctuation dropped)."""
    found = set()
    for line in document.read_text(encoding="utf-8").splitlines():
        if heading := re.match(r"#{1,6} (.+)", line):
            text = re.sub(r"[^\w\- ]", "", heading[1].strip().lower())
            found.add(text.replace(" ", "-"))
    return found


def test_every_runbook_url_names_an_existing_section() -> None:
    rules = [
        rule
        for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    ]
    urls = {
        r["alert"]: r["annotations"]["runbook_url"]
        for r in rules
        if "runbook_url" in r.get("annotations", {})
    }
    assert "DigitsInputDrift" in urls
    for alert, url in urls.items():
        path, _, anchor = url.partition("#")
        assert (ROOT / path).is_file(), f"{alert}: {path} does not exist"
        assert anchor in anchors(ROOT / path), f"{alert}: no section #{anchor} in {path}"
