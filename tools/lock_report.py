"""The report of ``python -m tools.lock_diff``: plain text for the log, Markdown for the job
summary (``$GITHUB_STEP_SUMMARY``)."""

from __future__ import annotations

import re

from tools.diff_result import Category
from tools.lock_compare import EntryChange, FileResult, Report

LABELS = {
    Category.SUBSTANTIVE: "substantive change",
    Category.HASHES: "only hashes changed",
    Category.NOISE: "numeric noise only",
    Category.FORMATTING: "formatting only",
    Category.NOT_COMPARED: "not compared",
    Category.IDENTICAL: "identical content",
}


def entry_line(entry: EntryChange) -> str:
    old, new = entry.old, entry.new
    if old is not None and new is not None:
        size = f"{old.size}" if old.size == new.size else f"{old.size} -> {new.size}"
        return f"{entry.kind} {entry.path}: md5 {old.md5} -> {new.md5}, size {size}"
    if new is not None:
        return f"{entry.kind} {entry.path}: added, md5 {new.md5}, size {new.size}"
    if old is not None:
        return f"{entry.kind} {entry.path}: removed (was md5 {old.md5}, size {old.size})"
    return f"{entry.kind} {entry.path}"


def summary_line(report: Report) -> str:
    if not report.differs:
        return f"nothing differs: {report.lock} and the outputs are as committed at {report.rev}"
    counts = dict.fromkeys(LABELS, 0)
    for file in report.files:
        counts[file.category] += 1
    files = ", ".join(f"{n} {LABELS[c]}" for c, n in counts.items() if n)
    files = f"files: {files}" if files else "no output differs"
    return f"{len(report.stages)} stage(s) differ in {report.lock}; {files}"


def _file_lines(file: FileResult) -> list[str]:
    lines = [f"verdict: {file.verdict}", *(f"note: {note}" for note in file.notes)]
    return lines + (file.content.details() if file.content is not None else [])


def _diff(file: FileResult | None) -> list[str]:
    return file.content.diff if file is not None and file.content is not None else []


def render_text(report: Report) -> str:
    lines = [f"{report.lock} and its outputs: {report.rev} ({report.commit[:12]}) -> working tree"]
    lines += report.notes
    for stage in report.stages:
        lines += ["", f"stage {stage.name}: {stage.status}"]
        lines += [f"  {note}" for note in stage.notes]
        for entry in stage.entries:
            lines.append(f"  {entry_line(entry)}")
            if entry.file is not None:
                lines += [f"    {line}" for line in _file_lines(entry.file)]
            lines += [f"    | {line}" for line in _diff(entry.file)]
    if report.others:
        lines += ["", "other changed files"]
        for file in report.others:
            lines.append(f"  {file.path}")
            lines += [f"    {line}" for line in _file_lines(file)]
            lines += [f"    | {line}" for line in _diff(file)]
    lines += ["", summary_line(report), report.noise.describe()]
    return "\n".join(lines) + "\n"


def _code(text: str) -> str:
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_file(file: FileResult, head: str) -> list[str]:
    # Code spans throughout: JSON paths start with "$", which GitHub would read as math.
    lines = [f"- {head}", f"  - **verdict:** {_code(file.verdict)}"]
    lines += [f"  - note: {_code(note)}" for note in file.notes]
    if file.content is not None:
        lines += [f"  - {_code(line)}" for line in file.content.details()]
    diff = _diff(file)
    if diff:
        fence = "`" * max([3, *(len(run) + 1 for line in diff for run in re.findall(r"`+", line))])
        lines += ["", f"{fence}diff", *diff, fence, ""]
    return lines


def render_markdown(report: Report) -> str:
    lines = [
        f"## {_code(report.lock)} and its outputs: {_code(report.rev)}"
        f" ({_code(report.commit[:12])}) → working tree",
        "",
        f"**{summary_line(report)}**",
        "",
        report.noise.describe(),
        *(f"\n{note}" for note in report.notes),
    ]
    for stage in report.stages:
        lines += ["", f"### Stage {_code(stage.name)} ({stage.status})", ""]
        lines += [f"- {_code(note)}" for note in stage.notes]
        for entry in stage.entries:
            if entry.file is None:
                lines.append(f"- {_code(entry_line(entry))}")
            else:
                lines += _md_file(entry.file, _code(entry_line(entry)))
    if report.others:
        lines += ["", "### Other changed files", ""]
        for file in report.others:
            lines += _md_file(file, _code(file.path))
    return "\n".join(lines) + "\n\n"
