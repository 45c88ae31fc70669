"""Model signatures: sign and verify over exactly the served files, with throwaway P-256 keys."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from serving.lineage import LineageError
from serving.settings import Settings
from serving.signature import (
    RESULT_ENV,
    SIGNED_FILES,
    check_worker,
    encode_result,
    sign,
    signature_path,
    verify,
)
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit


def write_key_pair(directory: Path, name: str) -> tuple[Path, Path]:
    """A fresh ECDSA P-256 key pair as PEM files: (private, public)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = directory / f"{name}.pem"
    public = directory / f"{name}.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def copy_served_files(project: Path) -> None:
    """The signed files of this checkout, under their dvc.lock paths, in ``project``."""
    for rel in SIGNED_FILES:
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / rel, project / rel)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    copy_served_files(tmp_path / "project")
    return tmp_path / "project"


def settings_for(project: Path, public_key: Path | None) -> Settings:
    return Settings(
        lock_file_path=str(project / "dvc.lock"),
        model_public_key_path=None if public_key is None else str(public_key),
    )


def test_valid_signature_verifies_every_served_file(project: Path, tmp_path: Path) -> None:
    private, public = write_key_pair(tmp_path, "signer")
    settings = settings_for(project, public)
    digests = sign(settings, private, signature_path(settings))
    assert signature_path(settings) == project / "models" / "model.sig"
    assert sorted(digests) == sorted(SIGNED_FILES)
    result = verify(settings)
    assert (result.status, result.reason) == ("verified", "")
    assert result.sha256 == digests
    check_worker(settings, {RESULT_ENV: encode_result(result)})
    check_worker(settings, {})  # no pre-start result: verifies in process


def test_wrong_key_does_not_verify(project: Path, tmp_path: Path) -> None:
    private, _ = write_key_pair(tmp_path, "signer")
    _, other_public = write_key_pair(tmp_path, "other")
    settings = settings_for(project, other_public)
    sign(settings, private, signature_path(settings))
    result = verify(settings)
    assert (result.status, result.reason) == ("failed", "signature_invalid")
    with pytest.raises(LineageError) as raised:
        check_worker(settings, {})
    assert raised.value.reason == "signature_invalid"


def test_missing_signature(project: Path, tmp_path: Path) -> None:
    _, public = write_key_pair(tmp_path, "signer")
    result = verify(settings_for(project, public))
    assert (result.status, result.reason) == ("failed", "signature_missing")


@pytest.mark.parametrize("rel", SIGNED_FILES)
def test_any_changed_served_file_fails(project: Path, tmp_path: Path, rel: str) -> None:
    private, public = write_key_pair(tmp_path, "signer")
    settings = settings_for(project, public)
    sign(settings, private, signature_path(settings))
    with (project / rel).open("ab") as handle:
        handle.write(b"\n")
    result = verify(settings)
    assert (result.status, result.reason) == ("failed", "signature_invalid")
    assert rel in result.message


def test_worker_refuses_files_changed_after_the_pre_start_check(
    project: Path, tmp_path: Path
) -> None:
    private, public = write_key_pair(tmp_path, "signer")
    settings = settings_for(project, public)
    sign(settings, private, signature_path(settings))
    result = encode_result(verify(settings))
    (project / "models" / "model.json").write_bytes(b"{}")
    with pytest.raises(LineageError, match="changed since its signature was verified"):
        check_worker(settings, {RESULT_ENV: result})


def test_no_key_configured_checks_nothing(project: Path) -> None:
    check_worker(settings_for(project, None), {})
