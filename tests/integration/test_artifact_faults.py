"""Fault injection against the real server: tampered or broken artifacts and locks.

Artifact faults work on a copy of the served files in ``tmp_path`` (``DIGITS_LOCK_FILE``
points there), never on the checkout. (Process faults: tests/integration/test_process_faults.py.)
"""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from serving.lineage import REFERENCE_STATS_JSON, REQUIRED_ARTIFACTS, file_md5
from tests.conftest import REPO_ROOT
from tests.integration.conftest import RunningServer, http_get, http_post
from tests.integration.test_server_metrics import sample_value

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
SERVED_FILES = ("dvc.lock", *REQUIRED_ARTIFACTS, REFERENCE_STATS_JSON)
GOOD = json.dumps({"samples": [[float(i % 17) for i in range(64)]]}).encode()


def copy_project(destination: Path) -> Path:
    """The served files copied under ``destination``; returns the copied dvc.lock."""
    for relative in SERVED_FILES:
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / relative, target)
    return destination / "dvc.lock"


def ready_refusal(server: RunningServer) -> dict[str, str]:
    status, body = http_get(f"{server.base_url}/ready")
    assert status == 503, body
    payload: dict[str, str] = json.loads(body)
    assert payload["status"] == "not_ready"
    # Every inference route refuses too, with the reason.
    status, body = http_post(f"{server.base_url}/predict", GOOD)
    assert status == 503, body
    assert json.loads(body)["reason"] == "model_not_ready"
    assert payload["message"] in json.loads(body)["message"]
    return payload


def relock(lock_file: Path, lock_path: str) -> None:
    """Record the current md5/size of ``lock_path`` in the copied dvc.lock (a re-lock)."""
    lock = yaml.safe_load(lock_file.read_text(encoding="utf-8"))
    target = lock_file.parent / lock_path
    for stage in lock["stages"].values():
        for out in stage.get("outs") or []:
            if out.get("path") == lock_path:
                out["md5"] = file_md5(target)
                out["size"] = target.stat().st_size
    lock_file.write_text(yaml.safe_dump(lock, sort_keys=False), encoding="utf-8")


def test_model_tampered_after_start_is_refused_on_restart(
    serve: Callable[..., RunningServer], tmp_path: Path
) -> None:
    lock_file = copy_project(tmp_path / "project")
    env = {"DIGITS_LOCK_FILE": str(lock_file)}
    server = serve(env, workers=1)
    version = json.loads(http_get(f"{server.base_url}/model")[1])["version"]
    model = lock_file.parent / "models/model.onnx"
    model.write_bytes(model.read_bytes() + b"\x00tampered")
    # The running worker keeps serving the bytes it verified at start.
    status, body = http_post(f"{server.base_url}/predict", GOOD)
    assert status == 200
    assert json.loads(body)["model_version"] == version
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0
    restarted = serve(env, workers=1, expect_ready=False)
    refusal = ready_refusal(restarted)
    assert refusal["reason"] == "hash_mismatch"
    # The answer names the reason only; the file, its path and md5 are in the log.
    assert str(model) not in refusal["message"]
    assert "md5" not in refusal["message"]
    log = restarted.log_text()
    assert str(model) in log
    assert "does not match dvc.lock" in log
    assert restarted.process.poll() is None, "refusing must not crash the server"


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def scramble(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(bytes(byte ^ 0x5A for byte in data))


def break_yaml(path: Path) -> None:
    path.write_text("schema: '2.0'\nstages: [unclosed\n  : {\n", encoding="utf-8")


def drop_out(path: Path) -> None:
    lock = yaml.safe_load(path.read_text(encoding="utf-8"))
    for stage in lock["stages"].values():
        stage["outs"] = [
            out for out in stage.get("outs") or [] if out["path"] != "models/model.onnx"
        ]
    path.write_text(yaml.safe_dump(lock, sort_keys=False), encoding="utf-8")


def corrupt_and_relock(target: str) -> Callable[[Path], None]:
    def fault(lock_file: Path) -> None:
        scramble(lock_file.parent / target)
        relock(lock_file, target)

    return fault


FAULTS: dict[str, tuple[Callable[[Path], object], str, str]] = {
    # name: (fault applied to the copied dvc.lock's directory, reason, text in message)
    "model_truncated": (
        lambda lock: truncate(lock.parent / "models/model.onnx"),
        "hash_mismatch",
        "model.onnx: md5",
    ),
    "model_corrupt": (
        lambda lock: scramble(lock.parent / "models/model.onnx"),
        "hash_mismatch",
        "model.onnx: md5",
    ),
    "model_missing": (
        lambda lock: (lock.parent / "models/model.onnx").unlink(),
        "artifact_missing",
        "model.onnx: pinned by dvc.lock but missing",
    ),
    "model_card_truncated": (
        lambda lock: truncate(lock.parent / "models/model.json"),
        "hash_mismatch",
        "model.json: md5",
    ),
    "reference_stats_corrupt": (
        lambda lock: scramble(lock.parent / "data/prepared/reference_stats.json"),
        "hash_mismatch",
        "reference_stats.json: md5",
    ),
    "model_corrupt_but_relocked": (
        corrupt_and_relock("models/model.onnx"),
        "artifact_invalid",
        "model.onnx cannot be loaded",
    ),
    "model_card_corrupt_but_relocked": (
        corrupt_and_relock("models/model.json"),
        "artifact_invalid",
        "model.json: cannot be parsed",
    ),
    "lock_missing": (lambda lock: lock.unlink(), "lock_missing", "lock file not found"),
    "lock_unparseable": (break_yaml, "lock_invalid", "not valid YAML"),
    "lock_empty": (
        lambda lock: lock.write_text("", encoding="utf-8"),
        "lock_invalid",
        "no 'stages'",
    ),
    "lock_entry_missing": (drop_out, "lock_entry_missing", "no outs entry for models/model.onnx"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_broken_artifact_or_lock_is_refused(
    serve: Callable[..., RunningServer], tmp_path: Path, fault: str
) -> None:
    apply, reason, text = FAULTS[fault]
    lock_file = copy_project(tmp_path / "project")
    apply(lock_file)
    server = serve({"DIGITS_LOCK_FILE": str(lock_file)}, workers=1, expect_ready=False)
    refusal = ready_refusal(server)
    assert refusal["reason"] == reason, refusal
    # What went wrong is in the log; an unauthenticated caller learns the reason code only.
    assert text not in refusal["message"], refusal
    assert str(lock_file.parent) not in refusal["message"], refusal
    assert text in server.log_text()
    assert http_get(f"{server.base_url}/health")[0] == 200
    status, body = http_get(f"{server.base_url}/metrics")
    assert status == 200
    assert sample_value(body.decode(), "model_ready") == 0
    assert server.process.poll() is None
