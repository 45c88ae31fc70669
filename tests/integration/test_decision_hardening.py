"""Decision records that cannot be spoofed or corrupted: the service's own request ids, the
client's kept apart, torn lines skipped by the query tool, private files never written
through a link, and a keyed input fingerprint."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from litestar.testing import TestClient

from serving.access.keys import add_key
from serving.app import create_app
from serving.decisions.__main__ import main as decisions_main
from serving.decisions.logfile import LogFile
from serving.decisions.record import SCHEMA_FILE, RecordTime
from serving.schemas import EXAMPLE_FLAT
from serving.settings import SettingsError, load_settings
from tests.decision_files import decision
from tests.integration.test_decisions import make_settings, read_records
from tests.records import record_lines

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads(SCHEMA_FILE.read_text())
BODY = json.dumps({"samples": [EXAMPLE_FLAT]})
HASH_KEY = "a-test-key-of-32-characters-long"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, dict[str, dict[str, str]]]:
    """A keys file with two clients; their request headers."""
    path = tmp_path / "keys.jsonl"
    headers: dict[str, dict[str, str]] = {}
    for client in ("alice", "bob"):
        key = add_key(path, client, ["predict", "explain", "read"])
        headers[client] = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    return path, headers


def wait_for_metric(client: TestClient[Any], auth: dict[str, str], text: str) -> None:
    deadline = time.monotonic() + 10
    while text not in (metrics := client.get("/metrics", headers=auth).text):
        assert time.monotonic() < deadline, metrics
        time.sleep(0.05)


def test_a_clients_request_id_is_kept_apart_never_taken_as_the_record_id(
    tmp_path: Path, keys: tuple[Path, dict[str, dict[str, str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    """Two clients both send X-Request-ID: audit-123. Each answer carries its own server id
    (X-Request-ID) and the client's echoed apart (X-Client-Request-ID); the records keep
    both; `show audit-123` finds nothing, `list --client-request-id audit-123` finds both."""
    directory = tmp_path / "decisions"
    headers, rid = keys[1], "audit-123"
    with TestClient(app=create_app(make_settings(directory, keys[0]))) as client:
        answers = {
            name: client.post(
                "/predict", content=BODY, headers={**auth, "x-request-id": "audit-123"}
            )
            for name, auth in headers.items()
        }
        plain = client.post("/predict", content=BODY, headers=headers["alice"])
        unusable = client.post(
            "/predict", content=BODY, headers={**headers["bob"], "x-request-id": "x" * 129}
        )
        refused = client.post(
            "/predict", content=b"{}", headers={**headers["bob"], "x-request-id": "audit-123"}
        )
    for answer in (*answers.values(), plain, unusable):
        assert answer.status_code == 200, answer.text
    ids = {name: answer.headers["x-request-id"] for name, answer in answers.items()}
    assert "audit-123" not in ids.values()
    assert ids["alice"] != ids["bob"]
    assert all(len(rid) == 32 for rid in ids.values())
    assert all(a.headers["x-client-request-id"] == "audit-123" for a in answers.values())
    assert "x-client-request-id" not in plain.headers
    assert "x-client-request-id" not in unusable.headers
    # An error body carries the service's id, not the client's.
    assert refused.status_code == 400
    assert refused.json()["request_id"] == refused.headers["x-request-id"] != "audit-123"
    assert refused.headers["x-client-request-id"] == "audit-123"

    records = {record["request_id"]: record for record in read_records(directory)}
    assert len(records) == 4
    for record in records.values():
        jsonschema.validate(record, SCHEMA)
    for name, rid in ids.items():
        assert records[rid]["client_request_id"] == "audit-123"
        assert records[rid]["client_id"] == name
    assert records[plain.headers["x-request-id"]]["client_request_id"] is None
    assert records[unusable.headers["x-request-id"]]["client_request_id"] is None

    assert decisions_main(["--dir", str(directory), "show", "audit-123"]) == 1
    capsys.readouterr()
    assert decisions_main(["--dir", str(directory), "show", ids["bob"]]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["record"]["request_id"], shown["record"]["client_id"]) == (ids["bob"], "bob")
    listing = ["--dir", str(directory), "list", "--client-request-id", "audit-123"]
    assert decisions_main(listing) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(record["request_id"] for record in listed) == sorted(ids.values())


def test_the_query_tool_skips_a_torn_line_and_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A torn line (a write cut short) is skipped and reported with its file and line
    number; the records before and after it are still found."""
    first, torn, after = record_lines(
        [decision(rid, [3], version="v") for rid in "abc"], False, RecordTime()
    )
    path = tmp_path / "decisions-host-1-0000.jsonl"
    # What a cut write re-queued whole used to leave: "b" torn, then "b" again, then "c".
    path.write_bytes(first + torn[:40] + torn + after)
    (tmp_path / "decisions-host-1-0001.jsonl").write_bytes(b"not json\n" + first)

    assert decisions_main(["--dir", str(tmp_path), "show", "c"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["record"]["request_id"] == "c"
    assert f"{path}:2:" in err
    assert f"{tmp_path / 'decisions-host-1-0001.jsonl'}:1:" in err
    assert "2 unreadable line(s) skipped" in err

    assert decisions_main(["--dir", str(tmp_path), "list"]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(line)["request_id"] for line in out.splitlines()] == ["a", "c", "a"]
    assert f"{path}:2:" in err


def test_record_files_are_private_and_never_written_through_a_link(
    tmp_path: Path, keys: tuple[Path, dict[str, dict[str, str]]]
) -> None:
    """The record directory is created 0700. A symbolic link planted at the record file's
    name is refused (ELOOP, counted; the answers stay 200), its target left untouched; once
    it is removed the kept records are written to a real file."""
    auth = keys[1]["alice"]
    created = tmp_path / "new" / "decisions"
    with TestClient(app=create_app(make_settings(created, keys[0]))) as client:
        assert client.post("/predict", content=BODY, headers=auth).status_code == 200
    assert stat.S_IMODE(created.stat().st_mode) == 0o700
    (record_file,) = created.iterdir()
    assert stat.S_IMODE(record_file.stat().st_mode) == 0o640

    directory = tmp_path / "planted"
    directory.mkdir(mode=0o700)
    victim = tmp_path / "victim.txt"
    victim.write_text("")
    link = directory / f"decisions-{socket.gethostname()}-{os.getpid()}-0000.jsonl"
    link.symlink_to(victim)
    with pytest.raises(OSError, match="is a symbolic link; decision records are never written"):
        LogFile(directory).size()
    with TestClient(app=create_app(make_settings(directory, keys[0]))) as client:
        answers = [client.post("/predict", content=BODY, headers=auth) for _ in range(3)]
        assert [answer.status_code for answer in answers] == [200] * 3
        wait_for_metric(client, auth, 'decision_log_write_errors_total{reason="ELOOP"}')
        link.unlink()
        wait_for_metric(client, auth, "decision_log_healthy 1.0")
    assert victim.read_text() == ""
    assert not link.is_symlink()
    recorded = [record["request_id"] for record in read_records(directory)]
    assert recorded == [answer.headers["x-request-id"] for answer in answers]


def test_an_existing_directory_open_to_others_is_left_as_is_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o777)
    private = tmp_path / "private"
    private.mkdir(mode=0o750)  # group read (a log shipper) is fine
    with caplog.at_level(logging.WARNING, logger="serving"):
        LogFile(private).size()
        assert not caplog.records
        LogFile(loose).size()
    (warning,) = caplog.records
    assert f"decision log directory {loose} has mode 777" in warning.getMessage()
    assert stat.S_IMODE(loose.stat().st_mode) == 0o777


def test_inputs_are_fingerprinted_with_hmac_when_a_hash_key_is_set(
    tmp_path: Path, keys: tuple[Path, dict[str, dict[str, str]]], caplog: pytest.LogCaptureFixture
) -> None:
    """With DIGITS_DECISION_HASH_KEY the record's input_sha256 is HMAC-SHA256 of the
    canonical input under that key (made in the encoder process), and says so; the key
    appears in no record and no log line."""
    auth = keys[1]["alice"]
    canonical = np.asarray([EXAMPLE_FLAT], dtype="<f4").tobytes()
    seen = {}
    for name, key in (("keyed", HASH_KEY), ("plain", None)):
        directory = tmp_path / name
        settings = make_settings(directory, keys[0], decision_hash_key=key)
        with TestClient(app=create_app(settings)) as client:
            assert client.post("/predict", content=BODY, headers=auth).status_code == 200
        (seen[name],) = read_records(directory)
        jsonschema.validate(seen[name], SCHEMA)
        (path,) = directory.iterdir()
        assert HASH_KEY not in path.read_text()
    expected = hmac.new(HASH_KEY.encode(), canonical, hashlib.sha256).hexdigest()
    assert (seen["keyed"]["input_hash"], seen["keyed"]["input_sha256"]) == ("hmac-sha256", expected)
    plain = hashlib.sha256(canonical).hexdigest()
    assert (seen["plain"]["input_hash"], seen["plain"]["input_sha256"]) == ("sha256", plain)
    assert HASH_KEY not in caplog.text


def test_the_hash_key_setting_is_checked_and_never_shown() -> None:
    settings = load_settings({"DIGITS_DECISION_HASH_KEY": HASH_KEY})
    assert settings.decision_hash_key_bytes == HASH_KEY.encode()
    assert HASH_KEY not in repr(settings)
    assert load_settings({}).decision_hash_key_bytes is None
    with pytest.raises(SettingsError, match="DIGITS_DECISION_HASH_KEY") as error:
        load_settings({"DIGITS_DECISION_HASH_KEY": "short-secret"})  # under 16 characters
    assert "short-secret" not in str(error.value)


CUT_WRITER = """
import json, resource, signal, sys
from pathlib import Path
from prometheus_client import Counter, Gauge
from serving.monitoring.access_metrics import AccessMetrics
from serving.decisions.writer import DecisionWriter
from tests.unit.test_decision_encoder import answered

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write(), not a killed process
directory, moved = Path(sys.argv[1]), sys.argv[2] == "moved"
metrics = AccessMetrics(Counter, Gauge)
writer = DecisionWriter(directory, metrics, 60.0, max_bytes=4096)
items = answered(0, 60)
for item in items[:3]:
    writer.submit(item)
writer.flush()
(path,) = directory.iterdir()
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 50, hard))
for item in items[3:]:
    writer.submit(item)
writer.flush()  # 50 bytes of the next line, then EFBIG
writer.flush()  # nothing more fits: EFBIG again, nothing written twice
cut = path.stat().st_size
if moved:
    path.rename(directory.parent / "rotated-away.jsonl")  # logrotate, while cut short
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
writer.close()
print(json.dumps({"cut": cut, "dropped": metrics.decisions_dropped._value.get()}))
"""


@pytest.mark.parametrize("moved", [False, True])
def test_a_cut_write_resumes_in_its_own_file_across_rotation(tmp_path: Path, moved: bool) -> None:
    """A real short write (RLIMIT_FSIZE) while 57 records wait, in 4 KiB files: the rest of
    the torn line goes to the file that holds its start (even past the rotation size), then
    rotation carries on; every line is whole and every record there once. If that file is
    moved away meanwhile, the rest of its line is dropped (one record, counted) and the new
    files start clean."""
    directory = tmp_path / "decisions"
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    completed = subprocess.run(
        [sys.executable, "-c", CUT_WRITER, str(directory), "moved" if moved else "kept"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    seen = json.loads(completed.stdout)
    files = sorted(directory.glob("decisions-*.jsonl"))
    assert len(files) >= 3  # rotated after the resume
    lines = [line for path in files for line in path.read_bytes().splitlines(keepends=True)]
    assert all(line.endswith(b"\n") for line in lines)
    ids = [json.loads(line)["request_id"] for line in lines]  # every line whole
    expected = [f"r{index}" for index in range(60)]
    if not moved:
        assert ids == expected
        assert seen["dropped"] == 0
        return
    away = (tmp_path / "rotated-away.jsonl").read_bytes()
    assert len(away) == seen["cut"]  # the moved file was not written again
    *whole, torn = away.splitlines(keepends=True)
    assert [json.loads(line)["request_id"] for line in whole] == expected[:3]
    assert not torn.endswith(b"\n")  # r3, cut short: the query tool skips it
    assert seen["dropped"] == 1
    assert ids == expected[4:]  # the new files start clean
