"""``python -m tools.figure_pairs --base origin/main --out build/review/figures``: every figure
of ``reports/figures/`` before (at ``--base``) and after (the working tree), side by side.

Writes ``before/<name>.svg`` and ``after/<name>.svg`` for each figure either side lists in
its ``figures.json``, and ``index.html`` pairing them with their titles and whether they
changed, were added or removed; prints the same verdicts as a Markdown list (for the
pull-request job's summary). Exit status 0, or 2 when it cannot compare.
"""

from __future__ import annotations

import argparse
import html
import json
import subprocess  # nosec B404 - runs git only, with fixed arguments
import sys
from pathlib import Path
from typing import Any

from stages.lib.artifacts import atomic_write_bytes

INDEX = "reports/figures/figures.json"
EXIT_ERROR = 2


class PairError(RuntimeError):
    """The figures cannot be compared; the message says why."""


def at_revision(repo: Path, revision: str, path: str) -> bytes | None:
    """A file's bytes at ``revision``, or None when it does not exist there."""
    done = subprocess.run(  # noqa: S603  # nosec B603 B607 - git, no shell
        ["git", "-C", str(repo), "show", f"{revision}:{path}"],  # noqa: S607
        capture_output=True,
        check=False,
    )
    if done.returncode == 0:
        return done.stdout
    missing = b"does not exist" in done.stderr or b"exists on disk, but not in" in done.stderr
    if missing:
        return None
    raise PairError(f"git show {revision}:{path} failed: {done.stderr.decode().strip()}")


def figures_of(index: bytes | None) -> dict[str, dict[str, Any]]:
    """name -> entry of a ``figures.json`` (none when the side has no figures)."""
    if index is None:
        return {}
    return {entry["name"]: entry for entry in json.loads(index)["figures"]}


def verdict(before: bytes | None, after: bytes | None) -> str:
    """``changed``, ``unchanged``, ``added`` or ``removed``."""
    if before is None:
        return "added"
    if after is None:
        return "removed"
    return "unchanged" if before == after else "changed"


def pairs(repo: Path, base: str, out: Path) -> list[tuple[str, str, str]]:
    """Write both sides of every figure; (name, title, verdict) in the working tree's order."""
    current = repo / INDEX
    old = figures_of(at_revision(repo, base, INDEX))
    new = figures_of(current.read_bytes() if current.is_file() else None)
    rows = []
    for name in [*new, *(n for n in old if n not in new)]:
        entry = new.get(name) or old[name]
        before = at_revision(repo, base, old[name]["path"]) if name in old else None
        after_path = repo / new[name]["path"] if name in new else None
        after = after_path.read_bytes() if after_path is not None else None
        for side, data in (("before", before), ("after", after)):
            if data is not None:
                atomic_write_bytes(out / side / f"{name}.svg", data)
        rows.append((name, entry["title"], verdict(before, after)))
    return rows


def index_html(base: str, rows: list[tuple[str, str, str]]) -> str:
    """The side-by-side page."""

    def cell(side: str, name: str, present: bool) -> str:
        if not present:
            return "<td>(none)</td>"
        return f'<td><img src="{side}/{name}.svg" alt="{side}: {html.escape(name)}"></td>'

    body = "".join(
        f"<tr><th colspan=2>{html.escape(title)} <code>{name}</code>: {state}</th></tr>"
        f"<tr>{cell('before', name, state != 'added')}{cell('after', name, state != 'removed')}"
        "</tr>"
        for name, title, state in rows
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Figures: {html.escape(base)} and this change</title><style>"
        "img{max-width:100%}td{width:50%;vertical-align:top}th{text-align:left;padding-top:1em}"
        "</style></head><body>"
        f"<h1>Figures before ({html.escape(base)}) and after</h1><table>"
        f"<tr><th>before: {html.escape(base)}</th><th>after: this change</th></tr>{body}"
        "</table></body></html>\n"
    )


def summary(rows: list[tuple[str, str, str]]) -> str:
    """Markdown: one line per figure and its verdict, changed ones first."""
    order = {"changed": 0, "added": 1, "removed": 2, "unchanged": 3}
    return "".join(
        f"- `{name}` ({title}): **{state}**\n" if state != "unchanged" else f"- `{name}`: {state}\n"
        for name, title, state in sorted(rows, key=lambda row: order[row[2]])
    )


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m tools.figure_pairs --base REV --out DIR [--repo DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m tools.figure_pairs", description=__doc__)
    parser.add_argument("--base", required=True, help="the revision to compare against")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repo", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    try:
        rows = pairs(args.repo, args.base, args.out)
        atomic_write_bytes(args.out / "index.html", index_html(args.base, rows).encode("utf-8"))
    except (PairError, OSError, KeyError, ValueError) as exc:
        print(f"figure-pairs: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    sys.stdout.write(summary(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
