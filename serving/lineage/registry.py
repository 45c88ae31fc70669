"""The GTO registry entry of the served model: ``models/registry.json`` when an image or
bundle was built from a registry reference, else the working copy's registered version.

``make image REF=digits-classifier#prod`` (tools/registry_bundle.py) writes
``registry.json`` beside the model: the GTO artifact, version, stage, the reference it was
resolved from, the commit and the md5 of each served file. It takes precedence (an image has
no git). Without it, :mod:`serving.lineage.registry_lookup` finds the registered version whose
commit pins the served files. A working copy that matches none reports ``null``.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from serving.lineage import REGISTRY_JSON, LineageError

REGISTRY_FILE = Path(REGISTRY_JSON).name
# The GTO artifact: the key under ``artifacts:`` in dvc.yaml (the Makefile's ARTIFACT).
ARTIFACT = "digits-classifier"


class RegistryInfo(msgspec.Struct, frozen=True):
    artifact: str
    version: str
    stage: str | None = None
    ref: str | None = None
    commit: str | None = None
    # lock path -> md5 of the served files the entry was made for (older files have none:
    # absent is empty, nothing to check).
    artifacts: dict[str, str] = msgspec.field(default_factory=dict)


def read_registry(model_dir: Path) -> RegistryInfo | None:
    """The registry entry in ``model_dir``, ``None`` when there is none."""
    path = model_dir / REGISTRY_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LineageError("artifact_unreadable", f"{path}: cannot read: {exc}") from None
    return parse_registry(data, path)


def parse_registry(data: bytes, path: Path) -> RegistryInfo:
    """The registry entry in ``data`` (read from ``path``), or ``artifact_invalid``."""
    try:
        return msgspec.json.decode(data, type=RegistryInfo)
    except msgspec.DecodeError as exc:
        raise LineageError("artifact_invalid", f"{path}: cannot be parsed: {exc}") from None


def check_registry(entry: RegistryInfo, served: dict[str, str], path: Path) -> None:
    """Refuse a registry entry written for other files than the verified ones ``served``
    (lock path -> md5): the service would report a version it does not serve."""
    for lock_path, md5 in entry.artifacts.items():
        actual = served.get(lock_path)
        if actual is not None and actual != md5:
            raise LineageError(
                "registry_mismatch",
                f"{path}: {entry.artifact}@{entry.version} was built for {lock_path} md5 {md5}, "
                f"the served file has {actual}",
            )
