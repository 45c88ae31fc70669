"""The committed figures (`reports/figures/`) are what the `figures` stage draws from the
committed reports, byte for byte; each is a titled, text-as-text SVG in the colour-blind-safe
palette, and the audit documents embed every one by a path that resolves from `docs/`."""

from __future__ import annotations

import hashlib
import re
import shlex
from pathlib import Path
from typing import Any

import matplotlib
import pytest
import yaml

from stages import figures
from stages.lib.artifacts import read_json
from stages.lib.plotting import BLACK, GREY, PALETTE
from tests.artifacts import require_artifact
from tests.conftest import REPO_ROOT

FIGURES = REPO_ROOT / "reports" / "figures"
OKABE_ITO = {c.lower() for c in (*PALETTE, "#F0E442")}
NEUTRAL = {BLACK.lower(), GREY.lower(), "#ffffff", "#dddddd", "#cccccc"}
EMBEDDED = re.compile(r"!\[([^\]]+)\]\(([^)]+\.svg)\)\n\n\*Figure — ([^*]+)\.\* (.+)")


@pytest.fixture(scope="module")
def index() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = read_json(require_artifact(FIGURES / "figures.json"))["figures"]
    return entries


def cividis_steps() -> set[str]:
    """The confusion matrix's discrete colours (cividis, reversed)."""
    from matplotlib.colors import BoundaryNorm, to_hex

    from stages.lib.figures_quality import SHARE_STEPS

    cmap = matplotlib.colormaps["cividis_r"]
    norm = BoundaryNorm(SHARE_STEPS, ncolors=256)
    return {to_hex(cmap(norm(step))) for step in SHARE_STEPS}


def test_the_stage_redraws_the_committed_figures_byte_for_byte(tmp_path: Path) -> None:
    stage = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    argv = shlex.split(stage["figures"]["cmd"])[3:]
    out = argv.index("--out-dir") + 1
    argv[out] = str(tmp_path)
    argv = [str(REPO_ROOT / a) if a.startswith(("reports/", "params")) else a for a in argv]
    assert figures.main(argv) == 0
    drawn = sorted(p.name for p in tmp_path.iterdir())
    assert drawn == sorted(p.name for p in FIGURES.iterdir())
    for name in drawn:
        if name == figures.INDEX:  # its paths name the output directory
            continue
        assert (tmp_path / name).read_bytes() == (FIGURES / name).read_bytes(), name


def test_the_index_lists_every_figure_with_its_md5(index: list[dict[str, Any]]) -> None:
    names = [entry["name"] for entry in index]
    assert len(names) == len(set(names)) == 8
    on_disk = sorted(p.name for p in FIGURES.glob("*.svg"))
    assert sorted(f"{name}.svg" for name in names) == on_disk
    for entry in index:
        data = (REPO_ROOT / entry["path"]).read_bytes()
        assert hashlib.md5(data, usedforsecurity=False).hexdigest() == entry["md5"]


def test_every_figure_is_titled_text_as_text_and_colour_blind_safe(
    index: list[dict[str, Any]],
) -> None:
    allowed = OKABE_ITO | NEUTRAL | cividis_steps()
    for entry in index:
        svg = (REPO_ROOT / entry["path"]).read_text(encoding="utf-8")
        texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
        assert f"<title>{entry['title']}</title>" in svg.replace("&amp;", "&")
        assert entry["title"] in texts, entry["name"]
        assert any(re.search(r"\(.+\)", text) for text in texts), entry["name"]
        assert "<image" not in svg
        assert matplotlib.__version__ not in svg
        colours = set(re.findall(r"#[0-9a-f]{6}", svg.lower()))
        assert colours <= allowed, (entry["name"], colours - allowed)
        caption = entry["caption"]
        assert caption.endswith("."), caption
        assert ". " not in caption, caption


@pytest.mark.parametrize("document", ["model_card.md", "evaluation_protocol.md"])
def test_the_documents_embed_every_figure_with_its_caption(
    document: str, index: list[dict[str, Any]]
) -> None:
    text = (REPO_ROOT / "docs" / document).read_text(encoding="utf-8")
    embedded = {m.group(2): m.groups() for m in EMBEDDED.finditer(text)}
    for entry in index:
        link = f"../{entry['path']}"
        assert link in embedded, f"{document} does not show {entry['name']}"
        alt, target, title, caption = embedded[link]
        assert (REPO_ROOT / "docs" / target).resolve() == (REPO_ROOT / entry["path"]).resolve()
        assert (alt, title, caption) == (entry["title"], entry["title"], entry["caption"])
