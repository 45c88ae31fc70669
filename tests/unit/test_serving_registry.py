"""The registry entry beside the model (registry.json), the working copy's registered version
(plain git on a real temporary repository; the GTO part is in
tests/integration/test_decision_lineage.py) and the raw-data lineage read from dvc.lock."""

from __future__ import annotations

import subprocess
from pathlib import Path

import msgspec
import pytest
import yaml

from serving.lineage import FileSnapshot, LineageError, raw_data_entry, read_lock
from serving.lineage.registry import ARTIFACT, RegistryInfo, check_registry, read_registry
from serving.lineage.registry_lookup import (
    RESULT_ENV,
    LookupResult,
    encode_result,
    lookup,
    registry_for,
    served_md5s,
)
from serving.settings import Settings
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit


def test_no_registry_file_means_none(tmp_path: Path) -> None:
    assert read_registry(tmp_path) is None


def test_registry_file_is_parsed(tmp_path: Path) -> None:
    (tmp_path / "registry.json").write_text(
        '{"artifact": "digits-classifier", "version": "v1.0.0", "stage": "prod",'
        ' "ref": "digits-classifier#prod", "commit": "abc"}',
        encoding="utf-8",
    )
    assert read_registry(tmp_path) == RegistryInfo(
        "digits-classifier", "v1.0.0", "prod", "digits-classifier#prod", "abc"
    )


def test_invalid_registry_file_is_a_named_refusal(tmp_path: Path) -> None:
    (tmp_path / "registry.json").write_text('{"version": 1}', encoding="utf-8")
    with pytest.raises(LineageError) as raised:
        read_registry(tmp_path)
    assert raised.value.reason == "artifact_invalid"


def test_raw_data_entry_is_the_data_source_dependency_of_data_prep() -> None:
    lock = read_lock(REPO_ROOT / "dvc.lock")
    entry = raw_data_entry(lock)
    assert entry is not None
    assert entry.lock_path == "data/raw/digits.csv"
    dep = next(d for d in lock["stages"]["data-prep"]["deps"] if d["path"] == entry.lock_path)
    assert (entry.md5, entry.size) == (dep["md5"], dep["size"])


def test_no_raw_entry_when_the_source_is_not_a_dependency() -> None:
    lock = read_lock(REPO_ROOT / "dvc.lock")
    lock["stages"]["data-prep"]["params"]["params.yaml"]["data.source"] = "sklearn-digits"
    assert raw_data_entry(lock) is None


def test_the_artifact_is_the_dvc_yaml_and_makefile_artifact() -> None:
    dvc_yaml = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    assert list(dvc_yaml["artifacts"]) == [ARTIFACT]
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    assert f"ARTIFACT := {ARTIFACT}\n" in makefile


def test_a_registry_entry_for_other_files_is_refused(tmp_path: Path) -> None:
    served = served_md5s(read_lock(REPO_ROOT / "dvc.lock"))
    entry = RegistryInfo(ARTIFACT, "v1.0.0", "prod", f"{ARTIFACT}#prod", "c" * 40, served)
    check_registry(entry, served, tmp_path / "registry.json")  # made for these files
    check_registry(RegistryInfo(ARTIFACT, "v1.0.0"), served, tmp_path)  # older file: no md5s
    other = {**served, "models/model.onnx": "0" * 32}
    with pytest.raises(LineageError) as raised:
        check_registry(entry, other, tmp_path / "registry.json")
    assert raised.value.reason == "registry_mismatch"
    assert "models/model.onnx" in str(raised.value)


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def lock_repo(tmp_path: Path) -> Path:
    """A git repository holding a copy of this checkout's dvc.lock, committed."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "--quiet")
    git(repo, "config", "user.email", "test@example.invalid")
    git(repo, "config", "user.name", "Test")
    (repo / "dvc.lock").write_bytes((REPO_ROOT / "dvc.lock").read_bytes())
    git(repo, "add", "dvc.lock")
    git(repo, "commit", "--quiet", "-m", "lock")
    return repo


def test_no_repository_or_no_registration_tag_is_no_registry_version(
    tmp_path: Path, lock_repo: Path
) -> None:
    served = served_md5s(read_lock(REPO_ROOT / "dvc.lock"))
    outside = tmp_path / "outside"  # not in a git repository (an image, a copied bundle)
    outside.mkdir()
    (outside / "dvc.lock").write_bytes((REPO_ROOT / "dvc.lock").read_bytes())
    # no tags: nothing to compare, so the lock is not even parsed unless served is given
    assert lookup(outside / "dvc.lock") == LookupResult({})
    assert lookup(outside / "dvc.lock", served) == LookupResult(served)
    assert lookup(lock_repo / "dvc.lock") == LookupResult({})
    git(lock_repo, "tag", f"{ARTIFACT}@v1.0.0")  # lightweight: GTO ignores it
    git(lock_repo, "tag", "-a", "-m", "other", "other-model@v1.0.0")
    assert lookup(lock_repo / "dvc.lock", served) == LookupResult(served)


def test_a_registered_commit_that_pins_other_files_does_not_match(lock_repo: Path) -> None:
    """Only the registered commit's dvc.lock decides: this one pins another model, so no
    version matches and GTO is never asked (no registry version, no note)."""
    lock = lock_repo / "dvc.lock"
    text = lock.read_text(encoding="utf-8")
    model_md5 = served_md5s(read_lock(lock))["models/model.onnx"]
    lock.write_text(text.replace(model_md5, model_md5[::-1]), encoding="utf-8")
    git(lock_repo, "commit", "--quiet", "-am", "another model")
    git(lock_repo, "tag", "-a", "-m", "register", f"{ARTIFACT}@v1.0.0")
    lock.write_text(text, encoding="utf-8")
    git(lock_repo, "commit", "--quiet", "-am", "this model")
    result = lookup(lock)
    assert result.served["models/model.onnx"] == model_md5
    assert (result.registry, result.note) == (None, None)


def test_workers_use_the_launchers_result_only_for_the_files_it_compared(
    tmp_path: Path,
) -> None:
    """registry_for: the result handed over by ``python -m serving`` is used when it compared
    the md5s the worker verified; otherwise the worker looks up itself (here: no repository)."""
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    settings = Settings(lock_file_path=str(REPO_ROOT / "dvc.lock"), model_dir_path=str(model_dir))
    served = served_md5s(read_lock(REPO_ROOT / "dvc.lock"))
    entry = RegistryInfo(ARTIFACT, "v3.1.4", "prod", f"{ARTIFACT}@v3.1.4", "d" * 40)
    handed = {RESULT_ENV: encode_result(LookupResult(served, entry))}
    snapshot = FileSnapshot.read(settings.lock_file, model_dir)
    assert registry_for(settings, served, snapshot, handed) == (entry, None)
    other = {**served, "models/model.onnx": "0" * 32}
    stale = {RESULT_ENV: encode_result(LookupResult(other, entry))}
    assert registry_for(settings, served, snapshot, stale)[0] != entry
    written = RegistryInfo(ARTIFACT, "v9.0.0")
    (model_dir / "registry.json").write_bytes(msgspec.json.encode(written))
    snapshot = FileSnapshot.read(settings.lock_file, model_dir)
    assert registry_for(settings, served, snapshot, handed) == (written, None)  # registry.json
