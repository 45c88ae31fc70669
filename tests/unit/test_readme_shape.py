"""README.md is read in two minutes: at most 200 lines, and it starts with the two commands."""

from __future__ import annotations

from markdown_it import MarkdownIt

from tests.doc_examples import MARKER, REPO_ROOT

MAX_LINES = 200


def test_readme_has_at_most_200_lines() -> None:
    lines = (REPO_ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/"


def test_readme_starts_with_make_run_and_make_test() -> None:
    tokens = MarkdownIt("commonmark").parse((REPO_ROOT / "README.md").read_text(encoding="utf-8"))
    first_block = next(token for token in tokens if token.type in {"fence", "code_block"})
    before = tokens[: tokens.index(first_block)]
    # Only the title and the block's marker comment (tests/doc_examples.py) precede it.
    assert [token.type for token in before] == [
        "heading_open",
        "inline",
        "heading_close",
        "html_block",
    ], "the commands come first"
    assert MARKER.fullmatch(before[-1].content.strip()), before[-1].content
    commands = [line.split("#", 1)[0].strip() for line in first_block.content.splitlines()]
    assert commands == ["make run", "make test"]
