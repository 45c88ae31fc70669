"""serving.lineage: the service verifies every served file against dvc.lock."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml
from litestar.testing import TestClient

from serving.app import create_app
from serving.lineage import (
    IMPORTANCE_JSON,
    METRICS_JSON,
    MODEL_JSON,
    MODEL_ONNX,
    OOD_JSON,
    OOD_ONNX,
    REQUIRED_ARTIFACTS,
    FileSnapshot,
    LineageError,
    file_md5,
    load_verified_bundle,
)
from serving.settings import Settings

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]
SERVED = (MODEL_ONNX, MODEL_JSON, OOD_ONNX, OOD_JSON, METRICS_JSON, IMPORTANCE_JSON)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the locked project: dvc.lock plus every served artifact."""
    assert set(SERVED) == set(REQUIRED_ARTIFACTS)
    shutil.copy2(REPO_ROOT / "dvc.lock", tmp_path / "dvc.lock")
    for relative in SERVED:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / relative, tmp_path / relative)
    return tmp_path


def verify(project: Path) -> LineageError:
    with pytest.raises(LineageError) as caught:
        load_verified_bundle(FileSnapshot.read(project / "dvc.lock", project / "models"))
    return caught.value


def rewrite_lock_md5(project: Path, lock_path: str, md5: str) -> None:
    lock_file = project / "dvc.lock"
    lock = yaml.safe_load(lock_file.read_text())
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            if out["path"] == lock_path:
                out["md5"] = md5
    lock_file.write_text(yaml.safe_dump(lock, sort_keys=False))


def test_file_md5_matches_hashlib(project: Path) -> None:
    data = (project / MODEL_ONNX).read_bytes()
    assert file_md5(project / MODEL_ONNX) == hashlib.md5(data, usedforsecurity=False).hexdigest()


def test_intact_copy_verifies_and_version_is_the_locked_md5_prefix(project: Path) -> None:
    bundle = load_verified_bundle(FileSnapshot.read(project / "dvc.lock", project / "models"))
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    onnx_out = next(o for o in lock["stages"]["train"]["outs"] if o["path"] == MODEL_ONNX)
    assert bundle.version == onnx_out["md5"][:12]
    assert set(bundle.artifacts) == set(SERVED)
    assert bundle.train_stage.name == "train"
    assert bundle.train_stage.cmd.startswith("python -m stages.train")
    assert bundle.card.n_features == 64
    assert len(bundle.importance.importances_mean) == 64


@pytest.mark.parametrize("relative", SERVED)
def test_tampered_artifact_is_refused(project: Path, relative: str) -> None:
    with (project / relative).open("ab") as handle:
        handle.write(b" ")
    error = verify(project)
    assert error.reason == "hash_mismatch"
    assert relative.split("/")[-1] in str(error)
    assert "does not match dvc.lock" in str(error)


@pytest.mark.parametrize("relative", SERVED)
def test_missing_artifact_is_refused(project: Path, relative: str) -> None:
    (project / relative).unlink()
    error = verify(project)
    assert error.reason == "artifact_missing"
    assert relative.split("/")[-1] in str(error)


@pytest.mark.parametrize("relative", SERVED)
def test_lock_entry_absent_is_refused(project: Path, relative: str) -> None:
    lock_file = project / "dvc.lock"
    lock = yaml.safe_load(lock_file.read_text())
    for stage in lock["stages"].values():
        stage["outs"] = [o for o in stage.get("outs", []) if o["path"] != relative]
    lock_file.write_text(yaml.safe_dump(lock))
    error = verify(project)
    assert error.reason == "lock_entry_missing"
    assert relative in str(error)


def test_lock_pinning_another_version_is_refused(project: Path) -> None:
    rewrite_lock_md5(project, MODEL_ONNX, "0" * 32)
    error = verify(project)
    assert error.reason == "hash_mismatch"
    assert "0" * 32 in str(error)


def test_missing_lock_file_is_refused(project: Path) -> None:
    (project / "dvc.lock").unlink()
    assert verify(project).reason == "lock_missing"


def test_unparseable_lock_file_is_refused(project: Path) -> None:
    (project / "dvc.lock").write_text("stages: [unclosed\n")
    assert verify(project).reason == "lock_invalid"


def test_artifact_that_matches_the_lock_but_does_not_parse_is_refused(project: Path) -> None:
    broken = project / MODEL_JSON
    broken.write_text('{"name": "digits-classifier"')
    rewrite_lock_md5(project, MODEL_JSON, file_md5(broken))
    error = verify(project)
    assert error.reason == "artifact_invalid"
    assert "model.json" in str(error)


def test_onnx_that_matches_the_lock_but_does_not_load_is_refused(project: Path) -> None:
    broken = project / MODEL_ONNX
    broken.write_bytes(b"not an onnx model")
    rewrite_lock_md5(project, MODEL_ONNX, file_md5(broken))
    client_settings = Settings(lock_file_path=str(project / "dvc.lock"))
    with TestClient(app=create_app(client_settings)) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["reason"] == "artifact_invalid"


def test_model_dir_setting_is_where_the_model_is_read(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    shutil.move(project / "models", elsewhere)
    assert verify(project).reason == "artifact_missing"
    bundle = load_verified_bundle(FileSnapshot.read(project / "dvc.lock", elsewhere))
    assert bundle.artifacts[MODEL_ONNX].file_path == str(elsewhere / "model.onnx")


def test_refusing_service_stays_up_and_says_why(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (project / MODEL_ONNX).open("ab") as handle:
        handle.write(b"\0")
    settings = Settings(lock_file_path=str(project / "dvc.lock"))
    with TestClient(app=create_app(settings)) as client:
        assert client.get("/health").json() == {"status": "ok"}
        ready = client.get("/ready")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "not_ready"
        assert body["reason"] == "hash_mismatch"
        # Callers learn the reason code; the file and its md5 go to the log only.
        assert "hash_mismatch" in body["message"]
        assert "model.onnx" not in body["message"]
        sample = {"samples": [[0] * 64]}
        for path in ("/predict", "/explain"):
            answer = client.post(path, json=sample)
            assert answer.status_code == 503
            assert "hash_mismatch" in answer.json()["message"]
        assert client.get("/model").status_code == 503
    refusals = [r for r in caplog.records if r.getMessage().startswith("refusing to serve")]
    assert refusals
    assert "model.onnx" in refusals[0].getMessage()
    assert "does not match dvc.lock" in refusals[0].getMessage()
