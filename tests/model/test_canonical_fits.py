"""Fitting stages give the same hashed outputs when their float64 inputs move in the last bit.

Another CPU's BLAS kernel changes the last bits of every float64 sum; here the same size of
change is made to the stage's *inputs* (every non-zero value of the prepared splits moved
one ulp), and each fitting stage is run as ``dvc repro`` runs it (its ``main()`` with
the paths of dvc.yaml), twice: the outputs that dvc.lock hashes must be byte-identical.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from stages import ood, train
from stages.lib.artifacts import read_npz, write_npz
from tests.artifacts import require_artifact
from tests.conftest import REPO_ROOT
from tests.ulps import nudge

PREPARED = REPO_ROOT / "data" / "prepared"
SPLITS = ("train.npz", "test.npz")


def md5s(directory: Path) -> dict[str, str]:
    """The md5 of every file a stage wrote to ``directory`` (what dvc.lock records)."""
    return {
        path.name: hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
        for path in sorted(directory.iterdir())
    }


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The prepared splits as they are, and with every non-zero float moved one ulp up."""
    exact = tmp_path_factory.mktemp("exact")
    moved = tmp_path_factory.mktemp("moved")
    for name in SPLITS:
        shutil.copyfile(require_artifact(PREPARED / name), exact / name)
        arrays = read_npz(PREPARED / name, ("X", "y", "row_ids"))
        X = arrays["X"]
        # Raw bytes, not write_npz (which canonicalises floats): the stage must absorb it.
        moved_X = np.where(X != 0.0, nudge(X, 1), X)
        assert np.count_nonzero(moved_X != X) > 0.3 * X.size
        np.savez(moved / name, X=moved_X, y=arrays["y"], row_ids=arrays["row_ids"])
    return {"exact": exact, "moved": moved}


def test_the_moved_inputs_differ_from_the_exact_ones(inputs: dict[str, Path]) -> None:
    exact = read_npz(inputs["exact"] / "train.npz", ("X",))["X"]
    moved = read_npz(inputs["moved"] / "train.npz", ("X",))["X"]
    assert exact.tobytes() != moved.tobytes()
    assert np.max(np.abs(moved - exact) / np.maximum(exact, 1.0)) <= 2.0**-52


def test_ood_stage_outputs_do_not_move(inputs: dict[str, Path], tmp_path: Path) -> None:
    outputs = {}
    for name, data_dir in inputs.items():
        out = tmp_path / name
        argv = ["--params", str(REPO_ROOT / "params.yaml"), "--data-dir", str(data_dir)]
        assert ood.main([*argv, "--out-dir", str(out)]) == 0
        outputs[name] = md5s(out)
    assert set(outputs["exact"]) == {"ood.onnx", "ood.json"}
    assert outputs["moved"] == outputs["exact"]


def test_train_stage_outputs_do_not_move(inputs: dict[str, Path], tmp_path: Path) -> None:
    selection = require_artifact(REPO_ROOT / "reports" / "model_selection.json")
    outputs = {}
    for name, data_dir in inputs.items():
        out = tmp_path / name
        argv = ["--params", str(REPO_ROOT / "params.yaml"), "--data-dir", str(data_dir)]
        argv += ["--selection", str(selection), "--out-dir", str(out)]
        assert train.main(argv) == 0
        outputs[name] = md5s(out)
    assert set(outputs["exact"]) == {"model.joblib", "model.onnx", "model.json"}
    assert outputs["moved"] == outputs["exact"]


def test_the_stage_writes_canonical_inputs_back(tmp_path: Path) -> None:
    """data-prep's writer stores the splits canonically: a moved copy writes the same bytes."""
    arrays = read_npz(require_artifact(PREPARED / "train.npz"), ("X", "y", "row_ids"))
    write_npz(tmp_path / "exact.npz", arrays)
    write_npz(tmp_path / "moved.npz", {**arrays, "X": nudge(arrays["X"], 2)})
    assert (tmp_path / "exact.npz").read_bytes() == (tmp_path / "moved.npz").read_bytes()
    assert (tmp_path / "exact.npz").read_bytes() == (PREPARED / "train.npz").read_bytes()
