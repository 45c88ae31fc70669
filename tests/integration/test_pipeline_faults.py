"""Pipeline faults: a stage killed mid-write, corrupt params and a full disk never leave an
artifact that DVC (or the service) would accept, and each fails with a clear message."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, VENV_BIN

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Loaded by every Python process through PYTHONPATH: SIGKILLs the process at a chosen point
# of the atomic write of models/model.onnx, as an OOM kill or a power cut would.
KILLER = """
import os, signal
with open("/proc/self/cmdline", "rb") as _cmdline:
    _is_train_stage = b"stages.train" in _cmdline.read()
_point = os.environ.get("KILL_AT") if _is_train_stage else None
_real_fsync, _real_replace = os.fsync, os.replace

def _is_target(fd_or_path):
    if isinstance(fd_or_path, int):
        fd_or_path = os.readlink(f"/proc/self/fd/{fd_or_path}")
    return "model.onnx" in os.fspath(fd_or_path)

def fsync(fd):
    if _point == "write" and _is_target(fd):
        os.kill(os.getpid(), signal.SIGKILL)
    return _real_fsync(fd)

def replace(src, dst, **kwargs):
    if _point == "rename" and _is_target(dst):
        os.kill(os.getpid(), signal.SIGKILL)
    return _real_replace(src, dst, **kwargs)

os.fsync, os.replace = fsync, replace
"""


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    env.pop("PYTHONPATH", None)
    return {**env, **extra}


def _run(*args: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args),
        cwd=cwd,
        env=_env(**extra),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


@pytest.fixture(scope="module")
def pipeline_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone with the pipeline run once."""
    clone = tmp_path_factory.mktemp("faults") / "repo"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(REPO_ROOT), str(clone)],
        check=True,
        timeout=120,
    )
    result = _run("dvc", "repro", cwd=clone)
    assert result.returncode == 0, result.stderr
    return clone


@pytest.mark.parametrize("kill_at", ["write", "rename"])
def test_stage_killed_mid_write_leaves_nothing_dvc_accepts(
    pipeline_clone: Path, tmp_path: Path, kill_at: str
) -> None:
    clone = pipeline_clone
    onnx = clone / "models" / "model.onnx"
    locked_md5 = _md5(onnx)
    (tmp_path / "sitecustomize.py").write_text(KILLER, encoding="utf-8")
    params = clone / "params.yaml"
    original = params.read_text(encoding="utf-8")
    # A change to the served model (the selected MLP), so train must write a new model.onnx.
    changed = original.replace("    alpha: 1.0e-4\n", "    alpha: 2.0e-4\n")
    assert changed != original
    params.write_text(changed, encoding="utf-8")
    try:
        killed = _run(
            "dvc", "repro", "--no-run-cache", cwd=clone, PYTHONPATH=str(tmp_path), KILL_AT=kill_at
        )
        assert killed.returncode != 0
        assert "Running stage 'train'" in killed.stdout
        # DVC removes a stage's outputs before running it; the kill leaves either nothing or
        # the previous complete model under the artifact's name, never a partial file.
        assert not onnx.exists() or _md5(onnx) == locked_md5
        # The lock still pins the previous model, and DVC reports the stage as not done.
        assert f"md5: {locked_md5}" in (clone / "dvc.lock").read_text(encoding="utf-8")
        status = _run("dvc", "status", cwd=clone)
        assert "train:" in status.stdout
        assert "Data and pipelines are up to date." not in status.stdout
        # The pinned version is restorable from DVC's cache.
        restored = _run("dvc", "checkout", "--force", "models/model.onnx", cwd=clone)
        assert restored.returncode == 0, restored.stderr
        assert _md5(onnx) == locked_md5
        # A clean rerun recovers; the killed write's temp file is git-ignored litter that the
        # next real write of the artifact removes.
        recovered = _run("dvc", "repro", cwd=clone)
        assert recovered.returncode == 0, recovered.stderr
        assert _md5(onnx) != locked_md5
        leftovers = [p.name for p in (clone / "models").glob(".*.tmp")]
        assert all(name.startswith(".model.onnx.") for name in leftovers)
        untracked = _run("git", "status", "--porcelain", "--", "models", cwd=clone).stdout
        assert untracked == ""
    finally:
        params.write_text(original, encoding="utf-8")
        assert _run("dvc", "repro", cwd=clone).returncode == 0


def test_corrupt_params_file_fails_dvc_repro_clearly(pipeline_clone: Path) -> None:
    params = pipeline_clone / "params.yaml"
    original = params.read_text(encoding="utf-8")
    params.write_text(original.replace("seed: 42", "seed: [42"), encoding="utf-8")
    try:
        result = _run("dvc", "repro", cwd=pipeline_clone)
        assert result.returncode != 0
        assert "params.yaml" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        params.write_text(original, encoding="utf-8")


def test_corrupt_params_file_fails_the_stage_on_one_line(pipeline_clone: Path) -> None:
    broken = pipeline_clone / "broken.yaml"
    broken.write_text("seed: 42\ndata: {test_size: [\n", encoding="utf-8")
    result = _run(
        sys.executable,
        "-m",
        "stages.train",
        "--params",
        str(broken),
        "--data-dir",
        "data/prepared",
        "--selection",
        "reports/model_selection.json",
        "--out-dir",
        "models",
        cwd=pipeline_clone,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "train: invalid params: " in result.stderr
    assert "not valid YAML (line 3, column 1)" in result.stderr


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: too small for the prepared split."""
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the mocked ENOSPC unit test covers the rest")
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_disk_full_gives_a_clear_error_and_no_corrupt_artifact(
    tiny_disk: Path, tmp_path: Path
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("", encoding="utf-8")
    out_dir = tiny_disk / "prepared"
    result = _run(
        sys.executable,
        "-m",
        "stages.data_prep",
        "--params",
        str(params),
        "--out-dir",
        str(out_dir),
        cwd=REPO_ROOT,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("data-prep: error: cannot write output ")
    assert "No space left on device" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == []
