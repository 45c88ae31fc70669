"""The registry entry beside the model and the raw-data lineage read from dvc.lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.lineage import LineageError, raw_data_entry, read_lock
from serving.registry import RegistryInfo, read_registry
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
