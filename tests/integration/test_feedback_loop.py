"""Ground truth closes the loop: 2 workers, a real Redis, predictions, feedback, live accuracy.

300 test digits are predicted one request (one connection) at a time, so both workers
decide; feedback for 200 of them follows, 40 with a deliberately wrong label, again spread
over both workers. Every feedback must resolve its decision whichever worker decided it
(the index in Redis), the counters must read 160 correct and 40 incorrect, and the query
tool must report accuracy 0.80 with its interval and the verdict "degraded". A SIGTERM in
the middle of a feedback stream must lose no accepted feedback.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.integration.conftest import RunningServer
from tests.integration.feedback_client import Keys, call, feedback, metric, predict, records
from tests.integration.redis_server import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
REPO_ROOT = Path(__file__).resolve().parents[2]


def digits(count: int) -> list[list[float]]:
    with np.load(REPO_ROOT / "data" / "prepared" / "test.npz") as data:
        return [[float(value) for value in row] for row in data["X"][:count]]


def start(
    serve: Callable[..., RunningServer], tmp_path: Path, redis_url: str
) -> tuple[RunningServer, Keys, Path]:
    keys = Keys(tmp_path / "keys.jsonl")
    directory = tmp_path / "records"
    server = serve(
        {
            "DIGITS_AUTH": "api-key",
            "DIGITS_API_KEYS_FILE": str(keys.path),
            "DIGITS_DECISION_LOG_DIR": str(directory),
            "DIGITS_DECISION_FLUSH_SECONDS": "0.05",
            "DIGITS_FEEDBACK": "on",
            "DIGITS_RATE_LIMIT_REDIS_URL": redis_url,
        },
        workers=2,
    )
    return server, keys, directory


def pid_of(path: Path) -> str:
    """The worker pid in ``<kind>-<host>-<pid>-<seq>.jsonl``."""
    return path.name.rsplit("-", 2)[1]


def by_pid(directory: Path, kind: str) -> dict[str, str]:
    """request id (decisions) or feedback id (feedback) -> pid of the worker that wrote it."""
    key = "request_id" if kind == "decisions" else "feedback_id"
    return {
        json.loads(line)[key]: pid_of(path)
        for path in directory.glob(f"{kind}-*.jsonl")
        for line in path.read_text().splitlines()
        if line.strip()
    }


def test_feedback_from_any_worker_gives_live_accuracy_per_version(
    serve: Callable[..., RunningServer], tmp_path: Path, redis_server: RedisServer
) -> None:
    server, keys, directory = start(serve, tmp_path, redis_server.url)
    decided = [predict(server, keys.predict, [row]) for row in digits(300)]
    accepted = []
    for number, (request_id, (label,)) in enumerate(decided[:200]):
        truth = (label + 1) % 10 if number < 40 else label
        status, answer = feedback(server, keys.feedback, request_id, [truth])
        assert status == 202, answer
        assert answer["matched"] is True, answer  # resolved whichever worker decided
        assert answer["new_rows"] == 1
        accepted.append(answer)
    version = accepted[0]["model_version"]
    assert accepted[-1]["live_accuracy"] == {
        "model_version": version,
        "labelled_rows": 200,
        "correct_rows": 160,
        "accuracy": 0.8,
        "scope": "service",
    }
    _, _, page = call(server, "GET", "/metrics", None, keys.read)
    text = page.decode()
    assert (
        metric(text, "model_feedback_rows_total", model_version=version, outcome="correct") == 160
    )
    assert (
        metric(text, "model_feedback_rows_total", model_version=version, outcome="incorrect") == 40
    )
    assert metric(text, "model_feedback_unmatched_rows_total") == 0
    server.process.send_signal(signal.SIGTERM)  # a graceful stop: every record written
    assert server.process.wait(timeout=60) == 0

    deciders, takers = by_pid(directory, "decisions"), by_pid(directory, "feedback")
    assert len(deciders) == 300
    assert len(takers) == 200
    assert len(set(deciders.values())) == 2, "both workers decided"
    assert len(set(takers.values())) == 2, "both workers took feedback"
    crossed = sum(
        deciders[answer["request_id"]] != takers[answer["feedback_id"]] for answer in accepted
    )
    assert crossed > 0, "no feedback reached another worker than the deciding one"

    quality = subprocess.run(
        [sys.executable, "-m", "serving.decisions", "--dir", str(directory), "quality",
         "--format", "json", "--metrics", str(REPO_ROOT / "reports" / "metrics.json")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert quality.returncode == 0, quality.stderr
    report = json.loads(quality.stdout)
    print(json.dumps(report, indent=2))
    (row,) = [entry for entry in report["versions"] if entry["model_version"] == version]
    assert row["decisions"] == 300
    assert row["labelled_rows"] == 200
    assert row["accuracy"] == pytest.approx(0.8)
    low, high = row["accuracy_interval"]
    assert 0.73 < low < 0.8 < high < 0.86  # Wilson 95 % of 160/200: 0.739..0.849
    assert row["verdict"] == "degraded"


def test_a_sigterm_mid_stream_loses_no_accepted_feedback(
    serve: Callable[..., RunningServer], tmp_path: Path, redis_server: RedisServer
) -> None:
    server, keys, directory = start(serve, tmp_path, redis_server.url)
    decided = [predict(server, keys.predict, [row]) for row in digits(120)]
    answered: list[tuple[int, str | None]] = []
    lock = threading.Lock()
    some_accepted = threading.Event()

    def label(share: list[tuple[str, list[int]]]) -> None:
        for request_id, labels in share:
            try:
                status, answer = feedback(server, keys.feedback, request_id, labels)
            except OSError:  # the server stopped listening: not accepted
                status, answer = 0, {}
            with lock:
                answered.append((status, answer.get("feedback_id")))
                if sum(code == 202 for code, _ in answered) >= 30:
                    some_accepted.set()

    threads = [threading.Thread(target=label, args=(decided[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    assert some_accepted.wait(60)
    server.process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(60)
    assert server.process.wait(timeout=60) == 0

    accepted = {feedback_id for status, feedback_id in answered if status == 202 and feedback_id}
    written = {record["feedback_id"] for record in records(directory, "feedback")}
    assert len(accepted) >= 30
    assert accepted <= written, f"accepted but not on disk: {sorted(accepted - written)}"
    assert len(answered) == 120
