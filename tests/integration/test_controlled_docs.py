"""Controlled copies of the audit documents, made by `python -m tools.controlled_docs` in a
temporary repository holding this project's files, with real `git` and `dvc`: the commit,
its date and the history of each document's inputs, byte-identical runs, and the refusals.

The repository starts from one root commit of HEAD's files, so what the test expects does
not depend on how deep CI cloned this project (a shallow checkout is the CI default)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from stages.lib.doc_control import (
    APPROVAL,
    BEGIN,
    COPY,
    DATE,
    END,
    HISTORY,
    INPUTS,
    OWNER,
    VERSION,
    load_yaml,
    parse_rows,
)
from tests.conftest import REPO_ROOT
from tests.integration.dvc_repo import clone, run, seed_from_checkout, tool_env

pytestmark = pytest.mark.integration

DOCUMENTS = {"model_card.md", "evaluation_protocol.md", "risk_register.md"}
ROOT_DATE = "2031-01-01T00:00:00+00:00"
NOTES = 20  # commits that change an input (a params.yaml comment) before the template change
FIRST_DATE = "2031-02-03T04:05:06+01:00"
SECOND_DATE = "2031-02-04T10:00:00-05:00"
APPROVED_ON = "2031-02-04"


@dataclass(frozen=True)
class Repo:
    """Root commit, ``NOTES`` commenting ``params.yaml``, then the template, README-only and
    params commits (`dvc repro` run after each input change)."""

    path: Path
    template_commit: str  # the risk register's template
    readme_commit: str  # README.md only: no input of the documents
    params_commit: str  # docs owner and approval in params.yaml: every document's input


def commit(repo: Path, message: str, when: str) -> str:
    """Commit everything with a fixed author and committer date; the new commit's hash."""
    env = {**tool_env(), "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
    for args in (["git", "add", "-A"], ["git", "commit", "--quiet", "-m", message]):
        subprocess.run(args, cwd=repo, env=env, check=True, capture_output=True, timeout=60)
    return run("git", "rev-parse", "HEAD", cwd=repo).strip()


def controlled_docs(repo: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """The command as `make controlled-docs` runs it, on ``repo``."""
    return subprocess.run(
        [sys.executable, "-m", "tools.controlled_docs", "--repo", str(repo), "--out", str(out)],
        cwd=REPO_ROOT,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def history_rows(text: str) -> list[list[str]]:
    """The cells of the change-history table of a controlled copy."""
    section = text[text.index("### Change history") : text.index(END)]
    lines = [line for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip("|"))] for line in lines]


def fingerprint(repo: Path) -> str:
    """The input fingerprint the committed model card states."""
    rows = dict(parse_rows((repo / "docs" / "model_card.md").read_text(encoding="utf-8"), "card"))
    return rows[INPUTS].split("`")[1]


def set_docs(repo: Path, owner: str, approval: str) -> None:
    """Owner and an approval by Jane Doe of the inputs ``approval``, as a user edits them."""
    params = repo / "params.yaml"
    old = (
        '  owner: ML platform engineer\n  approver: ""\n  approved_on: ""\n  approved_inputs: ""\n'
    )
    new = (
        f'  owner: {owner}\n  approver: Jane Doe\n  approved_on: "{APPROVED_ON}"\n'
        f"  approved_inputs: {approval}\n"
    )
    text = params.read_text(encoding="utf-8")
    assert text.count(old) == 1
    params.write_text(text.replace(old, new), encoding="utf-8")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    path = clone(tmp_path_factory.mktemp("controlled") / "repo")
    shutil.rmtree(path / ".git")  # HEAD's files as the root of a history the test controls
    run("git", "init", "--quiet", cwd=path)
    run("git", "config", "user.email", "test@example.invalid", cwd=path)
    run("git", "config", "user.name", "Test", cwd=path)
    commit(path, "The project at the start of the test", ROOT_DATE)
    seed_from_checkout(path)
    params = path / "params.yaml"
    for note in range(1, NOTES + 1):  # comments: no param value changes, dvc.lock stays valid
        with params.open("a", encoding="utf-8") as handle:
            handle.write(f"# note {note}\n")
        commit(path, f"params.yaml: note {note}", f"2031-01-{note + 1:02d}T12:00:00+00:00")
    template = path / "docs" / "templates" / "risk_register.md"
    template.write_text(
        template.read_text(encoding="utf-8") + "\nReviewed for the controlled copy.\n",
        encoding="utf-8",
    )
    run("dvc", "repro", cwd=path)
    first = commit(path, "Risk register: a reviewed note", FIRST_DATE)
    readme = path / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8") + "\nNot an input.\n", encoding="utf-8")
    unrelated = commit(path, "README: not an input of the documents", FIRST_DATE)
    set_docs(path, owner="Quality lead", approval=fingerprint(path))
    run("dvc", "repro", cwd=path)
    second = commit(path, "Audit documents | owned by the quality lead, approved", SECOND_DATE)
    assert run("git", "status", "--porcelain", cwd=path) == ""
    return Repo(path, first, unrelated, second)


def test_copies_carry_version_date_and_history_and_are_byte_identical(
    repo: Repo, tmp_path: Path
) -> None:
    runs = [tmp_path / "first", tmp_path / "second"]
    for out in runs:
        result = controlled_docs(repo.path, out)
        assert result.returncode == 0, result.stderr
    assert {p.name for p in runs[0].iterdir()} == DOCUMENTS
    for name in DOCUMENTS:
        assert (runs[0] / name).read_bytes() == (runs[1] / name).read_bytes(), name

    lock = load_yaml(repo.path / "dvc.lock")
    onnx = next(d for d in lock["stages"]["audit-docs"]["deps"] if d["path"] == "models/model.onnx")
    head, first = repo.params_commit, repo.template_commit
    risk = (runs[0] / "risk_register.md").read_text(encoding="utf-8")
    rows = dict(parse_rows(risk, "risk_register.md"))
    assert rows[VERSION] == f"`{onnx['md5'][:12]}+{head[:12]}`"
    assert rows[DATE] == f"{SECOND_DATE} (committer date of `{head[:12]}`)"
    assert rows[COPY].startswith(f"of commit `{head}`")
    assert rows[OWNER] == "Quality lead"
    assert "truncated" not in risk
    history = history_rows(risk)
    assert history[:2] == [
        [
            f"`{head[:12]}`",
            SECOND_DATE,
            "Test",
            "Audit documents \\| owned by the quality lead, approved",
        ],
        [f"`{first[:12]}`", FIRST_DATE, "Test", "Risk register: a reviewed note"],
    ]
    total = 1 + NOTES + 2  # root, notes, template and params commits; not the README one
    assert rows[HISTORY] == f"20 of {total} commits, below"
    assert len(history) == 20
    assert history[-1][3] == f"params.yaml: note {NOTES + 2 - 20 + 1}"  # the newest 20 only
    assert f"Newest first, 20 of the {total} commits that changed this document's inputs" in risk

    card = (runs[0] / "model_card.md").read_text(encoding="utf-8")
    assert [row[0] for row in history_rows(card)][:2] == [f"`{head[:12]}`", f"`{first[:12]}`"]
    assert repo.readme_commit[:12] not in card + risk

    committed = (repo.path / "docs" / "risk_register.md").read_text(encoding="utf-8")
    assert risk[: risk.index(BEGIN)] == committed[: committed.index(BEGIN)]
    assert risk[risk.index(END) :] == committed[committed.index(END) :]
    unfilled = dict(parse_rows(committed, "risk_register.md"))
    assert {k: v for k, v in unfilled.items() if k not in (VERSION, DATE, HISTORY)} == {
        k: v for k, v in rows.items() if k not in (VERSION, DATE, HISTORY, COPY)
    }


def test_uncommitted_inputs_are_refused_and_nothing_is_written(repo: Repo, tmp_path: Path) -> None:
    template = repo.path / "docs" / "templates" / "model_card.md"
    original = template.read_bytes()
    template.write_bytes(original + b"\nA draft.\n")
    try:
        result = controlled_docs(repo.path, tmp_path / "out")
    finally:
        template.write_bytes(original)
    assert result.returncode == 2
    assert result.stderr == (
        "controlled-docs: refused: uncommitted changes to docs/templates/model_card.md: "
        "a controlled copy is of a commit; commit or stash them first\n"
    )
    assert not (tmp_path / "out").exists()


def test_a_commit_whose_dvc_lock_is_stale_is_refused(repo: Repo, tmp_path: Path) -> None:
    stale = clone(tmp_path / "stale", source=repo.path)
    template = stale / "docs" / "templates" / "evaluation_protocol.md"
    template.write_text(template.read_text(encoding="utf-8") + "\nUnrendered.\n", encoding="utf-8")
    commit(stale, "Template changed without dvc repro", FIRST_DATE)
    result = controlled_docs(stale, tmp_path / "out")
    assert result.returncode == 1
    assert "dvc.lock does not record the committed docs/templates/evaluation_protocol.md" in (
        result.stderr
    )
    assert not (tmp_path / "out").exists()


def test_a_shallow_clone_says_its_history_is_truncated(repo: Repo, tmp_path: Path) -> None:
    shallow = tmp_path / "shallow"
    run("git", "clone", "--quiet", "--depth", "1", repo.path.as_uri(), str(shallow), cwd=tmp_path)
    assert run("git", "rev-parse", "--is-shallow-repository", cwd=shallow).strip() == "true"
    result = controlled_docs(shallow, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "out" / "model_card.md").read_text(encoding="utf-8")
    rows = dict(parse_rows(text, "model_card.md"))
    assert rows[HISTORY] == "1 of 1 commits, below (**truncated**: shallow clone)"
    assert "**History truncated:** this copy was made in a shallow clone" in text
    assert rows[VERSION].endswith(f"+{repo.params_commit[:12]}`")
    assert rows[DATE] == f"{SECOND_DATE} (committer date of `{repo.params_commit[:12]}`)"


def test_an_approval_holds_for_its_inputs_only(repo: Repo, tmp_path: Path) -> None:
    """Recording the approval kept the fingerprint; changing an input lapses the approval."""
    approved = fingerprint(repo.path)
    card = (repo.path / "docs" / "model_card.md").read_text(encoding="utf-8")
    assert dict(parse_rows(card, "card"))[APPROVAL] == f"approved by Jane Doe on {APPROVED_ON}"
    parent = run("git", "show", "HEAD~1:docs/model_card.md", cwd=repo.path)
    assert dict(parse_rows(parent, "card"))[INPUTS] == dict(parse_rows(card, "card"))[INPUTS]

    changed = clone(tmp_path / "changed", source=repo.path)
    seed_from_checkout(changed)
    template = changed / "docs" / "templates" / "evaluation_protocol.md"
    template.write_text(template.read_text(encoding="utf-8") + "\nChanged.\n", encoding="utf-8")
    run("dvc", "repro", cwd=changed)
    assert fingerprint(changed) != approved
    for name in DOCUMENTS:
        rows = dict(parse_rows((changed / "docs" / name).read_text(encoding="utf-8"), name))
        assert rows[APPROVAL] == (
            f"**not approved**: the approval by Jane Doe on {APPROVED_ON} covers inputs "
            f"`{approved}`, not these"
        ), name
