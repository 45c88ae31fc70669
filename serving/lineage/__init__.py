"""Find the artifacts that ``dvc.lock`` pins, verify their md5 and parse them.

Nothing here imports dvc: the lock file is plain YAML and DVC records the md5
of a file's bytes, which is what :func:`file_md5` computes.

The service reads every file it serves exactly once (:class:`FileSnapshot`): the signature
check, the md5 check against ``dvc.lock`` and the parsing all use those bytes, so a file
swapped on disk after it was read is never what gets checked or loaded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from serving.lineage import lockfile

MODEL_ONNX = "models/model.onnx"
MODEL_JSON = "models/model.json"
OOD_ONNX = "models/ood.onnx"
OOD_JSON = "models/ood.json"
METRICS_JSON = "reports/metrics.json"
IMPORTANCE_JSON = "reports/feature_importance.json"
REFERENCE_STATS_JSON = "data/prepared/reference_stats.json"
TRAIN_NPZ = "data/prepared/train.npz"
REQUIRED_ARTIFACTS = (MODEL_ONNX, MODEL_JSON, OOD_ONNX, OOD_JSON, METRICS_JSON, IMPORTANCE_JSON)
VERSION_LENGTH = 12
# The lock's name in a snapshot, whatever DIGITS_LOCK_FILE calls it.
LOCK_PATH = "dvc.lock"
# The GTO registry entry (serving/lineage/registry.py): beside the model when an image was built
# from a registry reference, absent in a working copy.
REGISTRY_JSON = "models/registry.json"
MODEL_FILES = (MODEL_ONNX, MODEL_JSON, OOD_ONNX, OOD_JSON)
PROJECT_FILES = (METRICS_JSON, IMPORTANCE_JSON, REFERENCE_STATS_JSON)
OPTIONAL_FILES = (REGISTRY_JSON,)


class LineageError(Exception):
    """The service must not serve: ``reason`` is a short code, ``str(self)`` says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class OnnxInfo(msgspec.Struct, frozen=True):
    input: str
    outputs: list[str]


class LinearExplanation(msgspec.Struct, frozen=True):
    coef: list[list[float]]
    intercept: list[float]
    scaler_mean: list[float]
    scaler_scale: list[float]


class ModelCard(msgspec.Struct, frozen=True):
    """The fields of ``models/model.json`` the service uses (others are ignored)."""

    name: str
    model_type: str
    classes: list[int]
    n_features: int
    onnx: OnnxInfo
    params: dict[str, Any] = {}
    library_versions: dict[str, str] = {}
    image_shape: list[int] = msgspec.field(default_factory=lambda: [8, 8])
    linear_explanation: LinearExplanation | None = None


class OodOnnxInfo(msgspec.Struct, frozen=True):
    input: str
    output: str


class OodCard(msgspec.Struct, frozen=True):
    """The fields of ``models/ood.json`` the service uses (others are ignored)."""

    method: str
    onnx: OodOnnxInfo
    flag_above: float
    n_components: int
    target_false_positive_rate: float


class FeatureImportance(msgspec.Struct, frozen=True):
    """``reports/feature_importance.json``: global importances computed by the pipeline."""

    importances_mean: list[float]
    method: str
    importances_std: list[float] | None = None
    scoring: str | None = None


class LockedArtifact(msgspec.Struct, frozen=True):
    """One verified file: its lock path, where it was read from, and its md5."""

    lock_path: str
    file_path: str
    md5: str
    size: int


class StageInfo(msgspec.Struct, frozen=True):
    name: str
    cmd: str
    params: dict[str, Any]


class VerifiedBundle(msgspec.Struct, frozen=True):
    """Everything the service serves, checked against ``dvc.lock``."""

    version: str
    onnx_bytes: bytes
    card: ModelCard
    ood_bytes: bytes
    ood_card: OodCard
    metrics: dict[str, Any]
    importance: FeatureImportance
    artifacts: dict[str, LockedArtifact]
    train_stage: StageInfo
    evaluate_stage: StageInfo | None
    raw_data: LockedArtifact | None = None


