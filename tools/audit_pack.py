"""``python -m tools.audit_pack --out build/audit`` (``make audit-pack``): the audit pack of the
checked-out commit.

``build/audit/audit-pack.html`` is one self-contained page (:mod:`tools.audit_html`): a
document-control header for the pack (commit, commit date, model version, input
fingerprint, approval, each document's md5), then the controlled copies
(:mod:`tools.controlled_docs`) of the model card, the evaluation protocol and the risk
register, every figure inlined. ``build/audit/audit-pack.pdf`` is that page printed by
headless Chromium. The same commit gives the same HTML bytes.

Like ``make controlled-docs``, it refuses (exit 2) while the documents or their inputs have
uncommitted changes, and fails (exit 1) when they are not what ``dvc.lock`` records or
Chromium cannot print.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import os
import shutil
import subprocess  # nosec B404 - runs git and Chromium only, with fixed arguments
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from stages.lib.artifacts import atomic_write_bytes
from stages.lib.doc_control import (
    APPROVAL,
    INPUTS,
    MODEL,
    DocControlError,
    load_yaml,
    parse_rows,
    stage_files,
)
from tools.audit_html import Document, PackError, document_html, page
from tools.controlled_docs import (
    ControlledCopyError,
    UncommittedError,
    commits,
    controlled_copies,
    git,
)

HTML_NAME = "audit-pack.html"
PDF_NAME = "audit-pack.pdf"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PRINT_TIMEOUT = 180
EXIT_FAILED = 1
EXIT_REFUSED = 2


def _cell(markdown: str) -> str:
    """A document-control value (Markdown with `code` spans) as HTML."""
    parts = markdown.split("`")
    return "".join(
        f"<code>{html.escape(part)}</code>" if odd else html.escape(part).replace("**", "")
        for odd, part in ((i % 2 == 1, p) for i, p in enumerate(parts))
    )


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def header(repo: Path, documents: list[Document]) -> str:
    """The pack's own document control: what it is of, and each document's md5."""
    head = commits(repo, "-1", "HEAD")[0]
    fields = dict(parse_rows(documents[0].text, documents[0].path))
    rows = [
        ("pack", f"audit pack of commit `{head.sha}`"),
        ("commit date", f"{head.date} (committer date)"),
        (MODEL, fields[MODEL]),
        (INPUTS, fields[INPUTS]),
        (APPROVAL, fields[APPROVAL]),
    ]
    rows += [
        (f"document: {doc.path}", f"controlled copy, md5 `{_md5(doc.text)}`") for doc in documents
    ]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{_cell(v)}</td></tr>" for k, v in rows)
    return (
        '<header class="pack-control">\n<h1>Audit pack</h1>\n'
        "<p>The model card, evaluation protocol and risk register of one commit, with their "
        "figures, as controlled copies (<code>make audit-pack</code>). Each document keeps "
        "its own document-control section and change history.</p>\n"
        f"<table><tbody>{body}</tbody></table>\n</header>"
    )


def committed_reader(root: Path) -> Callable[[str], bytes]:
    """Bytes of a path as HEAD holds it, checked against ``dvc.lock`` when a stage writes it."""
    lock = (load_yaml(root / "dvc.lock") or {}).get("stages") or {}
    locked = {out["path"]: out["md5"] for stage in lock.values() for out in stage.get("outs", [])}

    def read(path: str) -> bytes:
        done = subprocess.run(  # noqa: S603  # nosec B603 B607 - git, no shell
            ["git", "-C", str(root), "show", f"HEAD:{path}"],  # noqa: S607
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise PackError(f"{path} is not in the commit: {done.stderr.decode().strip()}")
        md5 = hashlib.md5(done.stdout, usedforsecurity=False).hexdigest()
        if path in locked and locked[path] != md5:
            raise PackError(f"{path} is not the file dvc.lock records: run `dvc repro`")
        return done.stdout

    return read


def build_html(repo: Path) -> str:
    """The pack's page for the commit checked out in ``repo``."""
    root = Path(git(repo, "rev-parse", "--show-toplevel").strip())
    _, outputs = stage_files(root / "dvc.yaml")
    copies = controlled_copies(root)
    documents = [Document(path, copies[Path(path).name].decode("utf-8")) for path in outputs]
    fields = dict(parse_rows(documents[0].text, documents[0].path))
    version = fields[MODEL].split("`")[1]
    read = committed_reader(root)
    fragments = [(doc, document_html(read, doc)) for doc in documents]
    return page(f"Audit pack: model {version}", header(root, documents), fragments)


def find_chromium(explicit: str | None) -> str:
    """The Chromium to print with: ``--chromium``, ``$CHROMIUM``, or the first on PATH."""
    for candidate in (explicit, os.environ.get("CHROMIUM"), *CHROMIUM_NAMES):
        if candidate and (found := shutil.which(candidate)):
            return found
    raise PackError(
        f"no Chromium found (tried {', '.join(CHROMIUM_NAMES)}; or pass --chromium): "
        "apt-get install chromium"
    )


def print_pdf(chromium: str, page_path: Path, pdf_path: Path) -> None:
    """Print ``page_path`` to ``pdf_path`` with headless Chromium (a throwaway profile)."""
    with tempfile.TemporaryDirectory(prefix="audit-pack-chromium-") as profile:
        target = pdf_path.with_name(f".{pdf_path.name}.tmp")
        command = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={target}",
            page_path.resolve().as_uri(),
        ]
        try:
            done = subprocess.run(  # noqa: S603  # nosec B603 - no shell, fixed arguments
                command, capture_output=True, text=True, timeout=PRINT_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            target.unlink(missing_ok=True)
            raise PackError(f"Chromium did not print within {PRINT_TIMEOUT} s") from None
        if done.returncode != 0 or not target.is_file() or target.read_bytes()[:5] != b"%PDF-":
            target.unlink(missing_ok=True)
            raise PackError(f"Chromium could not print the pack: {done.stderr.strip()[-800:]}")
        target.replace(pdf_path)


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m tools.audit_pack --out DIR [--repo DIR] [--chromium PATH]``."""
    parser = argparse.ArgumentParser(prog="python -m tools.audit_pack", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="directory for the pack")
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="the repository")
    parser.add_argument("--chromium", help="Chromium executable (default: $CHROMIUM or PATH)")
    args = parser.parse_args(argv)
    try:
        chromium = find_chromium(args.chromium)
        text = build_html(args.repo)
        page_path = args.out / HTML_NAME
        atomic_write_bytes(page_path, text.encode("utf-8"))
        print_pdf(chromium, page_path, args.out / PDF_NAME)
    except UncommittedError as exc:
        print(f"audit-pack: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (PackError, ControlledCopyError, DocControlError, OSError, KeyError) as exc:
        print(f"audit-pack: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"audit-pack: wrote {HTML_NAME} and {PDF_NAME} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
