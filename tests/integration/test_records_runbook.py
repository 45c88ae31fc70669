"""The records procedures of docs/operations.md on records a real service wrote: exporting
labelled raw inputs for a retrain (the drift alert's runbook), and deleting records older
than the retention period."""

from __future__ import annotations

import csv
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO_ROOT
from tests.doc_examples import examples_for
from tests.integration.conftest import RunningServer, stop_server
from tests.integration.dvc_repo import tool_env
from tests.integration.feedback_client import Keys, feedback, predict
from tests.integration.redis_server import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
DAY = 24 * 3600


def labelled_records(
    serve: Callable[..., RunningServer], tmp_path: Path, redis_url: str
) -> tuple[Path, np.ndarray, np.ndarray]:
    """A records directory written by a real service with raw inputs and feedback: 3
    predictions of 4, 3 and 2 test digits; the first two labelled (one row left unknown)."""
    keys = Keys(tmp_path / "keys.jsonl")
    directory = tmp_path / "records"
    server = serve(
        {
            "DIGITS_AUTH": "api-key",
            "DIGITS_API_KEYS_FILE": str(keys.path),
            "DIGITS_DECISION_LOG_DIR": str(directory),
            "DIGITS_DECISION_LOG_INPUTS": "true",
            "DIGITS_DECISION_FLUSH_SECONDS": "0.05",
            "DIGITS_FEEDBACK": "on",
            "DIGITS_RATE_LIMIT_REDIS_URL": redis_url,
        },
        workers=1,
    )
    with np.load(REPO_ROOT / "data" / "prepared" / "test.npz") as data:
        images, truth = data["X"][:9], data["y"][:9]
    ids = []
    for start, stop in ((0, 4), (4, 7), (7, 9)):
        request_id, _ = predict(server, keys.predict, images[start:stop].tolist())
        ids.append(request_id)
    labels: list[int | None] = [int(label) for label in truth[:4]]
    assert feedback(server, keys.feedback, ids[0], labels)[0] == 202
    assert feedback(server, keys.feedback, ids[1], [int(truth[4]), None, int(truth[6])])[0] == 202
    assert stop_server(server) == 0  # every record written
    kept = [0, 1, 2, 3, 4, 6]  # the rows with a label
    return directory, images[kept], truth[kept]


def run_block(text: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", text],
        cwd=cwd,
        env={**tool_env(), "PYTHONPATH": str(REPO_ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_drift_runbook_exports_labelled_inputs(
    serve: Callable[..., RunningServer],
    tmp_path: Path,
    redis_server: RedisServer,
    request: pytest.FixtureRequest,
) -> None:
    _, images, truth = labelled_records(serve, tmp_path, redis_server.url)
    (tmp_path / "reports").symlink_to(REPO_ROOT / "reports")  # run from a checkout
    (block,) = examples_for(request.node.nodeid)
    ran = run_block(block.text, tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "feedback: 2 record(s), 6 labelled row(s)" in ran.stdout  # the quality report
    assert ran.stdout.split()[-1] == "6"  # the rows COPY wrote
    with (tmp_path / "collected.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    with (REPO_ROOT / "data" / "raw" / "digits.csv").open(encoding="utf-8") as handle:
        assert rows[0] == next(csv.reader(handle))  # the pipeline's columns, in its order
    got = sorted((tuple(float(v) for v in row[:64]), int(row[64])) for row in rows[1:])
    want = sorted(
        (tuple(float(v) for v in image), int(label))
        for image, label in zip(images, truth, strict=True)
    )
    assert got == want  # one row per labelled input, the pixels sent, the label given


def test_records_older_than_the_period_are_deleted(
    serve: Callable[..., RunningServer],
    tmp_path: Path,
    redis_server: RedisServer,
    request: pytest.FixtureRequest,
) -> None:
    directory, _, _ = labelled_records(serve, tmp_path, redis_server.url)
    written = sorted(directory.iterdir())
    decisions = [p for p in written if p.name.startswith("decisions-")]
    feedbacks = [p for p in written if p.name.startswith("feedback-")]
    assert decisions
    assert feedbacks
    now = time.time()
    old = [
        decisions[0].with_name("decisions-old-1-000001.jsonl"),
        feedbacks[0].with_name("feedback-old-1-000001.jsonl"),
    ]
    recent = [decisions[0].with_name("decisions-old-1-000002.jsonl")]
    other = directory / "notes-decisions-1.jsonl"
    for source, copy in ((decisions[0], old[0]), (feedbacks[0], old[1]), (decisions[0], recent[0])):
        copy.write_bytes(source.read_bytes())
    other.write_text("kept: not a record file\n", encoding="utf-8")
    for path in [*old, other]:
        os.utime(path, (now - 91 * DAY, now - 91 * DAY))
    os.utime(recent[0], (now - 89 * DAY, now - 89 * DAY))

    (block,) = examples_for(request.node.nodeid)
    ran = run_block(block.text, tmp_path, DIGITS_DECISION_LOG_DIR=str(directory))
    assert ran.returncode == 0, ran.stderr
    assert sorted(ran.stdout.split()) == sorted(str(path) for path in old)
    assert sorted(directory.iterdir()) == sorted([*written, *recent, other])

    listed = subprocess.run(
        ["python", "-m", "serving.decisions", "--dir", str(directory), "list"],
        env={**tool_env(), "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) == 3 * 2  # the service's 3 and the 89-day copy's 3
