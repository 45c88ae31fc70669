"""README.md and docs/*.md: every relative link and image resolves, to a file of the repository
and, for a ``#fragment`` into Markdown, to a heading of that document (GitHub's anchor rule)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token

from tests.doc_examples import REPO_ROOT, documents

PUNCTUATION = re.compile(r"[^\w\- ]", re.UNICODE)


def _inline_tokens(source: str) -> list[Token]:
    tokens = MarkdownIt("commonmark").enable("table").parse(source)
    return [child for token in tokens for child in token.children or []]


def github_anchor(heading: str) -> str:
    """GitHub's id for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return PUNCTUATION.sub("", heading.strip().lower()).replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """The ids of ``path``'s headings, a repeated one suffixed ``-1``, ``-2``, ... as on GitHub."""
    tokens = MarkdownIt("commonmark").enable("table").parse(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    ids: set[str] = set()
    for index, token in enumerate(tokens):
        if token.type != "heading_open":
            continue
        text = "".join(child.content for child in tokens[index + 1].children or [])
        base = github_anchor(text)
        count = seen.get(base, 0)
        seen[base] = count + 1
        ids.add(base if count == 0 else f"{base}-{count}")
    # Explicit anchors (<a id="..."> / <a name="...">) count too.
    ids.update(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", path.read_text(encoding="utf-8")))
    return frozenset(ids)


def broken_links(path: Path, root: Path = REPO_ROOT) -> list[str]:
    """``document: target (why)`` for every relative link or image of ``path`` that does not
    resolve."""
    broken: list[str] = []
    for token in _inline_tokens(path.read_text(encoding="utf-8")):
        target = token.attrGet("href") if token.type == "link_open" else None
        if token.type == "image":
            target = token.attrGet("src")
        if not isinstance(target, str) or urlsplit(target).scheme or target.startswith("//"):
            continue
        parts = urlsplit(target)
        file = (path.parent / unquote(parts.path)).resolve() if parts.path else path
        name = f"{path.relative_to(root)}: {target}"
        if not file.exists():
            broken.append(f"{name} (no such file)")
        elif not file.resolve().is_relative_to(root):
            broken.append(f"{name} (outside the repository)")
        elif parts.fragment and file.suffix == ".md" and parts.fragment not in anchors(file):
            broken.append(f"{name} (no such heading)")
    return broken


def test_relative_links_in_readme_and_docs_resolve() -> None:
    assert [link for path in documents() for link in broken_links(path)] == []


def test_a_broken_file_or_heading_link_is_found(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text(
        "# A title, with: punctuation\n\n## Twice\n\n## Twice\n"
    )
    readme = tmp_path / "README.md"
    readme.write_text(
        "[ok](docs/a.md) [ok](docs/a.md#a-title-with-punctuation) [ok](docs/a.md#twice-1)\n"
        "[gone](docs/b.md) [bad](docs/a.md#nowhere) [self](#top) [web](https://example.org/x)\n"
        "![img](missing.svg)\n\n# Top\n",
        encoding="utf-8",
    )
    assert broken_links(readme, root=tmp_path) == [
        "README.md: docs/b.md (no such file)",
        "README.md: docs/a.md#nowhere (no such heading)",
        "README.md: missing.svg (no such file)",
    ]
