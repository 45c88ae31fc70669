"""The model registry entry an image was built from (``models/registry.json``, optional).

``make image REF=digits-classifier#prod`` (tools/registry_bundle.py) writes it beside the
model: the GTO artifact, version, stage, the reference it was resolved from and the commit.
A working copy served from ``dvc.lock`` has none, and the service reports ``null``.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from serving.lineage import LineageError

REGISTRY_FILE = "registry.json"


class RegistryInfo(msgspec.Struct, frozen=True):
    artifact: str
    version: str
    stage: str | None = None
    ref: str | None = None
    commit: str | None = None


def read_registry(model_dir: Path) -> RegistryInfo | None:
    """The registry entry in ``model_dir``, ``None`` when there is none."""
    path = model_dir / REGISTRY_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LineageError("artifact_unreadable", f"{path}: cannot read: {exc}") from None
    try:
        return msgspec.json.decode(data, type=RegistryInfo)
    except msgspec.DecodeError as exc:
        raise LineageError("artifact_invalid", f"{path}: cannot be parsed: {exc}") from None
