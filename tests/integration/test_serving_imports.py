"""The serving runtime never imports sklearn, joblib, dvc, ART or matplotlib, nor the decision
query tool's DuckDB, scipy and tabulate (dev lock only: serving/decisions/catalog.py); a
worker never imports model_signing/sigstore (the signature check runs before the workers,
serving/lineage/signature.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

PROBE = """
import sys
from pathlib import Path
from litestar.testing import TestClient
import serving.__main__
from serving.app import create_app
from serving.settings import Settings

settings = Settings(lock_file_path=str(Path("dvc.lock").resolve()))
with TestClient(app=create_app(settings)) as client:
    assert client.get("/ready").status_code == 200
    assert client.post("/explain", json={"samples": [[1] * 64]}).status_code == 200
    assert client.get("/model").status_code == 200
training = {"sklearn", "joblib", "dvc", "art", "matplotlib", "model_signing", "sigstore"}
training |= {"duckdb", "scipy", "tabulate"}
forbidden = sorted(name for name in sys.modules if name.split(".")[0] in training)
print(",".join(forbidden))
"""


def test_serving_imports_no_training_stack(repo_root: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_the_decision_encoder_process_imports_msgspec_only(repo_root: Path) -> None:
    """Each guarded worker runs one encoder child (serving/decisions/encoder.py): Litestar, the
    model runtime, the metrics client or numpy in it would be paid for once more per worker
    (make bench's start-up and memory table counts the child with its worker)."""
    probe = (
        "import sys, serving.decisions.encoder\n"
        "heavy = {'litestar', 'onnxruntime', 'prometheus_client', 'anyio', 'redis', 'granian',"
        " 'numpy'}\n"
        "print(','.join(sorted({name.split('.')[0] for name in sys.modules} & heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
