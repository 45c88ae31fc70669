"""The API-keys file under concurrent CLI use and replacement (issue 23, finding 6)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from serving.access.keys import KeyRing, _write_atomically, add_key, locked, read_entries
from serving.app import create_app
from serving.settings import Settings

pytestmark = pytest.mark.integration
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
            [sys.executable, "-m", "serving.access.keys", "--file", str(path), "revoke", "alice"],
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


def wait_for_status(client: TestClient[Any], path: str, status: int, **kwargs: Any) -> Any:
    deadline = time.monotonic() + 10
    while True:
        response = client.get(path, **kwargs)
        if response.status_code == status:
            return response
        assert time.monotonic() < deadline, f"{path} never answered {status}: {response.text}"
        time.sleep(0.05)


def test_a_deleted_keys_file_fails_ready_after_the_grace_period(tmp_path: Path) -> None:
    """Deleting the keys file used to keep every old key valid for ever, silently. The last
    good keys still answer (a Secret update may replace the file), but after
    DIGITS_API_KEYS_GRACE /ready says keys_file_unreadable and the gauge drops to 0; a
    readable file again restores both."""
    path = tmp_path / "api-keys.jsonl"
    key = add_key(path, "ops", ["read"])
    settings = Settings(
        lock_file_path=str(REPO_ROOT / "dvc.lock"),
        auth="api-key",
        api_keys_file=str(path),
        api_keys_grace_seconds=0.5,
    )
    auth = {"authorization": f"Bearer {key}"}
    with TestClient(app=create_app(settings)) as client:
        assert client.get("/ready").status_code == 200
        saved = path.read_bytes()
        path.unlink()
        time.sleep(1.1)  # past the 1 s re-read interval
        assert client.get("/ready").status_code == 200  # within the grace period
        ready = wait_for_status(client, "/ready", 503).json()
        assert ready["reason"] == "keys_file_unreadable", ready
        assert str(path) not in ready["message"]  # details go to the log only
        assert client.get("/v2/health/ready").status_code == 400
        assert client.get("/model", headers=auth).status_code == 200  # last good keys
        assert "auth_credentials_healthy 0.0" in client.get("/metrics", headers=auth).text
        _write_atomically(path, saved.splitlines())
        wait_for_status(client, "/ready", 200)
        assert "auth_credentials_healthy 1.0" in client.get("/metrics", headers=auth).text


def test_revoke_all_empties_the_file_and_every_key_stops_working(tmp_path: Path) -> None:
    path = tmp_path / "api-keys.jsonl"
    keys = [add_key(path, client, ["read"]) for client in ("alice", "bob", "carol")]
    settings = Settings(
        lock_file_path=str(REPO_ROOT / "dvc.lock"), auth="api-key", api_keys_file=str(path)
    )
    with TestClient(app=create_app(settings)) as client:
        for key in keys:
            assert client.get("/model", headers={"authorization": f"Bearer {key}"}).is_success
        done = subprocess.run(
            [sys.executable, "-m", "serving.access.keys", "--file", str(path), "revoke-all"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "revoked all 3 key(s)" in done.stderr
        assert path.read_bytes() == b""
        assert read_entries(path) == []
        for key in keys:
            wait_for_status(client, "/model", 401, headers={"authorization": f"Bearer {key}"})
        assert client.get("/ready").status_code == 200  # an empty file is a valid file
