"""Signed models through the real server (`python -m serving`, pre-start check): a valid
signature serves; a wrong key, a missing bundle, and a tampered model whose dvc.lock was
rewritten to match it (the attack the md5 check cannot stop) are not ready."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
import yaml

from serving.lineage import file_md5
from serving.settings import Settings
from serving.signature import sign, signature_path
from tests.integration.conftest import RunningServer, http_get
from tests.unit.test_signature import copy_served_files, write_key_pair

pytestmark = pytest.mark.integration


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A project with this checkout's served files signed by a throwaway key:
    (project, public key, another public key)."""
    project = tmp_path / "project"
    copy_served_files(project)
    private, public = write_key_pair(tmp_path, "signer")
    _, other = write_key_pair(tmp_path, "other")
    settings = Settings(lock_file_path=str(project / "dvc.lock"))
    sign(settings, private, signature_path(settings))
    return project, public, other


def _env(project: Path, key: Path | None) -> dict[str, str]:
    env = {"DIGITS_LOCK_FILE": str(project / "dvc.lock")}
    if key is not None:
        env["DIGITS_MODEL_PUBLIC_KEY"] = str(key)
    return env


def _ready(server: RunningServer) -> tuple[int, dict[str, str]]:
    status, body = http_get(f"{server.base_url}/ready")
    return status, json.loads(body)


def test_valid_signature_is_ready(
    signed: tuple[Path, Path, Path], serve: Callable[..., RunningServer]
) -> None:
    project, public, _ = signed
    server = serve(_env(project, public), workers=2)
    status, body = _ready(server)
    assert status == 200
    assert body["model_version"] == file_md5(project / "models" / "model.onnx")[:12]


def test_wrong_key_is_not_ready(
    signed: tuple[Path, Path, Path], serve: Callable[..., RunningServer]
) -> None:
    project, _, other = signed
    server = serve(_env(project, other), workers=1, expect_ready=False)
    status, body = _ready(server)
    assert (status, body["status"], body["reason"]) == (503, "not_ready", "signature_invalid")
    status, _ = http_get(f"{server.base_url}/model")
    assert status == 503


def test_missing_signature_is_not_ready(
    signed: tuple[Path, Path, Path], serve: Callable[..., RunningServer]
) -> None:
    project, public, _ = signed
    (project / "models" / "model.sig").unlink()
    server = serve(_env(project, public), workers=1, expect_ready=False)
    assert _ready(server)[1]["reason"] == "signature_missing"


def _tamper_and_relock(project: Path) -> None:
    """Change a weight of the served ONNX model and rewrite dvc.lock to its new md5."""
    path = project / "models" / "model.onnx"
    model = onnx.load(str(path))
    initializer = next(i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT)
    weights = onnx.numpy_helper.to_array(initializer).copy()
    weights.flat[0] += 1.0
    initializer.CopyFrom(onnx.numpy_helper.from_array(weights, initializer.name))
    old_md5 = file_md5(path)
    onnx.save(model, str(path))
    lock_path = project / "dvc.lock"
    lock = yaml.safe_load(lock_path.read_text(encoding="utf-8"))
    for stage in lock["stages"].values():
        for entry in [*(stage.get("outs") or []), *(stage.get("deps") or [])]:
            if entry.get("md5") == old_md5:
                entry["md5"] = file_md5(path)
                entry["size"] = path.stat().st_size
    lock_path.write_text(yaml.safe_dump(lock, sort_keys=False), encoding="utf-8")


def test_tampered_model_with_a_matching_lock_is_not_ready(
    signed: tuple[Path, Path, Path], serve: Callable[..., RunningServer]
) -> None:
    project, public, _ = signed
    _tamper_and_relock(project)
    # The md5 check alone accepts it: without a key the tampered model is served.
    unkeyed = serve(_env(project, None), workers=1)
    status, body = _ready(unkeyed)
    assert status == 200
    assert body["model_version"] == file_md5(project / "models" / "model.onnx")[:12]
    # With the key it is refused.
    keyed = serve(_env(project, public), workers=1, expect_ready=False)
    status, body = _ready(keyed)
    assert (status, body["reason"]) == (503, "signature_invalid")
    assert "signature_invalid" in body["message"]  # what failed is in the log, not the answer
    assert "model.onnx" in keyed.log_text() or "dvc.lock" in keyed.log_text()
