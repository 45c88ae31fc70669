"""The API-keys file under concurrent CLI use and replacement (issue 23, finding 6)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from serving.keys import KeyRing, _write_atomically, add_key, locked, read_entries

pytestmark = pytest.mark.unit
REPO_ROOT = Path(__file__).resolve().parents[2]


def _holds_open(pid: int, target: Path) -> bool:
    """Whether process ``pid`` has ``target`` open (its /proc fd links)."""
    try:
        links = [str(fd.readlink()) for fd in Path(f"/proc/{pid}/fd").iterdir()]
    except OSError:
        return False
    return str(target) in links


def test_an_overlapping_add_and_revoke_lose_neither_change(tmp_path: Path) -> None:
    """revoke waits for a concurrent writer, then works on what it wrote: no lost update."""
    path = tmp_path / "api-keys.jsonl"
    add_key(path, "alice", ["predict"])
    lock_file = path.with_name(path.name + ".lock")
    with locked(path):  # a concurrent `keys add` in the middle of its read-modify-write
        revoke = subprocess.Popen(
            [sys.executable, "-m", "serving.keys", "--file", str(path), "revoke", "alice"],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while not _holds_open(revoke.pid, lock_file) and revoke.poll() is None:
            assert time.monotonic() < deadline, "revoke never asked for the lock"
            time.sleep(0.02)
        assert revoke.poll() is None, "revoke ran without waiting for the lock"
        # The add's write lands while revoke waits (it had read nothing yet).
        bob = add_entry_line(tmp_path, "bob")
        _write_atomically(path, [*lines_of(path), bob])
    _, err = revoke.communicate(timeout=60)
    assert revoke.returncode == 0, err.decode()
    clients = [entry.client_id for entry in read_entries(path)]
    assert clients == ["bob"]  # alice revoked, bob's concurrent add kept


def add_entry_line(directory: Path, client_id: str) -> bytes:
    """One encoded entry, made by the real add in a scratch file."""
    scratch = directory / f"{client_id}.jsonl"
    add_key(scratch, client_id, ["predict"])
    return msgspec.json.encode(read_entries(scratch)[0])


def lines_of(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def test_a_replaced_file_is_reread_even_with_the_same_size_and_mtime(tmp_path: Path) -> None:
    """cp -p or rsync -t can keep size and mtime: the inode and ctime still tell."""
    path, other = tmp_path / "api-keys.jsonl", tmp_path / "other.jsonl"
    old_key = add_key(path, "alice", ["predict"])
    new_key = add_key(other, "alice", ["predict"])
    assert path.stat().st_size == other.stat().st_size
    ring = KeyRing(path, check_seconds=0.0)
    assert ring.verify(old_key) is not None
    before = path.stat()
    other.replace(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime set back
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    ring.refresh(time.monotonic() + 1)
    assert ring.verify(old_key) is None
    assert ring.verify(new_key) is not None
