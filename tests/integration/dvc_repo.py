"""Helpers for tests that drive real `git`, `dvc` and `gto` in temporary clones of this repo."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO_ROOT, VENV_BIN


def tool_env() -> dict[str, str]:
    """Our environment with the venv first on PATH (dvc's stages run `python`)."""
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    env.pop("PYTHONPATH", None)
    return {k: v for k, v in env.items() if not k.startswith("DIGITS_")}


def run(*args: str, cwd: Path, timeout: int = 600) -> str:
    """Run a command; fail the test with its output when it fails. Returns stdout+stderr."""
    result = subprocess.run(
        list(args),
        cwd=cwd,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def clone(dest: Path, source: Path = REPO_ROOT) -> Path:
    """A fresh `git clone` (no DVC outputs in it, empty DVC cache)."""
    run("git", "clone", "--quiet", "--no-hardlinks", str(source), str(dest), cwd=source)
    run("git", "config", "user.email", "test@example.invalid", cwd=dest)
    run("git", "config", "user.name", "Test", cwd=dest)
    return dest


def seed_from_checkout(repo: Path, source: Path = REPO_ROOT) -> None:
    """Fill ``repo``'s cache and workspace from ``source``'s DVC cache, used read-only as a
    local remote (a DVC 3 cache and a local remote have the same ``files/md5`` layout)."""
    run("dvc", "remote", "add", "--local", "seed", str(source / ".dvc" / "cache"), cwd=repo)
    run("dvc", "pull", "--quiet", "-r", "seed", cwd=repo)


def cached_outs(repo: Path) -> dict[str, str]:
    """``path -> md5`` of every DVC-cached output recorded in ``repo``'s dvc.lock."""
    lock: dict[str, Any] = yaml.safe_load((repo / "dvc.lock").read_text(encoding="utf-8"))
    dvc_yaml: dict[str, Any] = yaml.safe_load((repo / "dvc.yaml").read_text(encoding="utf-8"))
    uncached = set()
    for stage in dvc_yaml["stages"].values():
        for key in ("outs", "metrics"):
            for out in stage.get(key) or []:
                if isinstance(out, dict):
                    for path, options in out.items():
                        if options.get("cache") is False:
                            uncached.add(path)
    outs = {}
    for stage in lock["stages"].values():
        for out in stage.get("outs") or []:
            if out["path"] not in uncached:
                outs[out["path"]] = out["md5"]
    return outs


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
