"""Decision records over Litestar's TestClient: content, schema, query tool, failing disks."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import numpy as np
import pytest
from litestar.testing import TestClient
from prometheus_client import Counter, Gauge

from serving.access.keys import add_key
from serving.app import create_app
from serving.decisions.__main__ import main as decisions_main
from serving.decisions.decided import Decided
from serving.decisions.packing import Pending
from serving.decisions.record import (
    SCHEMA_FILE,
    DecisionRecord,
    RecordModel,
    RecordRegistry,
    RecordTime,
    utc_time,
)
from serving.decisions.writer import DecisionWriter
from serving.monitoring.access_metrics import AccessMetrics
from serving.schemas import EXAMPLE_FLAT
from serving.settings import Settings
from tests.decision_files import decision
from tests.records import record_lines

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]
INFER = "/v2/models/digits-classifier/infer"
SCHEMA = json.loads(SCHEMA_FILE.read_text())


def read_records(directory: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(directory.glob("decisions-*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def make_settings(directory: Path, keys: Path, **extra: Any) -> Settings:
    return Settings(
        lock_file_path=str(REPO_ROOT / "dvc.lock"),
        auth="api-key",
        api_keys_file=str(keys),
        decision_log_dir=str(directory),
        decision_flush_seconds=0.05,
        **extra,
    )


@pytest.fixture
def key_file(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "keys.jsonl"
    return path, add_key(path, "auditor", ["predict", "explain", "read"])


def test_every_decision_is_recorded_with_inputs_that_hash_back(
    tmp_path: Path, key_file: tuple[Path, str]
) -> None:
    directory = tmp_path / "decisions"
    settings = make_settings(directory, key_file[0], decision_log_inputs=True)
    auth = {"authorization": f"Bearer {key_file[1]}", "content-type": "application/json"}
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 17, size=(3, 64)).tolist()
    answers = {}
    with TestClient(app=create_app(settings)) as client:
        for path, body in (
            ("/predict", {"samples": rows}),
            ("/explain", {"samples": [EXAMPLE_FLAT]}),
            (
                INFER,
                {
                    "inputs": [
                        {"name": "pixels", "shape": [3, 64], "datatype": "FP32", "data": rows}
                    ]
                },
            ),
        ):
            answer = client.post(path, content=json.dumps(body), headers=auth)
            assert answer.status_code == 200, answer.text
            answers[path] = (answer.headers["x-request-id"], answer.json())
        model = client.get("/model", headers=auth)  # not a decision
        assert model.status_code == 200
        served = model.json()["registry"]
        bad = client.post("/predict", content=b"{}", headers=auth)  # refused: no record
        assert bad.status_code == 400
    records = {record["request_id"]: record for record in read_records(directory)}
    assert len(records) == 3
    for record in records.values():
        jsonschema.validate(record, SCHEMA)
        assert record["client_id"] == "auditor"
        # the registry entry /model reports (null for an unregistered working copy)
        assert record["registry"] == (
            None if served is None else {k: served[k] for k in ("version", "stage", "commit")}
        )
        assert key_file[1] not in json.dumps(record)
        pixels = np.asarray(record["inputs"], dtype="<f4")
        assert hashlib.sha256(pixels.tobytes()).hexdigest() == record["input_sha256"]
    rid, predicted = answers["/predict"]
    record = records[rid]
    assert (record["route"], record["status"], record["rows"]) == ("/predict", 200, 3)
    assert record["labels"] == predicted["labels"]
    assert record["ood"] == predicted["ood"]
    assert record["ood_score"] == pytest.approx(predicted["ood_score"])
    top = [max(p) for p in predicted["probabilities"]]
    assert record["top_probability"] == pytest.approx(top, rel=1e-6)
    assert record["model_version"] == predicted["model_version"]
    assert record["inputs"] == rows
    infer_id, _ = answers[INFER]
    assert records[infer_id]["route"] == "/v2/models/{name}/infer"
    assert records[infer_id]["input_sha256"] == record["input_sha256"]  # same rows, same hash
    assert records[answers["/explain"][0]]["rows"] == 1


def test_inputs_are_left_out_by_default(tmp_path: Path, key_file: tuple[Path, str]) -> None:
    directory = tmp_path / "decisions"
    auth = {"authorization": f"Bearer {key_file[1]}", "content-type": "application/json"}
    with TestClient(app=create_app(make_settings(directory, key_file[0]))) as client:
        body = json.dumps({"samples": [EXAMPLE_FLAT]})
        assert client.post("/predict", content=body, headers=auth).status_code == 200
    (record,) = read_records(directory)
    jsonschema.validate(record, SCHEMA)
    assert "inputs" not in record
    expected = hashlib.sha256(np.asarray([EXAMPLE_FLAT], dtype="<f4").tobytes()).hexdigest()
    assert record["input_sha256"] == expected


def test_query_tool_across_rotated_files(
    tmp_path: Path, key_file: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "decisions"
    settings = make_settings(directory, key_file[0], decision_log_max_bytes=4096)
    auth = {"authorization": f"Bearer {key_file[1]}", "content-type": "application/json"}
    body = json.dumps({"samples": [EXAMPLE_FLAT] * 8})
    ids = []
    with TestClient(app=create_app(settings)) as client:
        for _ in range(40):
            answer = client.post("/predict", content=body, headers=auth)
            ids.append(answer.headers["x-request-id"])
            time.sleep(0.005)
    files = sorted(directory.glob("decisions-*.jsonl"))
    assert len(files) >= 3, files
    assert all(path.stat().st_size <= 4096 for path in files)
    assert decisions_main(["--dir", str(directory), "show", ids[0]]) == 0
    output = json.loads(capsys.readouterr().out)
    shown = output["record"]
    assert shown["request_id"] == ids[0]
    # This checkout's model matches no registered version: the chain stops at the model.
    assert output["chain"]["request_id"] == ids[0]
    assert output["chain"]["model_version"] == shown["model_version"]
    assert output["chain"]["registry_version"] is None
    assert "no GTO-registered version" in output["chain"]["note"]
    assert decisions_main(["--dir", str(directory), "show", "no-such-id"]) == 1
    capsys.readouterr()
    version = shown["model_version"]
    assert (
        decisions_main(
            [
                "--dir",
                str(directory),
                "list",
                "--since",
                "1h",
                "--client",
                "auditor",
                "--model-version",
                version,
            ]
        )
        == 0
    )
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [record["request_id"] for record in listed] == ids
    assert decisions_main(["--dir", str(directory), "list", "--client", "someone-else"]) == 0
    assert capsys.readouterr().out == ""
    assert decisions_main(["--dir", str(directory), "list", "--since", "2999-01-01T00:00:00"]) == 0
    assert capsys.readouterr().out == ""


def test_a_full_disk_never_fails_a_prediction(tmp_path: Path, key_file: tuple[Path, str]) -> None:
    """A real short write: the service runs in its own process (tests/integration/full_disk.py)
    whose log file may grow only 100 bytes past its first record (RLIMIT_FSIZE: write()
    writes those bytes, then fails with EFBIG, as on a disk that fills mid-write). Answers
    stay 200, the failure is counted and flagged; once the disk accepts writes again, the
    file holds every record exactly once, every line whole: the bytes already written are
    not written again, the torn line is completed in place."""
    directory = tmp_path / "decisions"
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "metrics")  # its own, unlimited before
    keys, key = key_file
    completed = subprocess.run(
        [sys.executable, "-m", "tests.integration.full_disk", str(directory), str(keys), key],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    seen = json.loads(completed.stdout)
    assert seen["statuses"] == [200] * 7
    assert seen["cut_size"] == seen["first_size"] + 100  # a partial write happened
    (path,) = sorted(directory.glob("decisions-*.jsonl"))
    text = path.read_bytes()
    assert text.endswith(b"\n")
    ids = [json.loads(line)["request_id"] for line in text.splitlines()]  # every line whole
    assert ids == seen["ids"]  # each record once, in order


def test_a_record_that_cannot_be_encoded_costs_only_itself(tmp_path: Path) -> None:
    """The writer thread encodes; one broken record is dropped, counted and logged, and the
    records around it (and the thread) carry on."""
    metrics = AccessMetrics(Counter, Gauge)
    writer = DecisionWriter(tmp_path, metrics, flush_seconds=60.0, max_bytes=1 << 20)
    row = np.zeros((1, 64), dtype=np.float32)
    good = Decided(row, np.array([1]), np.ones((1, 10), np.float32), np.array([False]), row[0, :1])
    broken = Decided(row, None, None, None, None)  # type: ignore[arg-type]
    dropped, written = metrics.decisions_dropped._value, metrics.decisions_written._value
    before = dropped.get(), written.get()  # per-process values (multiprocess mode)
    for rid, outcome in (("a", good), ("b", broken), ("c", good)):
        writer.submit(decision(rid, [1], version="v")._replace(outcome=outcome))
    writer.close()
    assert [record["request_id"] for record in read_records(tmp_path)] == ["a", "c"]
    assert (dropped.get() - before[0], written.get() - before[1]) == (1, 2)


def test_record_lines_of_a_chunk_are_the_records_built_field_by_field() -> None:
    """record_lines (a chunk converted together, positional structs, cached time prefix,
    one encode call) == each record built field by field, for any chunk split."""
    rng = np.random.default_rng(3)
    items: list[Pending] = []
    for index, n_rows in enumerate((1, 3, 1, 7, 2, 40)):
        samples: Any = rng.integers(0, 17, size=(n_rows, 64)).astype(np.float32)
        if index == 1:
            samples = np.asfortranarray(samples)  # not C-contiguous
        if index == 2:
            samples = samples.reshape(n_rows, 8, 8).astype(np.float64)  # another dtype and shape
        probabilities = rng.random((n_rows, 10)).astype(np.float32)
        outcome = Decided(
            samples,
            rng.integers(0, 10, size=n_rows),
            probabilities,
            rng.random(n_rows) > 0.5,
            rng.random(n_rows).astype(np.float32),
        )
        started = 1_764_480_000 + index * 0.4567 + (0.9999996 if index == 3 else 0.0)
        # index 3: an unregistered working copy; the others with and without a stage
        stage = "prod" if index % 2 else None
        entry = None if index == 3 else RecordRegistry("v1.2.0", stage, "ab" * 20)
        client_rid = None if index % 3 else f"audit-{index}"
        items.append(
            Pending(
                f"r{index}",
                client_rid,
                started,
                "c",
                "/predict",
                "POST",
                200,
                RecordModel("v", entry),
                0.0123,
                outcome,
            )
        )
    expected: dict[bool, list[bytes]] = {False: [], True: []}
    for with_inputs in (False, True):
        for item in items:
            (
                rid,
                client_rid,
                started,
                client,
                route,
                method,
                status,
                model,
                seconds,
                out,
            ) = item
            rows = np.ascontiguousarray(out.samples, dtype=np.float32).reshape(len(out.samples), -1)
            alone = DecisionRecord(
                request_id=rid,
                client_request_id=client_rid,
                time=utc_time(started),
                client_id=client,
                route=route,
                method=method,
                status=status,
                model_version=model.version,
                registry=model.registry,
                rows=int(rows.shape[0]),
                input_hash="sha256",
                input_sha256=hashlib.sha256(rows.astype("<f4").tobytes()).hexdigest(),
                labels=out.labels.tolist(),
                top_probability=out.probabilities.max(axis=1).tolist(),
                ood=out.ood.tolist(),
                ood_score=out.ood_score.tolist(),
                latency_ms=round(seconds * 1e6) / 1000,
                inputs=rows.tolist() if with_inputs else None,
            )
            expected[with_inputs].append(msgspec.json.encode(alone) + b"\n")
    for with_inputs in (False, True):
        for split in (1, 2, 4, len(items)):
            time_of = RecordTime()
            lines = [
                line
                for start in range(0, len(items), split)
                for line in record_lines(items[start : start + split], with_inputs, time_of)
            ]
            assert lines == expected[with_inputs]
        for line in expected[with_inputs]:
            jsonschema.validate(json.loads(line), SCHEMA)
    assert record_lines([], False, RecordTime()) == []
