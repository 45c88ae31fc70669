"""``python -m tools.controlled_docs --out build/controlled-docs`` (``make controlled-docs``):
controlled copies of the audit documents at the checked-out commit.

``dvc repro`` must reproduce the documents byte for byte, so they cannot name the commit
that will contain them. This command, run at any commit, copies each document the
``audit-docs`` stage writes (its ``outs`` in ``dvc.yaml``) and completes its
document-control block:

- document version ``<model version>+<commit, 12 hex digits>``;
- generation date: the commit's committer date (ISO 8601), never the wall clock;
- change history: ``git log`` of the document and its git-tracked inputs (the stage's
  dependencies: code, templates, reports; ``params.yaml``, ``dvc.yaml``), newest first, the
  last 20 and the total; a shallow clone says the history is truncated instead of
  presenting what it has as complete. The three documents share one input fingerprint and
  one approval, so a change to any template changes each of them.

It refuses (exit 2) while the documents or their inputs have uncommitted changes, and
fails (exit 1) when a document is not the one ``dvc.lock`` records. Same commit, same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess  # nosec B404 - runs git only, with fixed arguments
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stages.lib.artifacts import atomic_write_bytes
from stages.lib.doc_control import (
    COPY,
    DATE,
    HISTORY,
    MODEL,
    STAGE,
    VERSION,
    DocControlError,
    Rows,
    load_yaml,
    parse_rows,
    replace_block,
    stage_files,
)
from stages.lib.doc_tables import markdown_table

HISTORY_LIMIT = 20
SUBJECT_LIMIT = 100
COMMIT_DIGITS = 12
PIPELINE_FILES = ("params.yaml", "dvc.yaml", "dvc.lock")
# dvc.lock is left out of the history: it changes with every stage's outputs, and a change of
# the data or models it pins changes the document itself (md5s, model version), which is in.
HISTORY_FILES = ("params.yaml", "dvc.yaml")
LOG_FORMAT = "%H%x1f%cI%x1f%an%x1f%s"  # committer date, strict ISO 8601
EXIT_FAILED = 1
EXIT_REFUSED = 2


class ControlledCopyError(RuntimeError):
    """The copies cannot be made; the message says why."""


class UncommittedError(ControlledCopyError):
    """The working tree is not a commit: documents or inputs have uncommitted changes."""


@dataclass(frozen=True)
class Commit:
    """One ``git log`` entry."""

    sha: str
    date: str
    author: str
    subject: str


def git(repo: Path, *args: str) -> str:
    """Run git with fixed arguments; signatures, replace refs and colour stay off."""
    command = ["git", "--no-replace-objects", "-c", "log.showSignature=false", "-C", str(repo)]
    completed = subprocess.run(  # noqa: S603  # nosec B603 - git, no shell
        [*command, *args], capture_output=True, text=True, encoding="utf-8", check=False
    )
    if completed.returncode != 0:
        raise ControlledCopyError(f"git {' '.join(args)} failed: {completed.stderr.strip()}")
    return completed.stdout


def commits(repo: Path, *args: str) -> list[Commit]:
    """``git log`` entries of ``args`` (a revision, options, ``--`` and paths)."""
    out = git(repo, "log", "--no-color", f"--format={LOG_FORMAT}", *args)
    return [Commit(*line.split("\x1f", 3)) for line in out.splitlines() if line]


def uncommitted(repo: Path, paths: Sequence[str]) -> list[str]:
    """Paths among ``paths`` with staged, unstaged or untracked changes."""
    out = git(repo, "status", "--porcelain=v1", "--untracked-files=all", "--", *paths)
    return sorted({line[3:] for line in out.splitlines() if line})


def tracked(repo: Path, paths: Sequence[str]) -> list[str]:
    """The paths git tracks (DVC-cached data and models are pinned by ``dvc.lock`` instead)."""
    return sorted({path for path in git(repo, "ls-files", "-z", "--", *paths).split("\0") if path})


def cell(text: str, limit: int = SUBJECT_LIMIT) -> str:
    """Free text as one Markdown table cell, cut at ``limit`` characters."""
    text = text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
    return text.replace("|", "\\|")


def history_section(entries: list[Commit], total: int, paths: list[str], shallow: bool) -> str:
    """The change history under the document-control table."""
    rows = [
        [f"`{c.sha[:COMMIT_DIGITS]}`", c.date, cell(c.author), cell(c.subject)] for c in entries
    ]
    parts = [
        "### Change history",
        f"Newest first, {len(entries)} of the {total} commits that changed this document's "
        f"inputs: {', '.join(f'`{p}`' for p in paths)}. Data and models are pinned by md5 in "
        "`dvc.lock` and quoted in the document, so a commit that changes them changes it.",
        markdown_table(["commit", "committer date", "author", "subject"], rows, align="left"),
    ]
    if shallow:
        parts.append(
            "**History truncated:** this copy was made in a shallow clone, so commits before "
            "its boundary are missing and the oldest commit listed may stand for several. Run "
            "`git fetch --unshallow` and make the copy again for the full history."
        )
    return "\n\n".join(parts)


def first_code(value: str, field: str, source: str) -> str:
    """The leading ``code`` span of a document-control value."""
    match = re.match(r"^`([^`]+)`", value)
    if match is None:
        raise DocControlError(f"{source}: {field} row does not start with a `code` value")
    return match.group(1)


def fill(text: str, source: str, head: Commit, history: str, summary: str) -> str:
    """``text`` with its document-control block completed for commit ``head``."""
    rows = parse_rows(text, source)
    fields = dict(rows)
    missing = [f for f in (VERSION, MODEL, DATE, HISTORY) if f not in fields]
    if missing:
        raise DocControlError(f"{source}: document-control block lacks {', '.join(missing)}")
    short = head.sha[:COMMIT_DIGITS]
    model = first_code(fields[MODEL], MODEL, source)
    updates = {
        VERSION: f"`{model}+{short}`",
        DATE: f"{head.date} (committer date of `{short}`)",
        HISTORY: summary,
    }
    filled: Rows = [(field, updates.get(field, value)) for field, value in rows]
    filled.append(
        (COPY, f"of commit `{head.sha}`, whose `dvc.lock` records this file and its inputs")
    )
    return replace_block(text, filled, source, extra=history)


def md5_hex(data: bytes) -> str:
    """md5 of bytes, as ``dvc.lock`` records a file."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def locked_documents(root: Path, deps: list[str], documents: list[str]) -> dict[str, str]:
    """The documents' text, once ``dvc.lock`` is shown to record them and their committed inputs.

    Data and models are not in git: ``dvc.lock`` pins them. Everything git holds (code,
    templates, reports, params) must be what ``dvc.lock`` recorded for ``audit-docs``.
    """
    lock = ((load_yaml(root / "dvc.lock") or {}).get("stages") or {}).get(STAGE)
    if lock is None:
        raise ControlledCopyError(f"dvc.lock has no {STAGE} stage: run `dvc repro`")
    recorded = {entry["path"]: entry["md5"] for entry in lock.get("deps") or []}
    stale = [
        dep
        for dep in tracked(root, deps)
        if recorded.get(dep) != md5_hex((root / dep).read_bytes())
    ]
    locked_params = (lock.get("params") or {}).get("params.yaml") or {}
    current = load_yaml(root / "params.yaml") or {}
    stale += [
        f"params.yaml:{key}"
        for key in sorted(locked_params)
        if current.get(key) != locked_params[key]
    ]
    if stale:
        raise ControlledCopyError(
            f"dvc.lock does not record the committed {', '.join(stale)} for {STAGE}: "
            "run `dvc repro` and commit dvc.lock and docs/"
        )
    outs = {entry["path"]: entry["md5"] for entry in lock.get("outs") or []}
    texts = {}
    for doc in documents:
        data = (root / doc).read_bytes()
        if md5_hex(data) != outs.get(doc):
            raise ControlledCopyError(
                f"{doc} is not the document dvc.lock records: run `dvc repro` and commit "
                "docs/ with dvc.lock"
            )
        texts[doc] = data.decode("utf-8")
    return texts


