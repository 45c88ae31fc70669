"""Per-worker service state: the verified model, its loading, readiness and the not-ready error."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, cast

import msgspec
import numpy as np
import numpy.typing as npt
from litestar import Litestar

from serving.batching import MicroBatcher, Prediction
from serving.drift import DriftMonitor, DriftSummary, parse_reference
from serving.inputs import ClientError
from serving.lineage import (
    REFERENCE_STATS_JSON,
    FileSnapshot,
    LineageError,
    VerifiedBundle,
    load_verified_bundle,
    load_verified_file,
)
from serving.metrics import ServiceMetrics
from serving.model import OnnxModel
from serving.registry import RegistryInfo
from serving.registry_lookup import registry_for
from serving.schemas import (
    GRID,
    ArtifactInfo,
    GlobalImportance,
    ModelResponse,
    RegistryResponse,
    StageResponse,
)
from serving.settings import Settings
from serving.signature import check_worker as check_signature

log = logging.getLogger("serving")
SERVING_PACKAGES = ("litestar", "msgspec", "numpy", "onnxruntime", "prometheus-client", "granian")
DRIFT_PUBLISH_SECONDS = 1.0
_ENCODER = msgspec.json.Encoder()
# /ready's words for a credential problem (ServiceState.credentials_problem): no details.
CREDENTIAL_PROBLEMS = {
    "keys_file_unreadable": "the API keys file cannot be re-read (revocations would not "
    "apply); the service log says why",
    "jwks_stale": "the JWKS has not been refreshed within DIGITS_JWT_JWKS_MAX_AGE; tokens "
    "are refused and the service log says why",
}


@dataclass
class ServiceState:
    """Per-worker state: the verified model or the reason there is none."""

    settings: Settings
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    model: OnnxModel | None = None
    bundle: VerifiedBundle | None = None
    failure: LineageError | None = None
    model_body: bytes = b""
    # The GTO registry entry of the verified model (found once, at load): /model, records.
    registry: RegistryInfo | None = None
    importance: GlobalImportance | None = None
    drift: DriftMonitor | None = None
    worker_process: bool = False
    # Why credentials cannot be trusted now (set by the authentication step; /ready asks).
    credential_problem: Callable[[], str | None] | None = None
    # Called at shutdown, after the last request (e.g. the decision writer's final flush).
    closers: list[Callable[[], None]] = field(default_factory=list)
    batcher: MicroBatcher = field(init=False)

    def __post_init__(self) -> None:
        self.batcher = MicroBatcher(self._infer, self.observe_batch, self.metrics.observe_rows)

    def _infer(self, X: npt.NDArray[np.float32]) -> Prediction:
        if self.model is None:  # pragma: no cover - callers check readiness
            raise self.not_ready()
        return self.model.predict_rows(X)

    def predict(self, X: npt.NDArray[np.float32]) -> asyncio.Future[Prediction]:
        """Labels, probabilities and OOD scores of validated samples (one batched model call)."""
        return self.batcher.submit(X)

    def ood_flags(self, scores: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
        """Which rows are out of distribution; with ``DIGITS_OOD_POLICY=reject``, the 422."""
        if self.model is None:  # pragma: no cover - callers check readiness
            raise self.not_ready()
        flags = self.model.ood.flags(scores)
        if self.settings.ood_policy == "reject" and bool(flags.any()):
            rows = np.flatnonzero(flags).tolist()
            shown = ", ".join(str(row) for row in rows[:10]) + (", ..." if len(rows) > 10 else "")
            raise ClientError(
                422,
                "out_of_distribution",
                f"{len(rows)} of {len(flags)} rows do not look like digits (ood_score > "
                f"{self.model.ood.flag_above:g}): rows {shown}; DIGITS_OOD_POLICY=reject",
            )
        return flags

    def ready_bundle(self) -> VerifiedBundle:
        """The verified bundle, or the 503 not-ready error."""
        if self.bundle is None:
            raise self.not_ready()
        return self.bundle

    def not_ready(self) -> ClientError:
        """The one not-ready error (503): why there is no model, or that it is loading."""
        return ClientError(503, "model_not_ready", f"model not ready: {self.public_reason()}")

    def public_reason(self) -> str:
        """Why there is no model, in words fit for any caller: the reason code only.

        The failure's own message names absolute paths and md5s; that goes to the log
        (:func:`load_model`), not to unauthenticated callers of ``/ready``.
        """
        failure = self.failure
        if failure is None:
            return "model is loading"
        return f"the locked artifacts were refused ({failure.reason}); the service log says why"

    def accept_batch(self, X: Any) -> None:
        """Record a validated inference batch: rows histogram and the drift window."""
        self.metrics.rows.observe(X.shape[0])
        self.observe_inputs(X)

    def observe_batch(
        self, X: Any, labels: npt.NDArray[np.int64], ood_scores: npt.NDArray[np.float32]
    ) -> None:
        """Record one model call: the drift window, predicted-class and flagged-row counters."""
        self.observe_inputs(X)
        self.metrics.observe_predictions(labels)
        if self.model is not None:
            self.metrics.observe_ood(self.model.ood.flags(ood_scores))

    def not_ready_reason(self) -> str | None:
        """None when this worker is ready to serve; else the reason code /ready gives."""
        problem = self.credentials_problem()
        if self.bundle is None:
            return self.failure.reason if self.failure else "loading"
        return problem

    def credentials_problem(self) -> str | None:
        """Why the credentials cannot be trusted now (a reason code), or None; kept in the
        ``auth_credentials_healthy`` gauge."""
        problem = None if self.credential_problem is None else self.credential_problem()
        self.metrics.access.credentials_healthy.set(0 if problem else 1)
        return problem

    def before_scrape(self) -> None:
        """Bring the drift and credential gauges up to date (before a ``/metrics`` render)."""
        if self.drift is not None:
            self.drift.publish()
        self.credentials_problem()

    def observe_inputs(self, X: Any) -> None:
        """Feed a validated ``[n, 64]`` batch to the drift window."""
        if self.drift is not None:
            self.drift.observe(X)


def service_of(app: Litestar) -> ServiceState:
    """The service state a Litestar app was composed with (``app.state.service``)."""
    return cast(ServiceState, app.state.service)


def _library_versions() -> dict[str, str]:
    versions = {}
    for package in SERVING_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _model_response(bundle: VerifiedBundle, registry: RegistryInfo | None) -> ModelResponse:
    card = bundle.card
    evaluate = bundle.evaluate_stage
    raw = bundle.raw_data
    return ModelResponse(
        name=card.name,
        version=bundle.version,
        model_type=card.model_type,
        classes=card.classes,
        artifacts={
            key: ArtifactInfo(path=key, md5=artifact.md5, size=artifact.size)
            for key, artifact in bundle.artifacts.items()
        },
        stage=StageResponse(**msgspec.structs.asdict(bundle.train_stage)),
        evaluate_stage=None
        if evaluate is None
        else StageResponse(**msgspec.structs.asdict(evaluate)),
        params=card.params,
        metrics=bundle.metrics,
        training_library_versions=card.library_versions,
        serving_library_versions=_library_versions(),
        raw_data=None
        if raw is None
        else ArtifactInfo(path=raw.lock_path, md5=raw.md5, size=raw.size),
        registry=None
        if registry is None
        else RegistryResponse(
            artifact=registry.artifact,
            version=registry.version,
            stage=registry.stage,
            ref=registry.ref,
            commit=registry.commit,
        ),
    )


def load_model(state: ServiceState) -> None:
    """Verify the locked artifacts, build and warm the session; record why on failure."""
    settings = state.settings
    started = time.perf_counter()
    try:
        # Every served file is read once, here; the signature check, the md5 check against
        # dvc.lock and the loading below all use these bytes, never the files again.
        snapshot = check_signature(settings)
        bundle = load_verified_bundle(snapshot)
        check_expected_version(settings, bundle.version)
        served = {path: artifact.md5 for path, artifact in bundle.artifacts.items()}
        registry, registry_note = registry_for(settings, served, snapshot)
        model = OnnxModel(bundle)
        model.warm_up()
        drift = _drift_monitor(settings, state.metrics, snapshot)
    except LineageError as exc:
        state.failure = exc
        state.metrics.model_ready.set(0)
        log.error(
            "refusing to serve: %s",
            exc,
            extra={"reason": exc.reason, "lock_file": str(settings.lock_file)},
        )
        return
    values = bundle.importance.importances_mean
    state.importance = GlobalImportance(
        method=bundle.importance.method,
        scoring=bundle.importance.scoring,
        values=values,
        grid=[values[row * GRID : (row + 1) * GRID] for row in range(GRID)],
    )
    state.model_body = _ENCODER.encode(_model_response(bundle, registry))
    state.bundle, state.model, state.failure, state.drift = bundle, model, None, drift
    state.registry = registry
    if registry_note:
        log.warning(registry_note)
    state.metrics.model_info.labels(
        bundle.version,
        bundle.card.model_type,
        registry.version if registry else "",
        registry.stage or "" if registry else "",
    ).set(1)
    state.metrics.model_ready.set(1)
    log.info(
        "model ready",
        extra={
            "model_version": bundle.version,
            "model_type": bundle.card.model_type,
            "registry_version": registry.version if registry else None,
            "registry_stage": registry.stage if registry else None,
            "load_seconds": round(time.perf_counter() - started, 4),
        },
    )


def check_expected_version(settings: Settings, version: str) -> None:
    """``DIGITS_EXPECTED_MODEL_VERSION``: refuse any other model version, signed or not.

    A signature says who made a model, not which release is current: an older signed
    release still verifies. Pinning the version refuses it (``version_mismatch``)."""
    expected = settings.expected_model_version
    if expected is not None and version != expected:
        raise LineageError(
            "version_mismatch",
            f"the served model is version {version}, DIGITS_EXPECTED_MODEL_VERSION is {expected}",
        )


def _drift_monitor(
    settings: Settings, metrics: ServiceMetrics, snapshot: FileSnapshot
) -> DriftMonitor:
    """The drift window over the dvc.lock-verified training reference statistics."""
    _, data = load_verified_file(snapshot, REFERENCE_STATS_JSON)
    reference = parse_reference(data, snapshot.path(REFERENCE_STATS_JSON))
    monitor = DriftMonitor(
        reference, settings.drift_window, settings.drift_min_rows, settings.drift_psi_threshold
    )

    def publish(summary: DriftSummary) -> None:
        metrics.drift.publish(**msgspec.structs.asdict(summary))

    monitor.attach(publish, DRIFT_PUBLISH_SECONDS)
    return monitor