def served_locations(lock_file: Path, model_dir: Path) -> dict[str, Path]:
    """Where each served file is read from, by its lock path: the lock, the model directory
    (model, OOD detector, registry entry), the project directory (reports, reference)."""
    locations = {LOCK_PATH: lock_file}
    for rel in (*MODEL_FILES, REGISTRY_JSON):
        locations[rel] = model_dir / Path(rel).name
    for rel in PROJECT_FILES:
        locations[rel] = lock_file.parent / rel
    return locations


@dataclass(frozen=True)
class FileSnapshot:
    """The served files, each opened and read once: lock path -> bytes.

    Every check (signature, md5 against the lock) and every parse uses these bytes; nothing
    opens a served file a second time. A file that could not be read is remembered with
    its error, raised (as :class:`LineageError`) when the file is asked for.
    """

    locations: Mapping[str, Path]
    contents: Mapping[str, bytes]
    errors: Mapping[str, OSError]

    @classmethod
    def read(cls, lock_file: Path, model_dir: Path) -> FileSnapshot:
        """Read every served file (:func:`served_locations`) once."""
        locations = served_locations(lock_file, model_dir)
        contents: dict[str, bytes] = {}
        errors: dict[str, OSError] = {}
        for rel, path in locations.items():
            try:
                with path.open("rb") as handle:
                    contents[rel] = handle.read()
            except OSError as exc:
                errors[rel] = exc
        return cls(locations, contents, errors)

    def path(self, rel: str) -> Path:
        return self.locations[rel]

    def get(self, rel: str) -> bytes | None:
        """An optional file's bytes, ``None`` when it does not exist."""
        error = self.errors.get(rel)
        if isinstance(error, FileNotFoundError):
            return None
        return self.data(rel)

    def data(self, rel: str) -> bytes:
        """A required file's bytes, else ``lock_missing`` / ``artifact_missing`` (or
        ``..._unreadable``)."""
        if rel in self.contents:
            return self.contents[rel]
        path, error = self.locations[rel], self.errors[rel]
        kind = "lock" if rel == LOCK_PATH else "artifact"
        if isinstance(error, FileNotFoundError):
            what = "lock file not found" if rel == LOCK_PATH else "pinned by dvc.lock but missing"
            raise LineageError(f"{kind}_missing", f"{path}: {what}") from None
        raise LineageError(f"{kind}_unreadable", f"{path}: cannot read: {error}") from None


def file_md5(path: Path) -> str:
    """The md5 of a file's bytes, as DVC records it for a single file."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_lock(lock_file: Path) -> dict[str, Any]:
    """Parse ``dvc.lock`` into a dict, or raise :class:`LineageError`."""
    try:
        data = lock_file.read_bytes()
    except FileNotFoundError:
        raise LineageError("lock_missing", f"{lock_file}: lock file not found") from None
    except OSError as exc:
        raise LineageError("lock_unreadable", f"{lock_file}: cannot read: {exc}") from None
    return parse_lock(data, lock_file)


def parse_lock(data: bytes, lock_file: Path) -> dict[str, Any]:
    """Parse the bytes of ``dvc.lock`` (read from ``lock_file``), or raise LineageError."""
    try:
        return lockfile.parse_lock(data)
    except lockfile.LockFormatError as exc:
        raise LineageError("lock_invalid", f"{lock_file}: {exc}") from None


def find_out(lock: dict[str, Any], lock_path: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The stage name, stage entry and ``outs`` entry that record ``lock_path``."""
    found = lockfile.find_out(lock, lock_path)
    if found is None:
        raise LineageError("lock_entry_missing", f"dvc.lock has no outs entry for {lock_path}")
    return found


def _stage_info(name: str, stage: dict[str, Any]) -> StageInfo:
    params = stage.get("params") or {}
    return StageInfo(name=name, cmd=" ".join(str(stage.get("cmd", "")).split()), params=params)


