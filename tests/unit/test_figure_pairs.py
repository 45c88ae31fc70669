"""`python -m tools.figure_pairs`: each figure before (a git revision) and after (the working
tree), in a throwaway git repository: changed, unchanged, added and removed figures."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tools import figure_pairs

pytestmark = pytest.mark.unit


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, timeout=30)


def write_figures(repo: Path, figures: dict[str, str]) -> None:
    folder = repo / "reports" / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.svg"):
        stale.unlink()
    entries = []
    for name, body in figures.items():
        (folder / f"{name}.svg").write_text(f"<svg>{body}</svg>", encoding="utf-8")
        entries.append({"name": name, "path": f"reports/figures/{name}.svg", "title": name.upper()})
    (folder / "figures.json").write_text(json.dumps({"figures": entries}), encoding="utf-8")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "--quiet")
    git(path, "config", "user.email", "test@example.invalid")
    git(path, "config", "user.name", "Test")
    write_figures(path, {"kept": "same", "redrawn": "old", "dropped": "gone"})
    git(path, "add", "reports")
    git(path, "commit", "--quiet", "-m", "base")
    write_figures(path, {"kept": "same", "redrawn": "new", "fresh": "first"})
    return path


def test_each_figure_is_paired_with_its_verdict(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pairs"
    assert figure_pairs.main(["--repo", str(repo), "--base", "HEAD", "--out", str(out)]) == 0
    assert (out / "before" / "redrawn.svg").read_text(encoding="utf-8") == "<svg>old</svg>"
    assert (out / "after" / "redrawn.svg").read_text(encoding="utf-8") == "<svg>new</svg>"
    assert not (out / "before" / "fresh.svg").exists()
    assert not (out / "after" / "dropped.svg").exists()
    assert (out / "before" / "dropped.svg").is_file()
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "- `redrawn` (REDRAWN): **changed**",
        "- `fresh` (FRESH): **added**",
        "- `dropped` (DROPPED): **removed**",
        "- `kept`: unchanged",
    ]
    page = (out / "index.html").read_text(encoding="utf-8")
    assert '<img src="before/redrawn.svg"' in page
    assert '<img src="after/redrawn.svg"' in page
    assert "<code>fresh</code>: added" in page


def test_a_base_without_figures_shows_every_figure_as_added(repo: Path, tmp_path: Path) -> None:
    empty_tree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's well-known empty tree
    done = subprocess.run(
        ["git", "-C", str(repo), "commit-tree", empty_tree, "-m", "nothing"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    rows = figure_pairs.pairs(repo, done.stdout.strip(), tmp_path / "out")
    assert [state for _, _, state in rows] == ["added"] * 3


def test_an_unknown_base_is_an_error(repo: Path, tmp_path: Path) -> None:
    code = figure_pairs.main(["--repo", str(repo), "--base", "no-such-ref", "--out", str(tmp_path)])
    assert code == figure_pairs.EXIT_ERROR
