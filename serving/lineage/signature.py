"""Model signatures (OpenSSF ``model-signing``, ECDSA key pair, offline).

The signature bundle (default ``models/model.sig``, beside the model) covers exactly the
files the service serves, under their ``dvc.lock`` paths: :data:`SIGNED_FILES`, and
``models/registry.json`` when it exists (:data:`OPTIONAL_SIGNED_FILES`): the signed manifest
lists it or not, so adding, removing or changing it after signing fails verification. To
sign or verify, each file is read once (:class:`FileSnapshot`) and its bytes are written into
a fresh directory with that layout, which is what ``model-signing`` hashes: nothing else in
the project can add to or hide from it.

``model_signing`` (and sigstore with it) costs ~0.3 s and ~60 MB to import, so it is never
imported by a serving worker on the normal path: ``python -m serving`` runs
``python -m serving.lineage.verify_signature`` once before the workers start and hands them the
result (the sha256 of every verified file) in :data:`RESULT_ENV`. A worker then reads each
served file once, hashes those bytes with hashlib and compares (:func:`check_worker`); the
same bytes are then checked against ``dvc.lock`` and loaded, never re-read from disk. A
worker that finds no result (an app started some other way) verifies its snapshot in process.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import msgspec

from serving.lineage import (
    LOCK_PATH,
    MODEL_FILES,
    OPTIONAL_FILES,
    PROJECT_FILES,
    FileSnapshot,
    LineageError,
)
from serving.settings import Settings

SIGNED_FILES = (LOCK_PATH, *MODEL_FILES, *PROJECT_FILES)
# Signed when present at signing time (models/registry.json, written by tools/registry_bundle).
OPTIONAL_SIGNED_FILES = OPTIONAL_FILES
DEFAULT_SIGNATURE_NAME = "model.sig"
RESULT_ENV = "DIGITS_SIGNATURE_RESULT"


class SignatureResult(msgspec.Struct, frozen=True):
    """What the pre-start check found: ``verified`` with file digests, or a failure."""

    status: str  # "verified" | "failed"
    reason: str = ""
    message: str = ""
    sha256: dict[str, str] = {}


def read_served(settings: Settings) -> FileSnapshot:
    """Every served file, opened and read once: what is signed, checked and loaded."""
    return FileSnapshot.read(settings.lock_file, settings.resolved_model_dir)


def signed_contents(snapshot: FileSnapshot) -> dict[str, bytes]:
    """The signed files of ``snapshot``: every required one (else ``artifact_missing``) and
    each optional one that exists."""
    contents = {rel: snapshot.data(rel) for rel in SIGNED_FILES}
    for rel in OPTIONAL_SIGNED_FILES:
        data = snapshot.get(rel)
        if data is not None:
            contents[rel] = data
    return contents


def sha256_digests(contents: Mapping[str, bytes]) -> dict[str, str]:
    """The sha256 of each file's bytes (lock path -> hex digest)."""
    return {rel: hashlib.sha256(data).hexdigest() for rel, data in contents.items()}


def signature_path(settings: Settings) -> Path:
    """``DIGITS_MODEL_SIGNATURE``, defaulting to ``model.sig`` in the model directory."""
    if settings.model_signature_path:
        return Path(settings.model_signature_path)
    return settings.resolved_model_dir / DEFAULT_SIGNATURE_NAME


@contextmanager
def staged_files(snapshot: FileSnapshot) -> Iterator[tuple[Path, dict[str, str]]]:
    """A temporary directory holding the snapshot's signed bytes under their lock paths,
    and their sha256 digests."""
    contents = signed_contents(snapshot)
    with tempfile.TemporaryDirectory(prefix="digits-signed-") as tmp:
        root = Path(tmp) / "model"
        for rel, data in contents.items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        yield root, sha256_digests(contents)


def sign(settings: Settings, private_key: Path, out: Path) -> dict[str, str]:
    """Sign the served files with an ECDSA private key (PEM); write the bundle to ``out``."""
    from model_signing import signing

    out.parent.mkdir(parents=True, exist_ok=True)
    with staged_files(read_served(settings)) as (root, digests):
        tmp_out = out.with_name(f".{out.name}.tmp")
        config = signing.Config()  # type: ignore[no-untyped-call]
        config.use_elliptic_key_signer(private_key=private_key).sign(root, tmp_out)
        tmp_out.replace(out)
    return digests


def verify(settings: Settings, snapshot: FileSnapshot | None = None) -> SignatureResult:
    """Verify the signature bundle over the served files (``snapshot``, by default read now)
    with ``DIGITS_MODEL_PUBLIC_KEY``."""
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
        with staged_files(snapshot or read_served(settings)) as (root, digests):
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


def check_worker(settings: Settings, environ: Mapping[str, str] | None = None) -> FileSnapshot:
    """In a worker: read every served file once; with ``DIGITS_MODEL_PUBLIC_KEY``, raise
    :class:`LineageError` unless those bytes are the signed ones. Returns the snapshot, the
    only bytes the worker then checks against ``dvc.lock`` and loads.

    Uses the pre-start result when present, else verifies the snapshot in process.
    """
    snapshot = read_served(settings)
    if not settings.model_public_key_path:
        return snapshot
    env = os.environ if environ is None else environ
    raw = env.get(RESULT_ENV)
    if raw:
        try:
            result = msgspec.json.decode(raw, type=SignatureResult)
        except msgspec.DecodeError:
            raise LineageError("signature_invalid", f"{RESULT_ENV} is not a result") from None
    else:
        result = verify(settings, snapshot)
    if result.status != "verified":
        raise LineageError(result.reason or "signature_invalid", result.message)
    actual = sha256_digests(signed_contents(snapshot))
    for rel in sorted(set(actual) | set(result.sha256)):
        expected, found = result.sha256.get(rel), actual.get(rel)
        if expected != found:
            what = "appeared" if expected is None else "disappeared" if found is None else "changed"
            raise LineageError(
                "signature_invalid",
                f"{snapshot.locations.get(rel, rel)}: {what} since its signature was verified",
            )
    return snapshot
