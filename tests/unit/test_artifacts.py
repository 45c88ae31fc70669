"""Atomic, deterministic artifact writers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from stages.lib.artifacts import (
    ArtifactError,
    atomic_write_bytes,
    json_bytes,
    npz_bytes,
    read_json,
    read_npz,
    write_npz,
)

pytestmark = pytest.mark.unit


def test_atomic_write_replaces_content_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.bin"
    atomic_write_bytes(target, b"first")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]


def test_write_removes_temp_files_of_an_interrupted_earlier_write(tmp_path: Path) -> None:
    stale = tmp_path / ".out.bin.abc123.tmp"
    stale.write_bytes(b"half")
    other = tmp_path / ".other.bin.abc123.tmp"
    other.write_bytes(b"not ours")
    atomic_write_bytes(tmp_path / "out.bin", b"whole")
    assert not stale.exists()
    assert other.exists()


def test_disk_full_names_the_artifact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left") as excinfo:
        atomic_write_bytes(tmp_path / "out.bin", b"data")
    assert excinfo.value.filename == str(tmp_path / "out.bin")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"good")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(target, b"partial")
    assert target.read_bytes() == b"good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_json_is_canonical() -> None:
    assert (
        json_bytes({"b": 1, "a": [1.5, 2]}) == b'{\n  "a": [\n    1.5,\n    2\n  ],\n  "b": 1\n}\n'
    )


def test_json_rejects_nan() -> None:
    with pytest.raises(ValueError, match="Out of range float"):
        json_bytes({"x": float("nan")})


def test_npz_bytes_are_deterministic_and_round_trip(tmp_path: Path) -> None:
    arrays = {"y": np.arange(5, dtype=np.int64), "X": np.eye(3)}
    first = npz_bytes(arrays)
    assert first == npz_bytes(dict(reversed(list(arrays.items()))))
    path = tmp_path / "a.npz"
    write_npz(path, arrays)
    loaded = read_npz(path, ("X", "y"))
    np.testing.assert_array_equal(loaded["X"], arrays["X"])
    np.testing.assert_array_equal(loaded["y"], arrays["y"])


def test_read_npz_reports_missing_array_and_corruption(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    write_npz(path, {"X": np.zeros(2)})
    with pytest.raises(ArtifactError, match=r"missing arrays \['y'\]"):
        read_npz(path, ("X", "y"))
    path.write_bytes(b"not a zip")
    with pytest.raises(ArtifactError, match=r"not a readable \.npz"):
        read_npz(path, ("X",))
    with pytest.raises(FileNotFoundError, match="required input is missing"):
        read_npz(tmp_path / "absent.npz", ("X",))


def test_read_json_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        read_json(bad)
    with pytest.raises(FileNotFoundError, match="required input is missing"):
        read_json(tmp_path / "absent.json")
