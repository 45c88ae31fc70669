"""Document control of the audit documents: the block ``audit-docs`` renders and the
controlled copy (``python -m tools.controlled_docs``) completes.

The stage can only write what the pipeline determines, or ``dvc repro`` would stop
reproducing its outputs byte for byte: document, template, model version, input
fingerprint, owner and approval. The commit, its date and the change history depend on
the commit that will contain the documents, so a controlled copy made at that commit
fills them in. Rows are found by their name in the first column, between two markers.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stages.lib.doc_tables import markdown_table
from stages.lib.params import Params, to_builtins
from stages.lib.params_docs import DocsParams

STAGE = "audit-docs"
BEGIN = "<!-- document-control: begin -->"
END = "<!-- document-control: end -->"
HEADER = ["field", "value"]
FINGERPRINT_DIGITS = 12

DOCUMENT = "document"
TEMPLATE = "template"
VERSION = "document version"
MODEL = "model version"
INPUTS = "input fingerprint"
DATE = "generation date"
OWNER = "owner"
APPROVAL = "approval"
HISTORY = "change history"
COPY = "controlled copy"

HOW_TO = (
    "Owner and approval come from `docs` in `params.yaml` (docs/pipeline.md, *Document control*);\n"
    "an approval holds only for the input fingerprint it names. `dvc repro` regenerates\n"
    "this file; `make controlled-docs` writes the controlled copy of a commit: the commit\n"
    "in the document version, the commit date and the change history of its inputs."
)

Rows = list[tuple[str, str]]


class DocControlError(ValueError):
    """A document-control block that is missing, duplicated or malformed."""


def fingerprinted_params(params: Params) -> dict[str, object]:
    """Every params section except ``docs``: recording an approval must not change its scope."""
    data = to_builtins(params)
    data.pop("docs", None)
    return data


def input_fingerprint(deps: Mapping[str, str], params: Mapping[str, object]) -> str:
    """``sha256:`` and 12 hex digits over the stage's dependencies (path -> md5) and params."""
    canonical = json.dumps(
        {"deps": dict(sorted(deps.items())), "params": params},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"sha256:{digest[:FINGERPRINT_DIGITS]}"


def load_yaml(path: Path) -> Any:
    """YAML 1.2, safe types only: as DVC reads ``dvc.yaml``, ``dvc.lock`` and params."""
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


def stage_files(dvc_yaml: Path, name: str = STAGE) -> tuple[list[str], list[str]]:
    """The ``deps`` and ``outs`` paths ``dvc.yaml`` declares for stage ``name``."""
    stages = (load_yaml(dvc_yaml) or {}).get("stages") or {}
    if name not in stages:
        raise DocControlError(f"{dvc_yaml}: no stage {name!r}")

    def paths(key: str) -> list[str]:
        entries = stages[name].get(key) or []
        found = [entry if isinstance(entry, str) else next(iter(entry)) for entry in entries]
        interpolated = [path for path in found if "${" in path]
        if interpolated:
            raise DocControlError(f"{dvc_yaml}: {name} {key} must be plain paths: {interpolated}")
        return found

    return paths("deps"), paths("outs")


def approval_text(docs: DocsParams, fingerprint: str) -> str:
    """Who approved these inputs and when, or why the documents stand unapproved."""
    if not docs.approver:
        return "**not approved**: no approver recorded (`docs.approver` is empty)"
    when = docs.approved_on
    if docs.approved_inputs != fingerprint:
        return (
            f"**not approved**: the approval by {docs.approver} on {when} covers inputs "
            f"`{docs.approved_inputs}`, not these"
        )
    return f"approved by {docs.approver} on {when}"


def stage_rows(
    *,
    title: str,
    document: str,
    template: str,
    model_version: str,
    fingerprint: str,
    docs: DocsParams,
) -> Rows:
    """The rows the pipeline can determine; the others say where their value comes from."""
    return [
        (DOCUMENT, f"`{document}`: {title}"),
        (TEMPLATE, f"`{template}`, rendered by the `{STAGE}` DVC stage"),
        (VERSION, f"`{model_version}` + the commit, in a controlled copy"),
        (MODEL, f"`{model_version}` (md5 prefix of `models/model.onnx`, as served)"),
        (
            INPUTS,
            f"`{fingerprint}` over the `{STAGE}` dependencies and params (except `docs`) "
            "that `dvc.lock` records",
        ),
        (DATE, "the commit date, in a controlled copy"),
        (OWNER, docs.owner),
        (APPROVAL, approval_text(docs, fingerprint)),
        (HISTORY, "the git log of this document's inputs, in a controlled copy"),
    ]


def control_block(rows: Sequence[tuple[str, str]], extra: str = "") -> str:
    """The marked block: a two-column table (no cell may hold ``|``), then ``extra``."""
    for row in rows:
        for cell in row:
            if "|" in cell or "\n" in cell:
                raise DocControlError(
                    f"document-control cell must be one line without '|': {cell!r}"
                )
    table = markdown_table(HEADER, [list(row) for row in rows], align="left")
    parts = [BEGIN, table, extra.strip(), END]
    return "\n\n".join(part for part in parts if part)


def _span(text: str, source: str) -> tuple[int, int]:
    """Start and end offsets of the one marked block in ``text``."""
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise DocControlError(f"{source}: expected one document-control block")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    if end < start:
        raise DocControlError(f"{source}: document-control markers out of order")
    return start, end


def parse_rows(text: str, source: str) -> Rows:
    """The ``(field, value)`` rows of the document-control table in ``text``."""
    start, end = _span(text, source)
    lines = text[start:end].splitlines()[1:]
    table = list(itertools.takewhile(lambda line: line.startswith("|"), lines[1:]))
    if len(table) < 3 or [c.strip() for c in table[0].strip("|").split("|")] != HEADER:
        raise DocControlError(f"{source}: document-control block has no field/value table")
    rows = []
    for line in table[2:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 2:
            raise DocControlError(f"{source}: malformed document-control row {line!r}")
        rows.append((cells[0], cells[1]))
    return rows


def replace_block(text: str, rows: Sequence[tuple[str, str]], source: str, extra: str = "") -> str:
    """``text`` with its document-control block rebuilt from ``rows`` and ``extra``."""
    start, end = _span(text, source)
    return text[:start] + control_block(rows, extra) + text[end:]
