"""Baseline for the benchmark only: the original brief's stack.

FastAPI + pydantic validation + scikit-learn ``predict_proba`` on the joblib
model, served by uvicorn. Same request shape and limits as the service.
Run: ``uvicorn bench.baseline_fastapi:app`` (DIGITS_PROJECT_DIR selects the project).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Annotated

import joblib
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from threadpoolctl import threadpool_limits

PROJECT_DIR = Path(os.environ.get("DIGITS_PROJECT_DIR", Path(__file__).resolve().parents[1]))
MODEL = joblib.load(PROJECT_DIR / "models" / "model.joblib")
# One BLAS thread, like the service's single-threaded ONNX Runtime session: set after the
# model's libraries are loaded, not through OPENBLAS_* variables (the project never sets them).
threadpool_limits(limits=1)
VERSION = hashlib.md5(
    (PROJECT_DIR / "models" / "model.onnx").read_bytes(), usedforsecurity=False
).hexdigest()[:12]

Pixel = Annotated[float, Field(ge=0.0, le=16.0, allow_inf_nan=False)]


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    samples: Annotated[
        list[Annotated[list[Pixel], Field(min_length=64, max_length=64)]],
        Field(min_length=1, max_length=1000),
    ]


class PredictResponse(BaseModel):
    model_version: str
    labels: list[int]
    probabilities: list[list[float]]


app = FastAPI()


@app.get("/ready")
def ready() -> dict[str, str]:
    return {"status": "ready", "model_version": VERSION}


@app.post("/predict")
def predict(request: PredictRequest) -> PredictResponse:
    X = np.asarray(request.samples, dtype=np.float64)
    probabilities = MODEL.predict_proba(X)
    labels = MODEL.classes_[probabilities.argmax(axis=1)]
    return PredictResponse(
        model_version=VERSION, labels=labels.tolist(), probabilities=probabilities.tolist()
    )