def controlled_copies(repo: Path) -> dict[str, bytes]:
    """File name -> bytes of the controlled copy of every ``audit-docs`` document at HEAD."""
    root = Path(git(repo, "rev-parse", "--show-toplevel").strip())
    deps, documents = stage_files(root / "dvc.yaml")
    changed = uncommitted(root, sorted({*documents, *deps, *PIPELINE_FILES}))
    if changed:
        raise UncommittedError(
            f"uncommitted changes to {', '.join(changed)}: a controlled copy is of a commit; "
            "commit or stash them first"
        )
    git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    head = commits(root, "-1", "HEAD")[0]
    shallow = git(root, "rev-parse", "--is-shallow-repository").strip() == "true"
    texts = locked_documents(root, deps, documents)
    copies: dict[str, bytes] = {}
    for doc, text in texts.items():
        paths = tracked(root, sorted({doc, *deps, *HISTORY_FILES}))
        entries = commits(root, f"--max-count={HISTORY_LIMIT}", "HEAD", "--", *paths)
        total = int(git(root, "rev-list", "--count", "HEAD", "--", *paths))
        summary = f"{len(entries)} of {total} commits, below"
        if shallow:
            summary += " (**truncated**: shallow clone)"
        history = history_section(entries, total, paths, shallow)
        name = Path(doc).name
        if name in copies:
            raise ControlledCopyError(f"two documents are named {name}")
        copies[name] = fill(text, doc, head, history, summary).encode("utf-8")
    return copies


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m tools.controlled_docs --out DIR [--repo DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m tools.controlled_docs", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="directory for the copies")
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="the repository")
    args = parser.parse_args(argv)
    try:
        copies = controlled_copies(args.repo)
        for name, data in copies.items():
            atomic_write_bytes(args.out / name, data)
    except UncommittedError as exc:
        print(f"controlled-docs: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (ControlledCopyError, DocControlError, OSError, KeyError) as exc:
        print(f"controlled-docs: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"controlled-docs: wrote {', '.join(sorted(copies))} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
