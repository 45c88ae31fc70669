"""Model signatures: sign and verify over exactly the served files, with throwaway P-256 keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.lineage import (
    REFERENCE_STATS_JSON,
    REGISTRY_JSON,
    LineageError,
    file_md5,
    load_verified_bundle,
    load_verified_file,
)
from serving.lineage.signature import (
    RESULT_ENV,
    SIGNED_FILES,
    check_worker,
    encode_result,
    sign,
    signature_path,
    verify,
)
from serving.settings import Settings
from tests.conftest import REPO_ROOT
from tests.signing import copy_served_files, tamper_and_relock, write_key_pair, write_registry_entry

pytestmark = pytest.mark.model


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


def test_registry_entry_is_signed_with_the_served_files(project: Path, tmp_path: Path) -> None:
    """models/registry.json (what /model and every decision record report as the release)
    is signed when present: a changed stage after signing does not verify."""
    private, public = write_key_pair(tmp_path, "signer")
    settings = settings_for(project, public)
    registry = write_registry_entry(project, stage="staging")
    digests = sign(settings, private, signature_path(settings))
    assert sorted(digests) == sorted([*SIGNED_FILES, REGISTRY_JSON])
    verified = verify(settings)
    assert verified.status == "verified"
    check_worker(settings, {RESULT_ENV: encode_result(verified)})
    write_registry_entry(project, stage="prod")  # same files, promoted by hand
    result = verify(settings)
    assert (result.status, result.reason) == ("failed", "signature_invalid")
    assert REGISTRY_JSON in result.message
    with pytest.raises(LineageError, match=r"registry\.json: changed since") as raised:
        check_worker(settings, {RESULT_ENV: encode_result(verified)})
    assert raised.value.reason == "signature_invalid"
    assert registry.is_file()


@pytest.mark.parametrize("signed_with_entry", [False, True], ids=["added", "removed"])
def test_registry_entry_added_or_removed_after_signing_fails(
    project: Path, tmp_path: Path, signed_with_entry: bool
) -> None:
    """The signature covers whether registry.json exists, not only its bytes."""
    private, public = write_key_pair(tmp_path, "signer")
    settings = settings_for(project, public)
    if signed_with_entry:
        write_registry_entry(project)
    sign(settings, private, signature_path(settings))
    verified = encode_result(verify(settings))
    if signed_with_entry:
        (project / REGISTRY_JSON).unlink()
    else:
        write_registry_entry(project)
    result = verify(settings)
    assert (result.status, result.reason) == ("failed", "signature_invalid")
    assert "registry.json" in result.message
    what = "disappeared" if signed_with_entry else "appeared"
    with pytest.raises(LineageError, match=rf"registry\.json: {what} since") as raised:
        check_worker(settings, {RESULT_ENV: verified})
    assert raised.value.reason == "signature_invalid"


def test_worker_loads_the_bytes_it_checked(project: Path, tmp_path: Path) -> None:
    """The worker's snapshot is what is verified and loaded: a model and a relocked
    dvc.lock swapped on disk right after the check change nothing that is served."""
    private, public = write_key_pair(tmp_path, "signer")
    settings = settings_for(project, public)
    sign(settings, private, signature_path(settings))
    verified = encode_result(verify(settings))
    signed_version = file_md5(project / "models" / "model.onnx")[:12]
    snapshot = check_worker(settings, {RESULT_ENV: verified})
    tamper_and_relock(project)  # the swap, after the check
    assert file_md5(project / "models" / "model.onnx")[:12] != signed_version
    bundle = load_verified_bundle(snapshot)
    assert bundle.version == signed_version
    assert bundle.onnx_bytes == (REPO_ROOT / "models" / "model.onnx").read_bytes()
    _, reference = load_verified_file(snapshot, REFERENCE_STATS_JSON)
    assert reference == (REPO_ROOT / REFERENCE_STATS_JSON).read_bytes()