def verify_artifact(
    lock: dict[str, Any], lock_path: str, snapshot: FileSnapshot
) -> tuple[LockedArtifact, bytes]:
    """The snapshot's bytes of ``lock_path``, checked against the md5 the lock records."""
    _, _, out = find_out(lock, lock_path)
    expected = out.get("md5")
    if not isinstance(expected, str) or len(expected) != 32:
        raise LineageError("lock_entry_missing", f"dvc.lock records no md5 for {lock_path}")
    data = snapshot.data(lock_path)
    file_path = snapshot.path(lock_path)
    actual = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if actual != expected:
        raise LineageError(
            "hash_mismatch",
            f"{file_path}: md5 {actual} does not match dvc.lock ({lock_path}: {expected})",
        )
    artifact = LockedArtifact(lock_path, str(file_path), md5=actual, size=len(data))
    return artifact, data


def raw_data_entry(lock: dict[str, Any]) -> LockedArtifact | None:
    """The raw dataset: the dependency of the stage that writes the prepared training data
    whose path is that stage's ``data.source`` param, with the md5 the lock records."""
    try:
        _, stage, _ = find_out(lock, TRAIN_NPZ)
    except LineageError:
        return None
    source = ((stage.get("params") or {}).get("params.yaml") or {}).get("data.source")
    for dep in stage.get("deps") or []:
        if isinstance(dep, dict) and dep.get("path") == source and isinstance(dep.get("md5"), str):
            return LockedArtifact(
                lock_path=str(source),
                file_path=str(source),
                md5=dep["md5"],
                size=dep.get("size", 0),
            )
    return None


def _decode(path: Path, data: bytes, kind: Any) -> Any:
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.DecodeError as exc:
        raise LineageError("artifact_invalid", f"{path}: cannot be parsed: {exc}") from None


def snapshot_lock(snapshot: FileSnapshot) -> dict[str, Any]:
    """The snapshot's ``dvc.lock``, parsed."""
    return parse_lock(snapshot.data(LOCK_PATH), snapshot.path(LOCK_PATH))


def load_verified_file(snapshot: FileSnapshot, lock_path: str) -> tuple[LockedArtifact, bytes]:
    """One locked file of the snapshot, verified against the snapshot's lock: its bytes."""
    return verify_artifact(snapshot_lock(snapshot), lock_path, snapshot)


def load_verified_bundle(snapshot: FileSnapshot) -> VerifiedBundle:
    """Verify every served file of the snapshot against its lock and parse them.

    The md5 is computed from the very bytes that are parsed and loaded (read once, by
    :meth:`FileSnapshot.read`), so a file replaced on disk cannot slip in between.
    """
    lock = snapshot_lock(snapshot)
    locations = snapshot.locations
    contents: dict[str, bytes] = {}
    artifacts: dict[str, LockedArtifact] = {}
    for lock_path in REQUIRED_ARTIFACTS:
        artifacts[lock_path], contents[lock_path] = verify_artifact(lock, lock_path, snapshot)

    card: ModelCard = _decode(locations[MODEL_JSON], contents[MODEL_JSON], ModelCard)
    ood_card: OodCard = _decode(locations[OOD_JSON], contents[OOD_JSON], OodCard)
    metrics: dict[str, Any] = _decode(
        locations[METRICS_JSON], contents[METRICS_JSON], dict[str, Any]
    )
    importance: FeatureImportance = _decode(
        locations[IMPORTANCE_JSON], contents[IMPORTANCE_JSON], FeatureImportance
    )
    if card.n_features != 64 or len(importance.importances_mean) != card.n_features:
        raise LineageError(
            "artifact_invalid",
            f"{locations[IMPORTANCE_JSON]}: expected {card.n_features} importances, "
            f"got {len(importance.importances_mean)}",
        )
    train_name, train_stage, _ = find_out(lock, MODEL_ONNX)
    eval_name, eval_stage, _ = find_out(lock, METRICS_JSON)
    return VerifiedBundle(
        version=artifacts[MODEL_ONNX].md5[:VERSION_LENGTH],
        onnx_bytes=contents[MODEL_ONNX],
        card=card,
        ood_bytes=contents[OOD_ONNX],
        ood_card=ood_card,
        metrics=metrics,
        importance=importance,
        artifacts=artifacts,
        train_stage=_stage_info(train_name, train_stage),
        evaluate_stage=_stage_info(eval_name, eval_stage),
        raw_data=raw_data_entry(lock),
    )
