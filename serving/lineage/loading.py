"""Loading a worker's model: verify the locked artifacts, build the sessions, or say why not.

Every served file is read once (:class:`~serving.lineage.FileSnapshot`); the signature
check, the md5 check against ``dvc.lock``, the registry lookup and the loading all use those
bytes. A refusal is recorded in the state (``/ready`` gives its reason code) and logged
with its details.
"""

from __future__ import annotations

import logging
import time
from importlib import metadata

import msgspec

from serving.inference.model import OnnxModel
from serving.lineage import (
    REFERENCE_STATS_JSON,
    FileSnapshot,
    LineageError,
    VerifiedBundle,
    load_verified_bundle,
    load_verified_file,
)
from serving.lineage.registry import RegistryInfo
from serving.lineage.registry_lookup import registry_for
from serving.lineage.signature import check_worker as check_signature
from serving.monitoring.drift import DriftMonitor, DriftSummary, parse_reference
from serving.monitoring.metrics import ServiceMetrics
from serving.schemas import (
    GRID,
    ArtifactInfo,
    GlobalImportance,
    ModelResponse,
    RegistryResponse,
    StageResponse,
)
from serving.settings import Settings
from serving.state import ServiceState

log = logging.getLogger("serving")
SERVING_PACKAGES = ("litestar", "msgspec", "numpy", "onnxruntime", "prometheus-client", "granian")
DRIFT_PUBLISH_SECONDS = 1.0
_ENCODER = msgspec.json.Encoder()


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
    state.predictor.attach(model, drift)
    state.bundle, state.failure = bundle, None
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
    if state.feedback is not None:
        state.metrics.feedback.serve(bundle.version)
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
