"""`python -m tools.audit_pack` (`make audit-pack`) on a clone of HEAD: the HTML opens in a real
headless Chromium offline with every figure loaded, no broken image and no console error; the
PDF Chromium printed turns (pdftoppm) into pages that all carry ink; same commit, same HTML."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import Browser, Page, Route

from stages.lib.artifacts import read_json
from tests.conftest import REPO_ROOT
from tests.integration.demo_browser import headless_chromium
from tests.integration.dvc_repo import clone, run, tool_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PDFTOPPM = shutil.which("pdftoppm")
FIGURES = read_json(REPO_ROOT / "reports" / "figures" / "figures.json")["figures"]
EMBEDDING_DOCUMENTS = 2  # the model card and the evaluation protocol show every figure
INK = 200  # a grey level below this is ink on the white page
MIN_INK_SHARE = 0.001  # a page with a heading alone has more


def audit_pack(repo: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """The command as `make audit-pack` runs it, on ``repo``."""
    return subprocess.run(
        [sys.executable, "-m", "tools.audit_pack", "--repo", str(repo), "--out", str(out)],
        cwd=REPO_ROOT,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The pack of a fresh clone of HEAD, and that clone."""
    repo = clone(tmp_path_factory.mktemp("pack") / "repo")
    out = repo.parent / "audit"
    result = audit_pack(repo, out)
    assert result.returncode == 0, result.stderr
    return repo, out


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from headless_chromium()


def page_problems(browser: Browser, url: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Open ``url`` with every request leaving the page refused; return the console and page
    errors and refused requests, and each image's state once the page has loaded."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page: Page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}")
            if message.type in {"error", "warning"}
            else None
        ),
    )

    def refuse(route: Route) -> None:
        if route.request.url != url and not route.request.url.startswith("data:"):
            problems.append(f"request: {route.request.url}")
            route.abort()
        else:
            route.continue_()

    page.route("**/*", refuse)
    page.goto(url, wait_until="load")
    images: list[dict[str, Any]] = page.eval_on_selector_all(
        "img",
        """images => images.map(img => ({
            alt: img.alt, scheme: img.src.split(',')[0], complete: img.complete,
            width: img.naturalWidth, height: img.naturalHeight,
        }))""",
    )
    context.close()
    return problems, images


def test_every_figure_loads_offline_with_no_console_error(
    pack: tuple[Path, Path], browser: Browser
) -> None:
    _, out = pack
    problems, images = page_problems(browser, (out / "audit-pack.html").resolve().as_uri())
    assert problems == []
    assert len(images) == EMBEDDING_DOCUMENTS * len(FIGURES)
    broken = [image for image in images if not image["complete"] or image["width"] == 0]
    assert broken == []
    assert {image["scheme"] for image in images} == {"data:image/svg+xml;base64"}
    shown = sorted(image["alt"] for image in images)
    assert shown == sorted([entry["title"] for entry in FIGURES] * EMBEDDING_DOCUMENTS)


def test_a_broken_image_and_an_outside_request_are_caught(browser: Browser, tmp_path: Path) -> None:
    """The check above can fail: a page with a corrupt inline image and a remote one."""
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>t</title></head><body>'
        '<img alt="corrupt" src="data:image/svg+xml;base64,PHN2Zz4=">'
        '<img alt="remote" src="http://198.51.100.7/figure.svg"></body></html>',
        encoding="utf-8",
    )
    problems, images = page_problems(browser, page.resolve().as_uri())
    assert [image["width"] for image in images] == [0, 0]
    assert any(p.startswith("request: http://198.51.100.7/") for p in problems)


def test_the_pack_is_of_the_commit_and_holds_the_three_documents(pack: tuple[Path, Path]) -> None:
    repo, out = pack
    text = (out / "audit-pack.html").read_text(encoding="utf-8")
    head = run("git", "rev-parse", "HEAD", cwd=repo).strip()
    assert f"audit pack of commit <code>{head}</code>" in text
    for document in ("model-card", "evaluation-protocol", "risk-register"):
        assert f'<section class="document" id="{document}">' in text
    assert "Content-Security-Policy" in text
    assert not re.search(r'(src|href)="(https?:)?//', text)
    assert "### Change history" not in text  # Markdown rendered, not copied
    assert len(re.findall(r"<h3 id=\"[a-z-]+-change-history\">", text)) == 3


@pytest.mark.skipif(PDFTOPPM is None, reason="pdftoppm missing (apt-get install poppler-utils)")
def test_every_pdf_page_carries_ink(pack: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = pack
    assert PDFTOPPM is not None
    subprocess.run(
        [PDFTOPPM, "-r", "30", "-gray", str(out / "audit-pack.pdf"), str(tmp_path / "page")],
        check=True,
        timeout=180,
    )
    pages = sorted(tmp_path.glob("page-*.pgm"))
    assert len(pages) >= 3  # each document starts on a new page
    for path in pages:
        pixels = read_pgm(path)
        share = float(np.mean(pixels < INK))
        assert share > MIN_INK_SHARE, f"{path.name} is blank ({share:.5f} of it inked)"


def read_pgm(path: Path) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """The grey levels of a binary PGM (P5, 8 bit) as pdftoppm -gray writes it."""
    data = path.read_bytes()
    fields = re.match(rb"P5\s+(\d+)\s+(\d+)\s+(\d+)\s", data)
    assert fields is not None, path
    width, height, depth = (int(v) for v in fields.groups())
    assert depth == 255
    pixels = np.frombuffer(data[fields.end() :], dtype=np.uint8, count=width * height)
    return pixels.reshape(height, width)


def test_a_blank_page_would_be_caught(tmp_path: Path) -> None:
    """The ink check can fail: an all-white page has no ink."""
    blank = tmp_path / "blank.pgm"
    blank.write_bytes(b"P5\n4 3\n255\n" + bytes([255] * 12))
    assert float(np.mean(read_pgm(blank) < INK)) == 0.0


def test_same_commit_same_html(pack: tuple[Path, Path], tmp_path: Path) -> None:
    repo, out = pack
    again = audit_pack(repo, tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "audit-pack.html").read_bytes() == (out / "audit-pack.html").read_bytes()


def test_uncommitted_documents_are_refused(tmp_path: Path) -> None:
    repo = clone(tmp_path / "repo")
    card = repo / "docs" / "model_card.md"
    card.write_text(card.read_text(encoding="utf-8") + "\nedited\n", encoding="utf-8")
    result = audit_pack(repo, tmp_path / "audit")
    assert result.returncode == 2
    assert "uncommitted changes to docs/model_card.md" in result.stderr
    assert not (tmp_path / "audit").exists()
