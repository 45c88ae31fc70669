"""The shared params loader: valid files decode, every bad one fails on one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from stages.lib.params import Params, ParamsError, load_params, parse_params, to_builtins
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit


def test_repository_params_file_is_valid() -> None:
    params = load_params(REPO_ROOT / "params.yaml")
    assert "mlp" in params.train.selection.candidates
    assert params.train.augment.enabled
    assert params.train.alignment == "centroid"
    assert len(params.train.augment.shift_directions) == 8
    assert params.evaluate.gates.clean_accuracy.rationale
    assert 0 < params.data.test_size < 1


def test_empty_file_gives_documented_defaults() -> None:
    assert parse_params("") == Params()


def test_exponent_floats_without_a_dot_are_floats() -> None:
    assert parse_params("train: {onnx_tolerance: 1e-5}").train.onnx_tolerance == 1e-5


def test_to_builtins_round_trips() -> None:
    params = parse_params("seed: 7\ntrain: {selection: {candidates: [svc, mlp]}}\n")
    data = to_builtins(params)
    assert data["seed"] == 7
    assert parse_params(__import__("json").dumps(data)) == params


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("data: {test_size: 1.5}", "data.test_size: Expected `float` < 1.0, got 1.5"),
        ("data: {test_size: 0}", "data.test_size: Expected `float` > 0.0, got 0"),
        ("data: {foo: 1}", "data.foo: unknown key"),
        ("bogus: 1", "bogus: unknown key"),
        (
            "train: {selection: {candidates: [mlp, xgboost]}}",
            "train.selection.candidates.1: Invalid enum value 'xgboost'",
        ),
        ("train: {model: svc}", "train.model: unknown key"),
        (
            "train: {selection: {candidates: [mlp, mlp]}}",
            "train.selection: candidates must be distinct, got ['mlp', 'mlp']",
        ),
        (
            "train: {augment: {shift_pixels: [4]}}",
            "train.augment.shift_pixels.0: Expected `int` <= 3",
        ),
        ("seed: '42'", "seed: Expected `int`, got `str`"),
        ("seed: -1", "seed: Expected `int` >= 0, got -1"),
        ("train: {svc: {C: -1}}", "train.svc.C: Expected `float` > 0.0, got -1"),
        ("train: {random_forest: {max_depth: 0}}", "train.random_forest.max_depth"),
        (
            "evaluate: {gates: {clean_accuracy: {threshold: 1.2, rationale: Clients need it.}}}",
            "evaluate.gates.clean_accuracy.threshold: Expected `float` <= 1.0, got 1.2",
        ),
        (
            "evaluate: {gates: {clean_accuracy: {threshold: 0.9}}}",
            "evaluate.gates.clean_accuracy: Object missing required field `rationale`",
        ),
        ("evaluate: {min_accuracy: 0.9}", "evaluate.min_accuracy: unknown key"),
        (
            "robustness: {gates: {noise: {sigma: 3.0, threshold: 0.9, rationale: Noisy scans.}}}",
            "robustness: gates.noise.sigma must be one of noise_sigmas",
        ),
        ("data: {histogram_bins: 1}", "data.histogram_bins: Expected `int` >= 2, got 1"),
        ("train: {alignment: bbox}", "train.alignment: Invalid enum value 'bbox'"),
        (
            "train: {augment: {shift_directions: [up, north_east]}}",
            "train.augment.shift_directions.1: Invalid enum value 'north_east'",
        ),
        (
            "robustness: {gates: {shift_ink_kept: "
            "{pixels: 3, threshold: 0.9, rationale: A whole digit.}}}",
            "robustness: gates.shift_ink_kept.pixels must be one of shift_pixels [0, 1, 2], got 3",
        ),
        (
            "robustness: {gates: {shift_silent_error: {threshold: 0.05}}}",
            "robustness.gates.shift_silent_error: Object missing required field `rationale`",
        ),
        ("ood: {ink_cut_blank_rows: 7}", "ood.ink_cut_blank_rows: Expected `int` <= 6, got 7"),
        ("train: {logistic_regression: {max_iter: 2.5}}", "train.logistic_regression.max_iter"),
        ("data: [1, 2]", "data: Expected `object`, got `array`"),
        ("docs: {approver: 3}", "docs.approver: Expected `str`, got `int`"),
        ("docs: {reviewer: x}", "docs.reviewer: unknown key"),
        ("docs: {owner: ''}", "docs: owner must name who maintains the documents, got ''"),
        ("docs: {owner: 'a | b'}", "docs: owner must be one line without '|'"),
        ("docs: {approver: ' Jane'}", "docs: approver must be one line without '|' or outer"),
        (
            "docs: {approver: Jane Doe}",
            "docs: approver needs approved_on and approved_inputs too, got approver 'Jane Doe'",
        ),
        (
            "docs: {approver: Jane Doe, approved_on: '2025-06-30'}",
            "docs: approver needs approved_inputs too",
        ),
        ("docs: {approved_on: '2025-06-30'}", "docs: approved_on needs an approver (or clear it)"),
        (
            "docs: {approver: J, approved_on: '2025-06-30', approved_inputs: 0123456789ab}",
            "docs: approved_inputs must be the input fingerprint shown in the documents "
            "(sha256: and 12 hex digits), got '0123456789ab'",
        ),
        (
            "docs: {approved_on: '2025-06-31'}",
            "docs: approved_on must be a date written YYYY-MM-DD, got '2025-06-31'",
        ),
        (
            "docs: {approved_on: '20250630'}",
            "docs: approved_on must be a date written YYYY-MM-DD, got '20250630'",
        ),
        # DVC cannot track a YAML date ("Unsupported value of type 'date'"): it must be quoted.
        ("docs: {approved_on: 2025-06-30}", "docs.approved_on: Expected `str`, got `date`"),
    ],
)
def test_invalid_value_names_the_key(text: str, expected: str) -> None:
    with pytest.raises(ParamsError) as excinfo:
        parse_params(text)
    message = str(excinfo.value)
    assert expected in message
    assert "\n" not in message
    assert message.startswith("params.yaml: ")


def test_malformed_yaml_reports_line_and_column() -> None:
    with pytest.raises(ParamsError, match=r"not valid YAML \(line 3, column 1\)"):
        parse_params("seed: 1\ndata: {test_size: [\n")


def test_non_mapping_top_level_is_rejected() -> None:
    with pytest.raises(ParamsError, match="top level must be a mapping, got list"):
        parse_params("- 1\n- 2\n")


def test_missing_file_is_a_params_error(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "absent.yaml")


def test_undecodable_file_is_a_params_error(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_bytes(b"seed: \xff\xfe\n")
    with pytest.raises(ParamsError, match="cannot read params file"):
        load_params(path)


def test_an_impossible_unquoted_date_is_a_params_error() -> None:
    with pytest.raises(ParamsError, match=r"not valid YAML: day is out of range for month"):
        parse_params("docs: {approved_on: 2025-02-31}\n")


def test_a_complete_approval_decodes() -> None:
    docs = parse_params(
        "docs: {approver: Jane Doe, approved_on: '2025-06-30', "
        "approved_inputs: sha256:0123456789ab}"
    ).docs
    assert (docs.approver, docs.approved_on, docs.approved_inputs) == (
        "Jane Doe",
        "2025-06-30",
        "sha256:0123456789ab",
    )
    assert docs.owner == "ML platform engineer"  # the default of an unset owner
    assert Params().docs.approver == ""  # no approval unless someone records one
