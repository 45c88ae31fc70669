"""The lineage chain of a decision record: request id -> model version -> registry version
and stage -> commit -> params -> raw-data md5.

The record carries the first links (``registry``: the GTO version, stage and commit that
``/model`` reported). The rest is read with plain ``git`` from that commit's ``dvc.lock``
in a clone of the repository (``--repo``, default the current directory): the params of the
stage that wrote the model and the md5 of the raw dataset. That lock must pin the record's
model version; if it does not, the chain is broken and that is an error, not a guess.
"""

from __future__ import annotations

import shutil
import subprocess  # nosec B404 - runs git with fixed arguments, no shell
from pathlib import Path
from typing import Any

import msgspec

from serving.decisions.legacy import DecisionRecordV1
from serving.decisions.query import AnyRecord
from serving.decisions.record import RecordRegistry
from serving.lineage import MODEL_ONNX, VERSION_LENGTH, LineageError, find_out, raw_data_entry
from serving.lineage.lockfile import LockFormatError, parse_lock

LOCK_FILE = "dvc.lock"
GIT_TIMEOUT_SECONDS = 30


class TraceError(ValueError):
    """The chain cannot be followed: the commit is not in the repository, or it is broken."""


class RawData(msgspec.Struct):
    path: str
    md5: str
    size: int


class Chain(msgspec.Struct):
    """One record's lineage, in chain order; ``note`` says why it stops early, if it does."""

    request_id: str
    model_version: str
    registry_version: str | None = None
    registry_stage: str | None = None
    commit: str | None = None
    params: dict[str, Any] | None = None
    raw_data: RawData | None = None
    note: str | None = None


def lock_at(repo: Path, commit: str) -> dict[str, Any]:
    """``dvc.lock`` as committed at ``commit`` in ``repo``, parsed."""
    git = shutil.which("git")
    if git is None:
        raise TraceError("git is not installed: it reads the registry commit's dvc.lock")
    try:
        completed = subprocess.run(  # noqa: S603  # nosec B603 - fixed arguments, no shell
            [git, "cat-file", "blob", f"{commit}:{LOCK_FILE}"],
            cwd=repo,
            capture_output=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TraceError(f"cannot run git in {repo}: {exc}") from None
    if completed.returncode != 0:
        detail = " ".join(completed.stderr.decode(errors="replace").split())
        raise TraceError(
            f"commit {commit} has no {LOCK_FILE} in {repo} ({detail}): run this in a clone "
            "of the repository that has the commit, or pass --repo"
        )
    try:
        return parse_lock(completed.stdout)
    except LockFormatError as exc:
        raise TraceError(f"{commit}:{LOCK_FILE}: {exc}") from None


def trace(record: AnyRecord, repo: Path) -> Chain:
    """The chain of ``record`` (either schema version), its commit read from ``repo``."""
    chain = Chain(request_id=record.request_id, model_version=record.model_version)
    if isinstance(record, DecisionRecordV1):
        chain.note = "a schema version 1 record: it has no registry entry"
        return chain
    # Version 2 or 3: an older version's fields are made at import (legacy.OLDER), not typed.
    registry: RecordRegistry | None = getattr(record, "registry")  # noqa: B009
    if registry is None:
        chain.note = (
            "no registry version: the model was served from a working copy that matches "
            "no GTO-registered version"
        )
        return chain
    chain.registry_version, chain.registry_stage = registry.version, registry.stage
    if registry.commit is None:
        chain.note = "the registry entry has no commit"
        return chain
    chain.commit = registry.commit
    lock = lock_at(repo, registry.commit)
    try:
        _, train_stage, model_out = find_out(lock, MODEL_ONNX)
    except LineageError as exc:
        raise TraceError(f"{registry.commit}:{LOCK_FILE}: {exc}") from None
    pinned = str(model_out.get("md5", ""))[:VERSION_LENGTH]
    if pinned != record.model_version:
        raise TraceError(
            f"broken chain: {registry.version} (commit {registry.commit}) pins model "
            f"{pinned or 'none'}, the record says model {record.model_version}"
        )
    chain.params = train_stage.get("params") or {}
    raw = raw_data_entry(lock)
    if raw is None:
        chain.note = f"{registry.commit}:{LOCK_FILE} records no raw dataset"
    else:
        chain.raw_data = RawData(path=raw.lock_path, md5=raw.md5, size=raw.size)
    return chain
