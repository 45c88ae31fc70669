"""docs/api.md as a reader runs it: the quick start's requests against a real service, its
sample answers checked against the live ones, and the keys / decision-records session in a
scratch clone (a real service started by the documented command, the query tool, revokes)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from markdown_it import MarkdownIt

from tests.conftest import REPO_ROOT
from tests.doc_examples import examples_for
from tests.integration.conftest import RunningServer, free_port
from tests.integration.doc_shell import run_blocks
from tests.integration.dvc_repo import clone, seed_from_checkout

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

API_DOC = REPO_ROOT / "docs" / "api.md"
SERVICE_ID = re.compile(r"^[0-9a-f]{32}$")


def served_version() -> str:
    """The model version the service answers with: md5 prefix of the locked model."""
    lock = yaml.safe_load((REPO_ROOT / "dvc.lock").read_text(encoding="utf-8"))
    outs = lock["stages"]["train"]["outs"]
    return str(next(o["md5"] for o in outs if o["path"] == "models/model.onnx"))[:12]


def documented_answers() -> list[dict[str, Any]]:
    """The sample answers (```json blocks) of docs/api.md, in order."""
    tokens = MarkdownIt("commonmark").parse(API_DOC.read_text(encoding="utf-8"))
    return [json.loads(t.content) for t in tokens if t.type == "fence" and t.info == "json"]


def shown(value: float) -> float:
    """``value`` to the 2 significant digits the document shows."""
    return float(f"{value:.2g}")


def test_quick_start_answers_as_documented(
    request: pytest.FixtureRequest, serve: Callable[..., RunningServer], tmp_path: Path
) -> None:
    server = serve(workers=1)
    result = run_blocks(examples_for(request.node.nodeid), cwd=tmp_path, port=server.port)
    assert result.returncode == 0, result.stderr
    flat, nested, error = (json.loads(line) for line in result.stdout.splitlines())
    assert flat == nested
    sample, documented_error = documented_answers()[:2]
    stale = f"docs/api.md's sample answer is stale; the live one is {flat}"
    assert sample.keys() == flat.keys(), stale
    assert sample["model_version"] == flat["model_version"] == served_version(), stale
    assert sample["labels"] == flat["labels"] == [0], stale
    assert sample["classes"] == flat["classes"]
    assert sample["ood"] == flat["ood"], stale
    assert sample["probabilities"] == [[shown(p) for p in row] for row in flat["probabilities"]], (
        stale
    )
    assert sample["ood_score"] == [shown(score) for score in flat["ood_score"]], stale
    assert documented_error.keys() == error.keys()
    assert SERVICE_ID.match(documented_error["request_id"])
    assert SERVICE_ID.match(error["request_id"])
    for key in documented_error.keys() - {"request_id"}:
        assert documented_error[key] == error[key], key


def test_keys_and_decision_records_as_documented(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    repo = clone(tmp_path / "repo")
    seed_from_checkout(repo)
    blocks = examples_for(request.node.nodeid)
    port = free_port()
    env = {"DIGITS_PORT": str(port)}
    result = run_blocks(blocks, cwd=repo, port=port, env=env, timeout=180)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    request_id = next(
        line.split(":", 1)[1].strip()
        for line in (repo / "headers.txt").read_text(encoding="utf-8").splitlines()
        if line.lower().startswith("x-request-id:")
    )
    assert SERVICE_ID.match(request_id)
    lines = result.stdout.splitlines()
    answer = json.loads(next(line for line in lines if line.startswith('{"model_version"')))
    assert answer["model_version"] == served_version()
    # show, list by version and list by the client's id each print the record.
    assert sum(request_id in line for line in lines) >= 3, result.stdout
    assert "\n401\n200\n" in result.stdout  # the revoked key, then the new one
    assert (repo / "api-keys.jsonl").read_text(encoding="utf-8") == ""  # revoke-all
    # The documented --model-version is the one served, and finds this request's record.
    listing = next(
        line for block in blocks for line in block.text.splitlines() if "--model-version" in line
    )
    assert f"--model-version {served_version()}" in listing
    again = run_blocks([replace(blocks[0], text=listing)], cwd=repo)
    assert again.returncode == 0, again.stderr
    records = {r["request_id"]: r for r in map(json.loads, again.stdout.splitlines())}
    assert records[request_id]["client_request_id"] == "audit-123"
    # The request with the new key after the revoke is alice's second record.
    assert len(records) == 2
    assert {r["model_version"] for r in records.values()} == {served_version()}
