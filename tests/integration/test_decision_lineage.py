"""A decision traces to its registry version, for real: a temporary clone with this checkout's
pipeline outputs, real ``make release`` / ``make promote`` (GTO tags), ``python -m serving``
on a loopback port with decision records, a real prediction, and the real
``python -m serving.decisions show ID``. Every link of the chain (request id -> model version
-> registry version and stage -> commit -> params -> raw-data md5) is checked against values
read independently: git, gto, the files' md5 and the committed ``dvc.lock``/``params.yaml``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.integration.conftest import RunningServer, http_get, stop_server
from tests.integration.dvc_repo import clone, md5, run, seed_from_checkout, tool_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ARTIFACT = "digits-classifier"
# Never rebuild the clone's venv: the suite's venv is on PATH (tests/integration/dvc_repo.py).
MAKE = ("make", "--no-print-directory", "-o", ".venv/.installed-dev.lock")
LINK = ("version", "stage", "commit")
SAMPLE = [0.0, 0.0, 5.0, 13.0, 9.0, 1.0, 0.0, 0.0] * 8


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone of this checkout's HEAD with its pipeline outputs (from this checkout's DVC
    cache: nothing is rerun)."""
    repo = clone(tmp_path_factory.mktemp("lineage") / "repo")
    seed_from_checkout(repo)
    return repo


@pytest.fixture
def repo(seeded: Path, tmp_path: Path) -> Path:
    """This test's own copy of the seeded clone (tags and commits do not leak between tests)."""
    return Path(shutil.copytree(seeded, tmp_path / "repo", symlinks=True))


def git(repo: Path, *args: str) -> str:
    return run("git", *args, cwd=repo).strip()


def commit_of(repo: Path, rev: str) -> str:
    return git(repo, "rev-parse", f"{rev}^{{commit}}")


def start(
    serve: Callable[..., RunningServer], repo: Path, records: Path, workers: int = 2
) -> RunningServer:
    env = {
        "DIGITS_LOCK_FILE": str(repo / "dvc.lock"),
        "DIGITS_DECISION_LOG_DIR": str(records),
        "DIGITS_DECISION_FLUSH_SECONDS": "0.05",
    }
    return serve(env, workers=workers)  # this checkout's serving code, the clone's model


def model_registry(server: RunningServer) -> dict[str, Any] | None:
    status, body = http_get(f"{server.base_url}/model")
    assert status == 200, body
    registry: dict[str, Any] | None = json.loads(body)["registry"]
    return registry


