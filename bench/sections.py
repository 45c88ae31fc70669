"""Replace one marked section of a Markdown file, keeping everything else (atomic write)."""

from __future__ import annotations

from pathlib import Path


def write_section(output: Path, section: str, start_marker: str, end_marker: str) -> None:
    """Replace the text between the markers (inclusive) with ``section``, or append it."""
    text = output.read_text(encoding="utf-8") if output.exists() else ""
    start, end = text.find(start_marker), text.find(end_marker)
    if start != -1 and end > start:
        text = text[:start] + section + text[end + len(end_marker) :].lstrip("\n")
    else:
        text = (text.rstrip("\n") + "\n\n" if text else "") + section
    temporary = output.with_suffix(output.suffix + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(output)
