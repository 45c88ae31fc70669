"""Signed models through the real server (`python -m serving`, pre-start check): a valid
signature serves; a wrong key, a missing bundle, a tampered model whose dvc.lock was
rewritten to match it (the attack the md5 check cannot stop) and a changed registry entry
are not ready; files swapped after a worker's check are never what it serves; an older
signed release is refused when DIGITS_EXPECTED_MODEL_VERSION names another."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from serving.lineage import REGISTRY_JSON, file_md5
from serving.lineage.signature import RESULT_ENV, encode_result, sign, signature_path, verify
from serving.settings import Settings
from tests.conftest import REPO_ROOT
from tests.integration.conftest import (
    READY_TIMEOUT_SECONDS,
    RunningServer,
    free_port,
    http_get,
    stop_server,
)
from tests.signing import (
    copy_served_files,
    tamper_and_relock,
    write_key_pair,
    write_registry_entry,
)

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


def test_tampered_model_with_a_matching_lock_is_not_ready(
    signed: tuple[Path, Path, Path], serve: Callable[..., RunningServer]
) -> None:
    project, public, _ = signed
    tamper_and_relock(project)
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


def _version(project: Path) -> str:
    return file_md5(project / "models" / "model.onnx")[:12]


class SwapOnFirstRead:
    """``path`` becomes a named pipe that hands its first reader the file's bytes, and at that
    moment puts ``swaps`` (path -> bytes, ``path`` itself included) in place, each by an
    atomic rename: the files are swapped right after ``path`` was first read, and every later
    open sees the swapped files."""

    def __init__(self, path: Path, swaps: dict[Path, bytes]) -> None:
        self.path = path
        self.original = path.read_bytes()
        self.staged: dict[Path, Path] = {}
        for target, data in swaps.items():
            staged = target.with_name(f".{target.name}.swap")
            staged.write_bytes(data)
            self.staged[staged] = target
        self.swapped = threading.Event()
        self._closing = False
        path.unlink()
        os.mkfifo(path)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        fd = os.open(self.path, os.O_WRONLY)  # blocks until the first reader opens the pipe
        with os.fdopen(fd, "wb") as pipe:
            if self._closing:
                return
            for staged, target in self.staged.items():
                staged.replace(target)
            self.swapped.set()
            pipe.write(self.original)

    def close(self) -> None:
        if not self.swapped.is_set():  # nobody read it: free the writer blocked in open
            self._closing = True
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            self._thread.join(timeout=10)
            os.close(fd)
        self._thread.join(timeout=10)


def _start_worker(project: Path, public: Path, signature_result: str, log: Path) -> RunningServer:
    """One granian worker of the app, without ``python -m serving``'s pre-start check: the
    worker gets ``signature_result`` as that check's result (as the launcher hands it on)."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DIGITS_", "GRANIAN_"))},
        "PYTHONPATH": str(REPO_ROOT),
        "PROMETHEUS_MULTIPROC_DIR": str(log.parent / "prometheus"),
        "DIGITS_LOCK_FILE": str(project / "dvc.lock"),
        "DIGITS_MODEL_PUBLIC_KEY": str(public),
        RESULT_ENV: signature_result,
    }
    (log.parent / "prometheus").mkdir(parents=True, exist_ok=True)
    args = ["--interface", "asgi", "--factory", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "granian", *args, "--workers", "1", "serving.app:app_from_env"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = RunningServer(process, port, log, seconds_to_ready=float("nan"))
    deadline = time.perf_counter() + READY_TIMEOUT_SECONDS
    while time.perf_counter() < deadline and process.poll() is None:
        try:
            status, _ = http_get(f"{server.base_url}/ready", timeout=1.0)
        except OSError:
            status = 0
        if status == 200 or (status == 503 and "refusing to serve" in server.log_text()):
            return server
        time.sleep(0.02)
    stop_server(server)
    raise RuntimeError(f"the worker did not load the model:\n{server.log_text()}")


@pytest.fixture
def swapped_after_read(
    signed: tuple[Path, Path, Path], tmp_path: Path
) -> Iterator[tuple[Path, Path, str, SwapOnFirstRead]]:
    """The signed project, verified (the pre-start result), whose model.onnx and dvc.lock are
    replaced by another model and a lock relocked to it the moment model.onnx is first read:
    (project, public key, pre-start result, the swap)."""
    project, public, _ = signed
    settings = Settings(lock_file_path=str(project / "dvc.lock"), model_public_key_path=str(public))
    result = verify(settings)
    assert result.status == "verified"
    other = tmp_path / "other-release"
    copy_served_files(other)
    tamper_and_relock(other)
    rels = ("models/model.onnx", "dvc.lock")
    swap = SwapOnFirstRead(project / rels[0], {project / r: (other / r).read_bytes() for r in rels})
    yield project, public, encode_result(result), swap
    swap.close()


def test_files_swapped_right_after_the_workers_check_are_not_served(
    swapped_after_read: tuple[Path, Path, str, SwapOnFirstRead], tmp_path: Path
) -> None:
    """The worker reads each served file once and hashes, verifies and loads those bytes: a
    model and a lock relocked to it, swapped in right after the worker read the model, are
    not what it serves (it once hashed the signed files, then loaded the swapped ones)."""
    project, public, result, swap = swapped_after_read
    signed_version = file_md5(REPO_ROOT / "models" / "model.onnx")[:12]
    server = _start_worker(project, public, result, tmp_path / "logs" / "worker.log")
    try:
        assert swap.swapped.is_set()
        assert _version(project) != signed_version  # on disk now: the swapped model
        status, body = http_get(f"{server.base_url}/model")
        assert status == 200, server.log_text()
        assert json.loads(body)["version"] == signed_version
    finally:
        stop_server(server)


def test_changed_registry_entry_is_not_ready(
    tmp_path: Path, serve: Callable[..., RunningServer]
) -> None:
    """models/registry.json is signed with the served files: promoting it by hand after
    signing (same files, so its md5 check passes) is refused."""
    project = tmp_path / "bundle"
    copy_served_files(project)
    write_registry_entry(project, stage="staging")
    private, public = write_key_pair(tmp_path, "signer")
    settings = Settings(lock_file_path=str(project / "dvc.lock"))
    sign(settings, private, signature_path(settings))
    server = serve(_env(project, public), workers=1)
    status, body = http_get(f"{server.base_url}/model")
    assert json.loads(body)["registry"]["stage"] == "staging"
    write_registry_entry(project, stage="prod")
    refused = serve(_env(project, public), workers=1, expect_ready=False)
    status, ready = _ready(refused)
    assert (status, ready["reason"]) == (503, "signature_invalid")
    assert REGISTRY_JSON.split("/")[-1] in refused.log_text()


def test_expected_model_version_refuses_an_older_signed_release(
    tmp_path: Path, serve: Callable[..., RunningServer]
) -> None:
    """A signature does not say which release is current: an older release signed with the
    same key verifies. DIGITS_EXPECTED_MODEL_VERSION refuses it, signed or not."""
    private, public = write_key_pair(tmp_path, "signer")
    older = tmp_path / "older"
    copy_served_files(older)
    tamper_and_relock(older)  # another model version, properly locked and signed
    settings = Settings(lock_file_path=str(older / "dvc.lock"))
    sign(settings, private, signature_path(settings))
    current = file_md5(REPO_ROOT / "models" / "model.onnx")[:12]
    assert _version(older) != current

    replayed = serve(_env(older, public), workers=1)  # verifies: signed by the same key
    assert _ready(replayed)[1]["model_version"] == _version(older)
    expect_current = {**_env(older, public), "DIGITS_EXPECTED_MODEL_VERSION": current}
    refused = serve(expect_current, workers=1, expect_ready=False)
    status, body = _ready(refused)
    assert (status, body["reason"]) == (503, "version_mismatch")
    assert current not in body["message"]  # the versions are in the log only
    assert f"version {_version(older)}" in refused.log_text()
    assert f"DIGITS_EXPECTED_MODEL_VERSION is {current}" in refused.log_text()
    unsigned = serve(
        {**expect_current, "DIGITS_MODEL_PUBLIC_KEY": ""}, workers=1, expect_ready=False
    )
    assert _ready(unsigned)[1]["reason"] == "version_mismatch"
    expect_older = {**_env(older, public), "DIGITS_EXPECTED_MODEL_VERSION": _version(older)}
    assert _ready(serve(expect_older, workers=1))[0] == 200