def predict(server: RunningServer) -> tuple[str, str]:
    """One real prediction: its request id and the model version it answered with."""
    answer = httpx.post(f"{server.base_url}/predict", json={"samples": [SAMPLE]}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.headers["x-request-id"], answer.json()["model_version"]


def checkout_module(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m ARGS`` of this checkout's code: run here, not in a clone (``-m`` puts the
    working directory first on the import path)."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO_ROOT,
        env={**tool_env(), "PYTHONPATH": str(REPO_ROOT), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def show(repo: Path, records: Path, request_id: str) -> dict[str, Any]:
    """``python -m serving.decisions show ID --repo CLONE`` (the clone's git history)."""
    completed = checkout_module(
        "serving.decisions",
        "show",
        request_id,
        "--repo",
        str(repo),
        DIGITS_DECISION_LOG_DIR=str(records),
    )
    assert completed.returncode == 0, completed.stderr
    shown: dict[str, Any] = json.loads(completed.stdout)
    return shown


def decide(
    serve: Callable[..., RunningServer], repo: Path, records: Path
) -> tuple[dict[str, Any] | None, str, str, dict[str, Any]]:
    """Serve the clone, predict once, stop (the record is flushed), show the request id."""
    server = start(serve, repo, records)
    registry = model_registry(server)
    request_id, model_version = predict(server)
    assert stop_server(server) == 0, server.log_text()
    return registry, request_id, model_version, show(repo, records, request_id)


def numbers(value: Any) -> Any:
    """``value`` with numeric strings as floats: DVC writes ``1.0e-6`` as ``1e-06``, a float
    in YAML 1.2 that PyYAML (YAML 1.1: a float needs a dot) reads as a string."""
    if isinstance(value, dict):
        return {key: numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [numbers(item) for item in value]
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def release(repo: Path, version: str) -> None:
    run(*MAKE, "release", f"VERSION={version}", cwd=repo)


def test_a_released_working_copy_traces_each_decision_to_its_version(
    repo: Path, tmp_path: Path, serve: Callable[..., RunningServer]
) -> None:
    # A version registered on a commit that pins another model must not match: the working
    # copy serves what HEAD's dvc.lock pins, and that commit's lock pins something else.
    lock = repo / "dvc.lock"
    served_md5 = md5(repo / "models" / "model.onnx")
    text = lock.read_text(encoding="utf-8")
    assert text.count(served_md5) >= 1
    lock.write_text(text.replace(served_md5, served_md5[::-1]), encoding="utf-8")
    git(repo, "commit", "--quiet", "-am", "A lock that pins another model")
    release(repo, "v0.1.0")
    git(repo, "revert", "--no-edit", "HEAD")
    assert lock.read_text(encoding="utf-8") == text

    registry, rid, version, shown = decide(serve, repo, tmp_path / "unregistered")
    assert registry is None
    assert shown["record"]["registry"] is None
    chain = shown["chain"]
    assert (chain["request_id"], chain["model_version"]) == (rid, version)
    assert chain["registry_version"] is None
    assert chain["commit"] is None
    assert "no GTO-registered version" in chain["note"]

    # make release + make promote on this commit, then a commit that changes no served file:
    # the working copy still serves v1.0.0, whose commit is not HEAD.
    release(repo, "v1.0.0")
    run(*MAKE, "promote", "VERSION=v1.0.0", "STAGE=prod", cwd=repo)
    with (repo / "README.md").open("a", encoding="utf-8") as readme:
        readme.write("\nA change that serves the same model.\n")
    git(repo, "commit", "--quiet", "-am", "Docs only")
    tagged = commit_of(repo, f"{ARTIFACT}@v1.0.0")
    assert tagged != commit_of(repo, "HEAD")
    assert run("gto", "show", f"{ARTIFACT}#prod", "--version", cwd=repo).strip() == "v1.0.0"

    registry, rid, version, shown = decide(serve, repo, tmp_path / "released")
    assert registry == {
        "artifact": ARTIFACT,
        "version": "v1.0.0",
        "stage": "prod",
        "ref": f"{ARTIFACT}@v1.0.0",
        "commit": tagged,
    }
    record = shown["record"]
    assert record["registry"] == {key: registry[key] for key in LINK}  # /model == the record
    chain = shown["chain"]
    # request id -> model version
    assert chain["request_id"] == record["request_id"] == rid
    assert chain["model_version"] == record["model_version"] == version == served_md5[:12]
    # -> registry version and stage -> commit
    assert (chain["registry_version"], chain["registry_stage"]) == ("v1.0.0", "prod")
    assert chain["commit"] == tagged
    # -> params: what the commit's dvc.lock recorded for the stage that wrote the model, and
    # the values of params.yaml at that commit
    committed_lock = yaml.safe_load(git(repo, "show", f"{tagged}:dvc.lock"))
    train = next(
        stage
        for stage in committed_lock["stages"].values()
        if any(out["path"] == "models/model.onnx" for out in stage.get("outs", []))
    )
    assert any(
        out["path"] == "models/model.onnx" and out["md5"] == served_md5 for out in train["outs"]
    )
    assert chain["params"] == train["params"]
    committed_params = yaml.safe_load(git(repo, "show", f"{tagged}:params.yaml"))
    assert chain["params"]["params.yaml"]
    for key, value in chain["params"]["params.yaml"].items():
        assert numbers(committed_params[key]) == numbers(value), key
    # -> raw-data md5: the bytes of the dataset the commit's lock pins
    raw = repo / "data" / "raw" / "digits.csv"
    assert chain["raw_data"] == {
        "path": "data/raw/digits.csv",
        "md5": md5(raw),
        "size": len(raw.read_bytes()),
    }
    raw_stage = next(
        stage
        for stage in committed_lock["stages"].values()
        if any(out["path"] == "data/raw/digits.csv" for out in stage.get("outs", []))
    )
    assert chain["raw_data"]["md5"] in {out["md5"] for out in raw_stage["outs"]}
    assert chain["note"] is None

    # Deregistered in GTO: no longer a registry version.
    run("gto", "deprecate", ARTIFACT, "v1.0.0", cwd=repo)  # deregisters the version
    registry, _, _, shown = decide(serve, repo, tmp_path / "deregistered")
    assert registry is None
    assert shown["record"]["registry"] is None


def test_an_image_bundle_reports_its_registry_entry_and_refuses_other_files(
    repo: Path, tmp_path: Path, serve: Callable[..., RunningServer]
) -> None:
    """The image path (no git in the image): ``models/registry.json`` from
    tools/registry_bundle.py. /model and the record carry its version, stage and commit;
    an entry made for other files than the served ones is refused."""
    run("dvc", "remote", "modify", "--local", "local", "url", str(tmp_path / "remote"), cwd=repo)
    run("dvc", "push", "--quiet", cwd=repo)
    release(repo, "v1.0.0")
    run(*MAKE, "promote", "VERSION=v1.0.0", "STAGE=prod", cwd=repo)
    tagged = commit_of(repo, f"{ARTIFACT}@v1.0.0")
    bundle = tmp_path / "bundle"
    built = checkout_module(
        "tools.registry_bundle", f"{ARTIFACT}#prod", "--out", str(bundle), "--repo", str(repo)
    )
    assert built.returncode == 0, built.stderr

    registry, rid, version, shown = decide(serve, bundle, tmp_path / "records")
    assert registry == {
        "artifact": ARTIFACT,
        "version": "v1.0.0",
        "stage": "prod",
        "ref": f"{ARTIFACT}#prod",
        "commit": tagged,
    }
    assert shown["record"]["registry"] == {key: registry[key] for key in LINK}
    chain = shown["chain"]
    assert (chain["request_id"], chain["model_version"]) == (rid, version)
    assert (chain["registry_version"], chain["registry_stage"], chain["commit"]) == (
        "v1.0.0",
        "prod",
        tagged,
    )
    assert version == md5(bundle / "models" / "model.onnx")[:12]

    entry_file = bundle / "models" / "registry.json"
    entry = json.loads(entry_file.read_text(encoding="utf-8"))
    assert entry["artifacts"]["models/model.onnx"] == md5(bundle / "models" / "model.onnx")
    entry["artifacts"]["models/model.onnx"] = "0" * 32
    entry_file.write_text(json.dumps(entry), encoding="utf-8")
    server = serve({"DIGITS_LOCK_FILE": str(bundle / "dvc.lock")}, workers=1, expect_ready=False)
    status, body = http_get(f"{server.base_url}/ready")
    assert status == 503
    assert json.loads(body)["reason"] == "registry_mismatch"
