"""The shell and HTTP examples of README.md and docs/*.md, and how each is accounted for.

Every fenced block in a shell or HTTP language (:data:`LANGUAGES`) is immediately preceded
by one marker comment (blank lines between them are allowed):

* ``<!-- runs-in: tests/integration/test_x.py::test_y -->``: the named test runs this block,
  reading its text from the document with :func:`examples_for` (never a copy), so what
  the document says is what the suite runs;
* ``<!-- illustrative: reason -->``: not run, and why (for example "needs a Google Cloud
  account").

A fence without a language whose text has a line starting with ``$ `` is a console
transcript and counts as ``console``: leaving the language out does not exempt a command.
A marker comment that no such block follows (:func:`dangling_markers`) is an error too.

Generated documents (the model card, the evaluation protocol, the risk register) carry the
markers of their templates in ``docs/templates/``. ``tests/unit/test_doc_examples.py``
checks that every block is marked and that every named test exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt

REPO_ROOT = Path(__file__).resolve().parents[1]
LANGUAGES = frozenset({"sh", "bash", "shell", "console", "zsh", "http"})
MARKER = re.compile(r"<!--\s*(runs-in|illustrative):\s*(.*?)\s*-->", re.DOTALL)


@dataclass(frozen=True)
class Example:
    """One fenced shell or HTTP block of a document."""

    document: str  # relative to the repository root
    line: int  # 1-based line of the opening fence
    language: str
    text: str
    marker: str | None  # "runs-in" or "illustrative"; None when unmarked
    value: str  # the test id or the reason

    def __str__(self) -> str:
        return f"{self.document}:{self.line} ({self.language})"


def documents(root: Path = REPO_ROOT) -> list[Path]:
    """README.md and every Markdown file directly under docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def _language(info: str, text: str) -> str:
    """The block's language: its info string's first word, or ``console`` for an unlabelled
    block that shows a ``$ `` prompt."""
    language = info.strip().split(" ")[0].lower()
    if not language and any(line.startswith("$ ") for line in text.splitlines()):
        return "console"
    return language


def _marker_before(lines: list[str], fence: int) -> tuple[str | None, str]:
    """The marker comment ending on the last non-blank line before line index ``fence``."""
    end = fence - 1
    while end >= 0 and not lines[end].strip():
        end -= 1
    if end < 0 or not lines[end].rstrip().endswith("-->"):
        return None, ""
    start = end
    while start > 0 and "<!--" not in lines[start]:
        start -= 1
    found = MARKER.search("\n".join(lines[start : end + 1]))
    return (found.group(1), found.group(2)) if found else (None, "")


def examples(paths: list[Path] | None = None, root: Path = REPO_ROOT) -> list[Example]:
    """Every shell or HTTP block of ``paths`` (default: :func:`documents`), in order."""
    parser = MarkdownIt("commonmark")
    found: list[Example] = []
    for path in paths if paths is not None else documents(root):
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for token in parser.parse(source):
            if token.type != "fence" or token.map is None:
                continue
            language = _language(token.info, token.content)
            if language not in LANGUAGES:
                continue
            marker, value = _marker_before(lines, token.map[0])
            found.append(
                Example(
                    str(path.relative_to(root)),
                    token.map[0] + 1,
                    language,
                    token.content,
                    marker,
                    value,
                )
            )
    return found


def examples_for(test_id: str, root: Path = REPO_ROOT) -> list[Example]:
    """The blocks whose marker names ``test_id`` (``path::function``; a pytest node id's
    parameters, ``[...]``, are ignored). A test that runs documented examples asserts the
    list is not empty, so a marker cannot point at a test that runs nothing."""
    wanted = test_id.split("[", 1)[0]
    return [
        example
        for example in examples(root=root)
        if example.marker == "runs-in" and example.value == wanted
    ]


def dangling_markers(path: Path, root: Path = REPO_ROOT) -> list[str]:
    """``document:line`` of every marker comment in ``path`` that is not the marker of a shell
    or HTTP block (nothing but blank lines between the comment and the block's fence)."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    fences = {example.line - 1 for example in examples([path], root=root)}
    tokens = MarkdownIt("commonmark").parse(source)
    found: list[str] = []
    for token in [*tokens, *(child for t in tokens for child in t.children or [])]:
        if token.type not in {"html_block", "html_inline"} or not MARKER.search(token.content):
            continue
        start = token.map[0] if token.map else _line_of(lines, token.content)
        end = start
        while end < len(lines) and "-->" not in lines[end]:
            end += 1
        following = end + 1
        while following < len(lines) and not lines[following].strip():
            following += 1
        if following not in fences:
            found.append(f"{path.relative_to(root)}:{start + 1}")
    return found


def _line_of(lines: list[str], content: str) -> int:
    """The first line holding the start of an inline comment (inline tokens have no map)."""
    head = content.strip().splitlines()[0]
    return next((index for index, line in enumerate(lines) if head in line), 0)
