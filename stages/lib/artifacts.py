"""Atomic, deterministic writers and readers for stage outputs.

Every write goes to a temporary file in the target directory, is fsynced and
then renamed over the target, so an interrupted stage never leaves a
half-written artifact that DVC would hash.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from stages.lib.canonical import canonical_json, float32_array


class ArtifactError(ValueError):
    """An input artifact that exists but cannot be used."""


# A fixed timestamp inside zip archives keeps their bytes reproducible.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a killed earlier run
        stale.unlink(missing_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp_path = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp_path.chmod(0o644)
        tmp_path.replace(path)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        if exc.filename is None:  # name the artifact, e.g. when the disk is full
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def json_bytes(payload: Any) -> bytes:
    """Canonical JSON: report-precision floats (:mod:`stages.lib.canonical`), sorted keys,
    two-space indent, trailing newline."""
    text = json.dumps(
        canonical_json(payload), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False
    )
    return (text + "\n").encode("utf-8")


def write_json(path: Path, payload: Any) -> None:
    """Write canonical JSON atomically."""
    atomic_write_bytes(path, json_bytes(payload))


def read_bytes(path: Path) -> bytes:
    """A required input file's bytes, with a clear error when it is missing."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: required input is missing") from None


def read_json(path: Path) -> Any:
    """Read a JSON file, with a clear error when it is missing or malformed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: required input is missing") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: not valid JSON: {exc}") from None


def npz_bytes(arrays: Mapping[str, npt.NDArray[Any]]) -> bytes:
    """An ``.npz`` archive with fixed timestamps, sorted members and float32-rounded floats."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(float32_array(arrays[name])))
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def write_npz(path: Path, arrays: Mapping[str, npt.NDArray[Any]]) -> None:
    """Write a deterministic ``.npz`` archive atomically."""
    atomic_write_bytes(path, npz_bytes(arrays))


def read_npz(path: Path, names: tuple[str, ...]) -> dict[str, npt.NDArray[Any]]:
    """Read named arrays from an ``.npz`` archive without allowing pickles."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [name for name in names if name not in archive.files]
            if missing:
                raise ArtifactError(f"{path}: missing arrays {missing}")
            return {name: archive[name] for name in names}
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: required input is missing") from None
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: not a readable .npz archive: {exc}") from None
