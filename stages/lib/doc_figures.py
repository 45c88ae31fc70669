"""The figures of the ``figures`` stage as Markdown, for the audit documents.

Each figure in ``reports/figures/figures.json`` becomes a ``${figure_<name>}`` placeholder:
the image by a path relative to the document (so it renders on GitHub and in any checkout)
and its one-sentence caption below it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PREFIX = "figure_"


def figure_markdown(figure: dict[str, Any], document: Path) -> str:
    """One figure: image, then ``*Figure — title.*`` and the caption."""
    relative = Path(os.path.relpath(figure["path"], document.parent)).as_posix()
    return f"![{figure['title']}]({relative})\n\n*Figure — {figure['title']}.* {figure['caption']}"


def figure_context(index: dict[str, Any], document: Path) -> dict[str, str]:
    """``figure_<name>`` -> Markdown of every figure, with paths relative to ``document``."""
    return {PREFIX + f["name"]: figure_markdown(f, document) for f in index["figures"]}
