"""Model signatures (OpenSSF ``model-signing``, ECDSA key pair, offline).

The signature bundle (default ``models/model.sig``, beside the model) covers exactly the
files the service serves, under their ``dvc.lock`` paths: :data:`SIGNED_FILES`. To sign or
verify, those files are copied into a fresh directory with that layout, and that directory
is what ``model-signing`` hashes: nothing else in the project can add to or hide from it.

``model_signing`` (and sigstore with it) costs ~0.3 s and ~60 MB to import, so it is never
imported by a serving worker on the normal path: ``python -m serving`` runs
``python -m serving.verify_signature`` once before the workers start and hands them the
result (the sha256 of every verified file) in :data:`RESULT_ENV`. A worker then only
re-hashes the files with hashlib and compares (:func:`check_worker`). A worker that finds no
result (an app started some other way) verifies in process.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import msgspec

from serving.lineage import LineageError
from serving.settings import Settings

LOCK_PATH = "dvc.lock"
MODEL_FILES = ("models/model.onnx", "models/model.json", "models/ood.onnx", "models/ood.json")
PROJECT_FILES = (
    "reports/metrics.json",
    "reports/feature_importance.json",
    "data/prepared/reference_stats.json",
)
SIGNED_FILES = (LOCK_PATH, *MODEL_FILES, *PROJECT_FILES)
DEFAULT_SIGNATURE_NAME = "model.sig"
RESULT_ENV = "DIGITS_SIGNATURE_RESULT"


class SignatureResult(msgspec.Struct, frozen=True):
    """What the pre-start check found: ``verified`` with file digests, or a failure."""

    status: str  # "verified" | "failed"
    reason: str = ""
    message: str = ""
    sha256: dict[str, str] = {}


def signed_locations(settings: Settings) -> dict[str, Path]:
    """Where each signed file is read from: the lock, the model dir, the project dir."""
    locations = {LOCK_PATH: settings.lock_file}
    for path in MODEL_FILES:
        locations[path] = settings.resolved_model_dir / Path(path).name
    for path in PROJECT_FILES:
        locations[path] = settings.project_dir / path
    return locations


def signature_path(settings: Settings) -> Path:
    """``DIGITS_MODEL_SIGNATURE``, defaulting to ``model.sig`` in the model directory."""
    if settings.model_signature_path:
        return Path(settings.model_signature_path)
    return settings.resolved_model_dir / DEFAULT_SIGNATURE_NAME


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def staged_files(locations: Mapping[str, Path]) -> Iterator[tuple[Path, dict[str, str]]]:
    """A temporary directory holding a copy of each file under its lock path, and digests."""
    with tempfile.TemporaryDirectory(prefix="digits-signed-") as tmp:
        root = Path(tmp) / "model"
        digests: dict[str, str] = {}
        for rel, source in locations.items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(source, target)
            except FileNotFoundError:
                raise LineageError(
                    "artifact_missing", f"{source}: signed file {rel} is missing"
                ) from None
            digests[rel] = sha256_file(target)
        yield root, digests


def sign(settings: Settings, private_key: Path, out: Path) -> dict[str, str]:
    """Sign the served files with an ECDSA private key (PEM); write the bundle to ``out``."""
    from model_signing import signing

    out.parent.mkdir(parents=True, exist_ok=True)
    with staged_files(signed_locations(settings)) as (root, digests):
        tmp_out = out.with_name(f".{out.name}.tmp")
        config = signing.Config()  # type: ignore[no-untyped-call]
        config.use_elliptic_key_signer(private_key=private_key).sign(root, tmp_out)
        tmp_out.replace(out)
    return digests


def verify(settings: Settings) -> SignatureResult:
    """Verify the signature bundle over the served files with ``DIGITS_MODEL_PUBLIC_KEY``."""
    key = settings.model_public_key_path
    if not key:
        raise ValueError("no public key configured (DIGITS_MODEL_PUBLIC_KEY)")
    bundle = signature_path(settings)
    if not bundle.is_file():
        return SignatureResult(
            "failed", "signature_missing", f"{bundle}: no signature bundle (run make sign)"
        )
    if not Path(key).is_file():
        return SignatureResult(
            "failed", "signature_invalid", f"{key}: DIGITS_MODEL_PUBLIC_KEY file not found"
        )
    from model_signing import verifying

    try:
        with staged_files(signed_locations(settings)) as (root, digests):
            config = verifying.Config()  # type: ignore[no-untyped-call]
            config.use_elliptic_key_verifier(public_key=Path(key)).verify(root, bundle)
    except LineageError as exc:
        return SignatureResult("failed", exc.reason, str(exc))
    except Exception as exc:  # model_signing raises ValueError and crypto/parse errors
        one_line = " ".join(str(exc).split()) or type(exc).__name__
        return SignatureResult(
            "failed", "signature_invalid", f"{bundle}: does not verify: {one_line}"
        )
    return SignatureResult("verified", sha256=digests)


def encode_result(result: SignatureResult) -> str:
    return msgspec.json.encode(result).decode()


def check_worker(settings: Settings, environ: Mapping[str, str] | None = None) -> None:
    """In a worker: raise :class:`LineageError` unless the served files are the signed ones.

    No-op without ``DIGITS_MODEL_PUBLIC_KEY``. Uses the pre-start result when present,
    else verifies in process.
    """
    if not settings.model_public_key_path:
        return
    env = os.environ if environ is None else environ
    raw = env.get(RESULT_ENV)
    if raw:
        try:
            result = msgspec.json.decode(raw, type=SignatureResult)
        except msgspec.DecodeError:
            raise LineageError("signature_invalid", f"{RESULT_ENV} is not a result") from None
    else:
        result = verify(settings)
    if result.status != "verified":
        raise LineageError(result.reason or "signature_invalid", result.message)
    for rel, path in signed_locations(settings).items():
        try:
            actual = sha256_file(path)
        except OSError as exc:
            raise LineageError("artifact_missing", f"{path}: {exc}") from None
        if result.sha256.get(rel) != actual:
            raise LineageError(
                "signature_invalid", f"{path}: changed since its signature was verified"
            )
