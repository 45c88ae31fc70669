"""tools.lock_diff per file format, on small git repositories made here: JSON numbers, npz
arrays, ONNX initializers and graphs, joblib (never unpickled), Markdown documents, and what
counts as noise."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, external_data_helper, helper, numpy_helper

from tests.lock_project import METRICS, Project, committed_metrics, npz
from tools.numeric_diff import compare_numbers, noise_threshold

pytestmark = pytest.mark.unit


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    return Project(tmp_path / "repo")


def test_a_json_number_moved_by_1e_16_relative_is_named_and_called_noise(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    committed_metrics(project)
    old = METRICS["gates"][0]["value"]  # type: ignore[index]
    new = float(np.nextafter(old, 1.0))
    assert 0 < (new - old) / old < 2e-16
    project.write_json(
        "reports/metrics.json", {**METRICS, "gates": [{"name": "noise", "value": new}]}
    )
    project.lock({"evaluate": ["reports/metrics.json"]})
    code, out = project.diff(capsys)
    assert code == 1
    assert "out reports/metrics.json: md5 " in out
    assert "$.gates[0].value" in out
    assert "verdict: numeric noise only (max rel diff 1.17e-16, max abs diff 1.11e-16)" in out
    assert "substantive" not in out


def test_a_real_change_is_substantive(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    committed_metrics(project)
    project.write_json("reports/metrics.json", {**METRICS, "accuracy": 0.97})
    project.lock({"evaluate": ["reports/metrics.json"]})
    code, out = project.diff(capsys)
    assert code == 1
    assert (
        "verdict: substantive change: 1 number(s) beyond noise in numbers,"
        " largest rel diff 0.0113 at $.accuracy (0.9811111111111112 -> 0.97)"
    ) in out
    assert "numbers: 1 differ, 1 beyond noise; max abs diff 0.0111 at $.accuracy" in out


def test_a_structural_json_change_is_substantive_even_with_noise_only_numbers(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    committed_metrics(project)
    project.write_json("reports/metrics.json", {**METRICS, "ece": 0.03, "gates": []})
    project.lock({"evaluate": ["reports/metrics.json"]})
    code, out = project.diff(capsys)
    assert code == 1
    assert "verdict: substantive change: $.gates[0]: removed {" in out
    assert "$.ece: added 0.03" in out


def test_npz_arrays_are_compared_one_by_one(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    X = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    y = np.array([0, 1, 2])
    project.write("data/train.npz", npz(X=X, y=y, ids=np.arange(3)))
    project.lock({"prep": ["data/train.npz"]})
    project.commit()
    X2 = X.copy()
    X2[2, 1] += 0.5
    project.write("data/train.npz", npz(X=X2, y=y, ids=np.arange(4)))
    project.lock({"prep": ["data/train.npz"]})
    code, out = project.diff(capsys)
    assert code == 1
    assert "array 'X': 1 of 12 differ, 1 beyond noise; max abs diff 0.5 at [2, 1]" in out
    assert "array 'ids': (3,) int64 -> (4,) int64" in out
    assert "array 'y'" not in out  # unchanged
    assert "verdict: substantive change: array 'ids'" in out


def test_float32_npz_rounding_is_noise(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    X = np.linspace(0.1, 1.0, 10, dtype=np.float32)
    project.write("data/x.npz", npz(X=X))
    project.lock({"prep": ["data/x.npz"]})
    project.commit()
    project.write("data/x.npz", npz(X=np.nextafter(X, np.float32(2))))
    project.lock({"prep": ["data/x.npz"]})
    code, out = project.diff(capsys)
    assert code == 1
    threshold = noise_threshold(1e-9, np.float32)
    assert f"(float32 data: {threshold:.3g})" in out
    assert "verdict: numeric noise only (max rel diff 1.19e-07, max abs diff" in out
    assert "array 'X': 10 of 10 differ, 0 beyond noise" in out
    code, out = project.diff(capsys, "--rtol", "0")  # float32 rounding is still noise
    assert "verdict: numeric noise only" in out


def onnx_model(weights: np.ndarray, with_relu: bool = False) -> bytes:
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h" if with_relu else "y"])]
    if with_relu:
        nodes.append(helper.make_node("Relu", ["h"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
        [numpy_helper.from_array(weights, name="W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def test_onnx_initializers_are_compared_by_name(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    W = np.array([[0.5, -1.0], [2.0, 0.25], [1.5, -0.75]], dtype=np.float32)
    project.write("models/model.onnx", onnx_model(W))
    project.lock({"train": ["models/model.onnx"]})
    project.commit()
    W2 = W.copy()
    W2[1, 0] = 2.125
    project.write("models/model.onnx", onnx_model(W2))
    project.lock({"train": ["models/model.onnx"]})
    code, out = project.diff(capsys)
    assert code == 1
    assert "initializer 'W': 1 of 6 differ, 1 beyond noise; max abs diff 0.125 at [1, 0]" in out
    assert (
        "verdict: substantive change: 1 number(s) beyond noise in initializer 'W',"
        " largest rel diff 0.0588 at [1, 0] (2.0 -> 2.125)"
    ) in out
    assert "graph" not in out


def test_an_onnx_graph_change_is_reported(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    W = np.ones((3, 2), dtype=np.float32)
    project.write("models/model.onnx", onnx_model(W))
    project.lock({"train": ["models/model.onnx"]})
    project.commit()
    project.write("models/model.onnx", onnx_model(W, with_relu=True))
    project.lock({"train": ["models/model.onnx"]})
    code, out = project.diff(capsys)
    assert code == 1
    assert 'graph op types: {"MatMul": 1} -> {"MatMul": 1, "Relu": 1}' in out
    assert "verdict: substantive change: graph op types" in out


def test_onnx_external_data_is_never_read(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    def external(location: str) -> bytes:
        model = onnx.load_model_from_string(onnx_model(np.ones((3, 2), dtype=np.float32)))
        tensor = model.graph.initializer[0]
        external_data_helper.set_external_data(tensor, location=location)
        tensor.data_location = TensorProto.EXTERNAL
        tensor.ClearField("raw_data")
        return bytes(model.SerializeToString())

    project.write("models/model.onnx", external("weights.bin"))
    project.lock({"train": ["models/model.onnx"]})
    project.commit()
    project.write("models/model.onnx", external("weights2.bin"))
    project.lock({"train": ["models/model.onnx"]})
    code, out = project.diff(capsys)
    assert code == 1
    assert "verdict: substantive change: initializer 'W': external data, not compared" in out


def test_an_unreadable_output_does_not_hide_the_others(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = io.BytesIO()
    np.save(saved, np.arange(100.0))
    broken = io.BytesIO()
    with zipfile.ZipFile(broken, "w") as archive:  # a header numpy cannot parse
        archive.writestr("X.npy", saved.getvalue().replace(b"(100,)", b"(100,("))
    project.write("data/train.npz", npz(X=np.arange(100.0)))
    committed_metrics(project)
    project.lock({"prep": ["data/train.npz"], "evaluate": ["reports/metrics.json"]})
    project.commit()
    project.write("data/train.npz", broken.getvalue())
    project.write_json("reports/metrics.json", {**METRICS, "accuracy": 0.5})
    project.lock({"prep": ["data/train.npz"], "evaluate": ["reports/metrics.json"]})
    code, out = project.diff(capsys)
    assert code == 1
    assert "verdict: differs, could not compare: TokenError" in out
    assert "beyond noise in numbers, largest rel diff 0.49 at $.accuracy" in out


class _Touch:
    """Unpickling this creates the marker file: proof that a binary was never loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_a_joblib_file_is_not_compared_and_never_unpickled(
    project: Project, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    project.write("models/model.joblib", pickle.dumps(_Touch(marker)))
    project.lock({"train": ["models/model.joblib"]})
    project.commit()
    project.write("models/model.joblib", pickle.dumps([_Touch(marker)]))
    project.lock({"train": ["models/model.joblib"]})
    code, out = project.diff(capsys)
    assert code == 1
    assert "out models/model.joblib: md5" in out
    assert "verdict: differs, not compared (binary)" in out
    assert not marker.exists()
    pickle.loads((project.root / "models/model.joblib").read_bytes())  # noqa: S301
    assert marker.exists(), "the payload works: the tool really did not unpickle it"


def test_markdown_diff_is_limited_and_numbers_only_changes_are_measured(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    table = "| class | f1 |\n|---|---:|\n" + "".join(f"| {i} | 0.9{i}000 |\n" for i in range(10))
    prose = "".join(f"line {i}\n" for i in range(100))
    project.write("reports/per_class.md", table)
    project.write("docs/card.md", prose)
    project.lock({"evaluate": ["reports/per_class.md", "docs/card.md"]})
    project.commit()
    project.write("reports/per_class.md", table.replace("| 3 | 0.93000 |", "| 3 | 0.93001 |"))
    project.write("docs/card.md", "".join(f"changed {i}\n" for i in range(100)))
    project.lock({"evaluate": ["reports/per_class.md", "docs/card.md"]})
    code, out = project.diff(capsys)
    assert code == 1
    assert "numbers: 1 differ, 1 beyond noise; max abs diff 1e-05 at line 6, number 2" in out
    assert "verdict: substantive change: lines differ beyond their numbers and hashes" in out
    assert "| -| 3 | 0.93000 |" in out
    # 2 file lines, 1 hunk header, 100 removed and 100 added lines: 40 shown
    assert "| ... (163 more diff lines)" in out


def test_tiny_absolute_moves_near_zero_are_noise(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    # Measured between two machines: a permutation importance of 1.4e-9 moved by 4.5e-17.
    old = {"importances_mean": [0.0123, 1.3567011875048608e-09]}
    project.write_json("reports/feature_importance.json", old)
    project.lock({"evaluate": ["reports/feature_importance.json"]})
    project.commit()
    new = {"importances_mean": [0.0123, 1.3567011819537456e-09]}
    project.write_json("reports/feature_importance.json", new)
    project.lock({"evaluate": ["reports/feature_importance.json"]})
    code, out = project.diff(capsys)
    assert code == 1
    assert "verdict: numeric noise only (max rel diff 4.09e-09, max abs diff 5.55e-18)" in out
    code, out = project.diff(capsys, "--atol", "0")
    assert "verdict: substantive change: 1 number(s) beyond noise" in out


def test_a_document_whose_lines_differ_only_in_hashes_follows_other_outputs(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    card = "| file | md5 | size |\n|---|---|---|\n| `models/model.joblib` | `{}` | 319193 |\n"
    project.write("docs/model_card.md", card.format("8e64594e0b96fda9620aabda6d491fce"))
    project.lock({"audit-docs": ["docs/model_card.md"]})
    project.commit()
    project.write("docs/model_card.md", card.format("e9cad5bf3c2bd93b636f61886b64b3ac"))
    project.lock({"audit-docs": ["docs/model_card.md"]})
    code, out = project.diff(capsys)
    assert code == 1
    assert "verdict: only hashes changed (1 line): it follows other outputs" in out
    assert "files: 1 only hashes changed" in out
    project.write("docs/model_card.md", card.format("e9cad5bf3c2bd93b636f61886b64b3ac") + "x\n")
    project.lock({"audit-docs": ["docs/model_card.md"]})
    code, out = project.diff(capsys)
    assert "verdict: substantive change: lines differ beyond their numbers and hashes" in out


def test_noise_needs_a_small_relative_or_a_tiny_absolute_difference() -> None:
    name = ["a", "b", "c", "d"].__getitem__
    assert compare_numbers([np.nan, 1.0], [np.nan, 1.0], name, 1e-9) is None
    appeared = compare_numbers([0.0, 1.0], [1e-3, 1.0], name, 1e-9)
    assert appeared is not None
    assert appeared.largest_rel.relative == 1.0
    assert not appeared.noise
    residue = compare_numbers([0.0, 1.0], [1e-300, 1.0], name, 1e-9)  # below NOISE_ATOL
    assert residue is not None
    assert residue.noise
    nan = compare_numbers([1.0, 2.0, 3.0], [1.0, np.nan, 3.0], name, 1e-9)
    assert nan is not None
    assert nan.largest_rel.relative == np.inf
    assert nan.worst is not None
    assert nan.worst.at == "b"
    assert noise_threshold(1e-9) == 1e-9
    assert noise_threshold(1e-9, np.float64) == 1e-9
    assert noise_threshold(1e-9, np.float32) == 16 * float(np.finfo(np.float32).eps)
