"""Rotating a client's key with overlap, as docs/operations.md says, on a real server.

The client gets a second key, both work while it moves over, then the old key alone is
revoked by its id: it is refused within the keys file's re-read interval, the new one keeps
working, and no other key is touched.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from serving.access.keys import KEY_ID_LENGTH, key_digest, main, read_entries
from serving.schemas import EXAMPLE_FLAT
from tests.integration.conftest import RunningServer
from tests.integration.feedback_client import call

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
BODY = json.dumps({"samples": [EXAMPLE_FLAT]}).encode()


def keys_cli(path: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["--file", str(path), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def status_with(server: RunningServer, key: str) -> int:
    return call(server, "POST", "/predict", BODY, key)[0]


def eventually(check: Callable[[], bool], within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_a_key_is_rotated_with_overlap_and_the_old_one_revoked_by_its_id(
    serve: Callable[..., RunningServer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.jsonl"
    _, old, _ = keys_cli(path, "add", "alice", "--scopes", "predict", capsys=capsys)
    _, bob, _ = keys_cli(path, "add", "bob", "--scopes", "predict", capsys=capsys)
    old, bob = old.strip(), bob.strip()
    server = serve({"DIGITS_AUTH": "api-key", "DIGITS_API_KEYS_FILE": str(path)}, workers=1)
    assert status_with(server, old) == 200

    code, new, said = keys_cli(path, "add", "alice", "--scopes", "predict", capsys=capsys)
    new = new.strip()
    assert code == 0
    assert f"key {key_digest(new)[:KEY_ID_LENGTH]} for alice" in said
    assert eventually(lambda: status_with(server, new) == 200)
    assert status_with(server, old) == 200  # the overlap: both keys of alice work

    code, listed, _ = keys_cli(path, "list", capsys=capsys)
    rows = [line.split("\t") for line in listed.splitlines()]
    assert [(row[0], row[1]) for row in rows] == [
        ("alice", key_digest(old)[:KEY_ID_LENGTH]),
        ("bob", key_digest(bob)[:KEY_ID_LENGTH]),
        ("alice", key_digest(new)[:KEY_ID_LENGTH]),
    ]
    assert all(row[4] == "0d00h" for row in rows)  # the age column

    old_id = key_digest(old)[:KEY_ID_LENGTH]
    assert keys_cli(path, "revoke", "--key-id", old_id[:8], capsys=capsys)[0] == 2  # too short
    assert keys_cli(path, "revoke", "--key-id", "0" * KEY_ID_LENGTH, capsys=capsys)[0] == 2
    assert len(read_entries(path)) == 3  # a refused revoke removes nothing
    code, _, said = keys_cli(path, "revoke", "--key-id", old_id, capsys=capsys)
    assert code == 0
    assert said.strip() == f"revoked key {old_id} of alice"
    assert eventually(lambda: status_with(server, old) == 401)
    assert status_with(server, new) == 200
    assert status_with(server, bob) == 200
    assert {entry.key_sha256 for entry in read_entries(path)} == {key_digest(new), key_digest(bob)}
