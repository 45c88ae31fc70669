"""serving.inference.model: linear contributions are exact; occlusion is the general fallback."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import numpy as np
import pytest

from serving.inference.model import OnnxModel
from serving.lineage import FileSnapshot, ModelCard, VerifiedBundle, load_verified_bundle
from stages.lib.artifacts import json_bytes, read_npz
from stages.lib.classifier import export_onnx, fit_model
from stages.lib.params import Params
from stages.train import measure_parity, model_metadata

pytestmark = pytest.mark.model
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundle() -> VerifiedBundle:
    return load_verified_bundle(FileSnapshot.read(REPO_ROOT / "dvc.lock", REPO_ROOT / "models"))


@pytest.fixture(scope="module")
def samples() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 17, size=(25, 64)).astype(np.float32)


@pytest.fixture(scope="module")
def linear_bundle(bundle: VerifiedBundle) -> VerifiedBundle:
    """The served bundle with a logistic regression, exported and described as train does
    (without the alignment: behind it no model is linear in the input pixels)."""
    train = read_npz(REPO_ROOT / "data" / "prepared" / "train.npz", ("X", "y"))
    params = msgspec.structs.replace(
        Params(), train=msgspec.structs.replace(Params().train, alignment="none")
    )
    model = fit_model("logistic_regression", params.train, params.seed, train["X"], train["y"])
    onnx_bytes = export_onnx(model)
    parity = measure_parity(model, onnx_bytes, train["X"], params.train.onnx_tolerance)
    metadata = model_metadata(model, "logistic_regression", params, parity, len(train["y"]))
    written = json.loads(json_bytes(metadata))  # as models/model.json carries it
    card = msgspec.convert(written, ModelCard, strict=False)
    return msgspec.structs.replace(bundle, onnx_bytes=onnx_bytes, card=card)


def test_served_model_explains_by_its_kind(bundle: VerifiedBundle) -> None:
    model = OnnxModel(bundle)
    linear = bundle.card.linear_explanation is not None
    assert model.explanation_method == ("linear_exact" if linear else "occlusion")


def test_linear_contributions_plus_intercept_reproduce_the_logits(
    linear_bundle: VerifiedBundle, samples: np.ndarray
) -> None:
    model = OnnxModel(linear_bundle)
    assert model.explanation_method == "linear_exact"
    assert model.linear is not None
    labels, probabilities = model.predict(samples)
    contributions, base = model.explain(samples, labels)
    assert contributions.shape == (25, 64)
    # All-class logits from the same formula; softmax must give the ONNX probabilities.
    linear = model.linear
    logits = ((samples - linear.mean) / linear.scale) @ linear.coef.T + linear.intercept
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(
        shifted / shifted.sum(axis=1, keepdims=True), probabilities, atol=1e-5
    )
    predicted_logit = logits[np.arange(25), labels]
    np.testing.assert_allclose(contributions.sum(axis=1) + base, predicted_logit, rtol=1e-5)
    np.testing.assert_allclose(base, linear.intercept[labels], rtol=1e-6)


def test_occlusion_fallback(bundle: VerifiedBundle, samples: np.ndarray) -> None:
    model = OnnxModel(bundle)
    model.linear = None
    assert model.explanation_method == "occlusion"
    labels, probabilities = model.predict(samples)
    contributions, base = model.explain(samples, labels)
    assert contributions.shape == (25, 64)
    np.testing.assert_allclose(base, probabilities[np.arange(25), labels], atol=1e-6)
    # Occluding a pixel that is already 0 changes nothing.
    assert np.all(contributions[samples == 0] == 0)
    # Spot-check one pixel against a direct ONNX call.
    occluded = samples[:1].copy()
    occluded[0, 20] = 0
    _, direct = model.predict(occluded)
    expected = probabilities[0, labels[0]] - direct[0, labels[0]]
    assert contributions[0, 20] == pytest.approx(expected, abs=1e-6)
