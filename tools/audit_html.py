"""The audit documents as one self-contained HTML page: Markdown to HTML (CommonMark and
GitHub tables, by markdown-it-py), every image inlined as a ``data:`` URI, headings given
ids and in-document links pointed at them, links to repository files kept as text.

Nothing in the page refers to anything outside it, and its Content-Security-Policy forbids
any request, so it opens offline exactly as it opens online.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from markdown_it import MarkdownIt
from markdown_it.token import Token

MEDIA_TYPES = {".svg": "image/svg+xml", ".png": "image/png"}
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body { font: 10.5pt/1.45 "DejaVu Sans", "Liberation Sans", Arial, sans-serif; color: #111;
       max-width: 60rem; margin: 1.5rem auto; padding: 0 1rem; }
h1 { font-size: 1.6em; border-bottom: 2px solid #0072B2; padding-bottom: .2em; }
h2 { font-size: 1.25em; margin-top: 1.6em; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: .6em 0; font-size: 8.5pt; }
th, td { border: 1px solid #bbb; padding: .2em .4em; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #eef3f8; }
code { font-size: 88%; background: #f3f3f3; padding: 0 .2em; overflow-wrap: anywhere; }
pre { background: #f3f3f3; padding: .5em; white-space: pre-wrap; font-size: 8pt; }
img { max-width: 100%; height: auto; display: block; margin: .8em auto .3em; }
.pack-control { border: 2px solid #0072B2; padding: .6em 1em; margin-bottom: 1.5em; }
.pack-control h1 { border: none; margin-top: .2em; }
nav ol { margin: .3em 0; }
section.document { break-before: page; }
h1, h2, h3 { break-after: avoid; } img, tr { break-inside: avoid; }
@page { size: A4; margin: 14mm 12mm; }
"""


Reader = Callable[[str], bytes]


class PackError(RuntimeError):
    """The pack cannot be made; the message says why."""


@dataclass(frozen=True)
class Document:
    """One audit document: its path in the repository and its Markdown."""

    path: str  # e.g. docs/model_card.md
    text: str

    @property
    def slug(self) -> str:
        return PurePosixPath(self.path).stem.replace("_", "-")


def slugify(text: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to -."""
    lowered = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return lowered.replace(" ", "-")


def data_uri(path: str, data: bytes) -> str:
    """An image's bytes as a ``data:`` URI."""
    media = MEDIA_TYPES.get(PurePosixPath(path).suffix.lower())
    if media is None:
        raise PackError(f"{path}: not an image type the pack inlines ({', '.join(MEDIA_TYPES)})")
    return f"data:{media};base64,{base64.b64encode(data).decode('ascii')}"


def repository_path(document: Document, target: str) -> str:
    """The repository path of an image a document links to (relative to the document)."""
    parts: list[str] = []
    for part in (PurePosixPath(document.path).parent / target).parts:
        if part == "..":
            if not parts:
                raise PackError(f"{document.path}: image {target} is outside the repository")
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def _rewrite(tokens: Sequence[Token], read: Reader, document: Document) -> None:
    """Inline images, give headings ids, retarget in-document links, unlink repository files."""
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            title = tokens[index + 1].content
            token.attrSet("id", f"{document.slug}-{slugify(title)}")
        for child in token.children or []:
            if child.type == "image":
                path = repository_path(document, str(child.attrGet("src")))
                child.attrSet("src", data_uri(path, read(path)))
            elif child.type == "link_open":
                href = str(child.attrGet("href") or "")
                if href.startswith("#"):
                    child.attrSet("href", f"#{document.slug}-{href[1:]}")
                elif "://" not in href and not href.startswith("mailto:"):
                    # A file of the repository: the pack travels without it.
                    child.attrs.pop("href", None)


def document_html(read: Reader, document: Document) -> str:
    """One document as an HTML fragment inside its ``<section>``; ``read`` gives the bytes of
    a repository path (an image it shows)."""
    parser = MarkdownIt("commonmark", {"html": True}).enable("table")  # our own comments
    tokens = parser.parse(document.text)
    _rewrite(tokens, read, document)
    body = parser.renderer.render(tokens, parser.options, {})
    return f'<section class="document" id="{document.slug}">\n{body}</section>\n'


def page(title: str, header: str, documents: Sequence[tuple[Document, str]]) -> str:
    """The whole pack: head (policy, style), the pack's control header, contents, documents."""
    contents = "".join(
        f'<li><a href="#{doc.slug}">{html.escape(_title(doc))}</a> (<code>{doc.path}</code>)</li>'
        for doc, _ in documents
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"{header}\n<nav><h2>Contents</h2><ol>{contents}</ol></nav>\n"
        + "".join(fragment for _, fragment in documents)
        + "</body>\n</html>\n"
    )


def _title(document: Document) -> str:
    """The document's ``# `` title line."""
    for line in document.text.splitlines():
        if line.startswith("# "):
            return line[2:].replace("`", "")
    return document.path
