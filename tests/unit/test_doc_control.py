"""Document control: the block audit-docs renders, its fingerprint and the approval it states."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from stages.audit_docs import TemplateError, render_document
from stages.lib.doc_control import (
    APPROVAL,
    INPUTS,
    MODEL,
    OWNER,
    VERSION,
    DocControlError,
    approval_text,
    control_block,
    fingerprinted_params,
    input_fingerprint,
    load_yaml,
    parse_rows,
    replace_block,
    stage_files,
)
from stages.lib.params import Params, parse_params
from stages.lib.params_docs import DocsParams
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

DOCS = ["docs/model_card.md", "docs/evaluation_protocol.md", "docs/risk_register.md"]


def recorded_fingerprint(lock: dict[str, Any]) -> str:
    """The input fingerprint of the deps and params `dvc.lock` records for audit-docs."""
    stage = lock["stages"]["audit-docs"]
    deps = {dep["path"]: dep["md5"] for dep in stage["deps"]}
    recorded = dict(stage["params"]["params.yaml"])
    recorded.pop("docs", None)
    params = parse_params(json.dumps(recorded, default=str), source="dvc.lock params")
    return input_fingerprint(deps, fingerprinted_params(params))


def test_committed_documents_state_the_fingerprint_and_model_dvc_lock_records() -> None:
    """The fingerprint the stage computes from files equals the one of `dvc.lock`'s record."""
    lock = load_yaml(REPO_ROOT / "dvc.lock")
    fingerprint = recorded_fingerprint(lock)
    onnx = next(
        dep for dep in lock["stages"]["audit-docs"]["deps"] if dep["path"] == "models/model.onnx"
    )
    params = parse_params((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    for doc in DOCS:
        rows = dict(parse_rows((REPO_ROOT / doc).read_text(encoding="utf-8"), doc))
        assert rows[INPUTS].startswith(f"`{fingerprint}` "), doc
        assert rows[MODEL].startswith(f"`{onnx['md5'][:12]}` "), doc
        assert rows[OWNER] == params.docs.owner, doc
        assert rows[APPROVAL] == approval_text(params.docs, fingerprint), doc


def test_the_fingerprint_covers_deps_and_params_but_not_the_approval() -> None:
    deps = {"a.py": "0" * 32, "b.csv": "1" * 32}
    base = input_fingerprint(deps, fingerprinted_params(Params()))
    assert base.startswith("sha256:")
    assert len(base) == len("sha256:") + 12
    approved = parse_params(
        "docs: {approver: Jane Doe, approved_on: '2025-06-30', "
        "approved_inputs: sha256:0123456789ab}"
    )
    assert input_fingerprint(deps, fingerprinted_params(approved)) == base
    assert input_fingerprint(dict(reversed(deps.items())), fingerprinted_params(Params())) == base
    reseeded = fingerprinted_params(parse_params("seed: 7"))
    assert input_fingerprint(deps, reseeded) != base
    assert input_fingerprint({**deps, "b.csv": "2" * 32}, fingerprinted_params(Params())) != base


def test_an_approval_holds_only_for_the_inputs_it_names() -> None:
    fingerprint = "sha256:0123456789ab"
    assert approval_text(DocsParams(), fingerprint).startswith("**not approved**: no approver")
    approval = DocsParams(
        approver="Jane Doe", approved_on="2025-06-30", approved_inputs=fingerprint
    )
    assert approval_text(approval, fingerprint) == "approved by Jane Doe on 2025-06-30"
    lapsed = approval_text(approval, "sha256:ba9876543210")
    assert lapsed == (
        "**not approved**: the approval by Jane Doe on 2025-06-30 covers inputs "
        "`sha256:0123456789ab`, not these"
    )


def test_block_round_trips_and_is_replaced_in_place() -> None:
    rows = [("document", "`docs/x.md`: X"), (VERSION, "`abc` + the commit")]
    text = f"# X\n\nbody\n\n{control_block(rows)}\n\nafter\n"
    assert parse_rows(text, "x.md") == rows
    filled = replace_block(text, [(VERSION, "`abc+123`")], "x.md", extra="### History\n\nnone")
    assert filled.startswith("# X\n\nbody\n\n<!-- document-control: begin -->")
    assert filled.endswith("### History\n\nnone\n\n<!-- document-control: end -->\n\nafter\n")
    assert parse_rows(filled, "x.md") == [(VERSION, "`abc+123`")]


def test_malformed_blocks_and_cells_are_refused() -> None:
    with pytest.raises(
        DocControlError,
        match=re.escape("document-control cell must be one line without '|': 'a | b'"),
    ):
        control_block([("owner", "a | b")])
    with pytest.raises(DocControlError, match=r"x\.md: expected one document-control block"):
        parse_rows("# X\n", "x.md")
    block = control_block([("owner", "o")])
    with pytest.raises(DocControlError, match="expected one document-control block"):
        parse_rows(block + block, "x.md")
    with pytest.raises(DocControlError, match="no field/value table"):
        parse_rows("<!-- document-control: begin -->\n\n<!-- document-control: end -->", "x.md")


def test_stage_files_come_from_dvc_yaml(tmp_path: Path) -> None:
    deps, outs = stage_files(REPO_ROOT / "dvc.yaml")
    assert "stages/lib/doc_control.py" in deps
    assert "docs/templates/model_card.md" in deps
    assert outs == DOCS
    dvc_yaml = tmp_path / "dvc.yaml"
    dvc_yaml.write_text("stages:\n  audit-docs:\n    deps: ['${data.source}']\n", encoding="utf-8")
    with pytest.raises(DocControlError, match="deps must be plain paths"):
        stage_files(dvc_yaml)
    dvc_yaml.write_text("stages: {}\n", encoding="utf-8")
    with pytest.raises(DocControlError, match="no stage 'audit-docs'"):
        stage_files(dvc_yaml)


def test_a_template_needs_one_control_slot_and_a_title(tmp_path: Path) -> None:
    context = {"model_version": "f476e6598d82"}
    template = tmp_path / "t.md"
    template.write_text("# T `${model_version}`\n\n${document_control}\n", encoding="utf-8")
    text = render_document(template, Path("docs/t.md"), context, "sha256:0123456789ab", Params())
    rows = dict(parse_rows(text, "t.md"))
    assert rows["document"] == "`docs/t.md`: T `f476e6598d82`"
    assert rows[APPROVAL].startswith("**not approved**")
    for broken, problem in (
        ("# T\n", "needs exactly one"),
        ("# T\n${document_control}\n${document_control}\n", "needs exactly one"),
        ("T\n${document_control}\n", "needs a '# ' title line"),
    ):
        template.write_text(broken, encoding="utf-8")
        with pytest.raises(TemplateError, match=problem):
            render_document(template, Path("docs/t.md"), context, "sha256:0123456789ab", Params())
