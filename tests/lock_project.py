"""A small git repository with a hand-written dvc.lock, for tests of tools/lock_diff.py."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tools import lock_diff


class Project:
    """A git repository with a dvc.lock whose outs are the files written here."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(exist_ok=True)
        self.git("init", "--quiet")

    def git(self, *args: str) -> str:
        completed = subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return completed.stdout

    def write(self, path: str, data: bytes | str) -> None:
        file = self.root / path
        file.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            data = data.encode()
        file.write_bytes(data)

    def write_json(self, path: str, document: Any) -> None:
        self.write(path, json.dumps(document, indent=2) + "\n")

    def lock(self, stages: dict[str, list[str]], params: dict[str, Any] | None = None) -> None:
        """dvc.lock with one stage per entry, its outs the listed files as they are now."""

        def entry(path: str) -> dict[str, Any]:
            data = (self.root / path).read_bytes()
            md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
            return {"path": path, "hash": "md5", "md5": md5, "size": len(data)}

        if not (self.root / "make.py").exists():
            self.write("make.py", "print('stages')\n")
        document = {
            "schema": "2.0",
            "stages": {
                name: {"cmd": f"python make.py {name}", "deps": [entry("make.py")]}
                | ({"params": {"params.yaml": params}} if params else {})
                | {"outs": [entry(path) for path in outs]}
                for name, outs in stages.items()
            },
        }
        self.write("dvc.lock", yaml.safe_dump(document, sort_keys=False))

    def commit(self) -> None:
        self.git("add", "-A")
        self.git("commit", "--quiet", "-m", "pipeline outputs")

    def diff(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
        code = lock_diff.main(["--lock", str(self.root / "dvc.lock"), *args])
        captured = capsys.readouterr()
        return code, captured.out + captured.err


def npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


METRICS = {"accuracy": 0.9811111111111112, "gates": [{"name": "noise", "value": 0.9488888888}]}


def committed_metrics(project: Project) -> None:
    """``reports/metrics.json`` (:data:`METRICS`) as the committed output of a locked stage."""
    project.write_json("reports/metrics.json", METRICS)
    project.lock({"evaluate": ["reports/metrics.json"]})
    project.commit()
