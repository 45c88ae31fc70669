"""POST /feedback over HTTP on a real server: every answer, its record and its metrics.

One granian worker with API-key auth, decision records and feedback on; the index in a
private real ``redis-server`` (or, in the last tests, in the worker's memory).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from serving.feedback.record import SCHEMA_FILE
from serving.schemas import EXAMPLE_FLAT
from tests.integration.conftest import RunningServer
from tests.integration.feedback_client import Keys, call, feedback, metric, predict, records
from tests.integration.redis_server import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
SCHEMA = json.loads(SCHEMA_FILE.read_text())
TWO_ROWS: list[list[float]] = [[float(value) for value in EXAMPLE_FLAT], [0.0] * 64]


def start(
    serve: Callable[..., RunningServer], tmp_path: Path, redis_url: str | None, **env: str
) -> tuple[RunningServer, Keys, Path]:
    keys = Keys(tmp_path / "keys.jsonl")
    directory = tmp_path / "records"
    settings = {
        "DIGITS_AUTH": "api-key",
        "DIGITS_API_KEYS_FILE": str(keys.path),
        "DIGITS_DECISION_LOG_DIR": str(directory),
        "DIGITS_FEEDBACK": "on",
        **env,
    }
    if redis_url:
        settings["DIGITS_RATE_LIMIT_REDIS_URL"] = redis_url
    return serve(settings, workers=1), keys, directory


def eventually(check: Callable[[], bool], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def error_shape(answer: dict[str, Any], status: int, reason: str) -> None:
    assert answer["status"] == status
    assert answer["reason"] == reason
    assert answer["message"]
    assert answer["request_id"]


def test_feedback_labels_each_row_once_and_says_what_is_wrong(
    serve: Callable[..., RunningServer], tmp_path: Path, redis_server: RedisServer
) -> None:
    server, keys, directory = start(serve, tmp_path, redis_server.url)
    request_id, predicted = predict(server, keys.predict, TWO_ROWS)
    wrong = (predicted[1] + 1) % 10

    status, answer = feedback(server, keys.feedback, request_id, [predicted[0], None])
    assert status == 202, answer
    assert answer["matched"] is True
    assert answer["model_version"]
    assert (answer["matched_rows"], answer["new_rows"], answer["repeated_rows"]) == (1, 1, 0)
    assert answer["live_accuracy"]["scope"] == "service"
    assert answer["live_accuracy"]["labelled_rows"] == 1
    assert answer["live_accuracy"]["correct_rows"] == 1

    # JSON Schema's integer: the same label written 7.0 is the same label (idempotent).
    whole = json.dumps({"request_id": request_id, "labels": [float(predicted[0]), None]})
    status, _, raw = call(server, "POST", "/feedback", whole.encode(), keys.feedback)
    again = json.loads(raw)
    assert status == 202
    assert (again["new_rows"], again["repeated_rows"]) == (0, 1)
    status, more = feedback(server, keys.feedback, request_id, [predicted[0], wrong])
    assert status == 202
    assert (more["new_rows"], more["repeated_rows"]) == (1, 1)
    assert more["live_accuracy"]["labelled_rows"] == 2
    assert more["live_accuracy"]["accuracy"] == 0.5

    refusals: list[tuple[list[int | None], int, str]] = [
        ([(predicted[0] + 1) % 10, None], 409, "feedback_exists"),
        ([predicted[0]], 422, "label_count"),
        ([predicted[0], None, 3], 422, "label_count"),
        ([10, None], 422, "label_out_of_range"),
        ([-1, None], 422, "label_out_of_range"),
        ([None, None], 422, "no_labels"),
    ]
    for refusal, expected, reason in refusals:
        status, answer = feedback(server, keys.feedback, request_id, refusal)
        assert status == expected, (refusal, answer)
        error_shape(answer, expected, reason)
    status, answer = feedback(server, keys.feedback, "0" * 32, [1])
    assert status == 404
    error_shape(answer, 404, "unknown_request")

    for body, reason in [
        (b'{"request_id": "x", "labels": [1]', "malformed_json"),
        (b'{"request_id": 5, "labels": [1]}', "invalid_body"),
        (b'{"request_id": "x", "labels": ["7"]}', "invalid_body"),
        (b'{"request_id": "x", "labels": [1], "extra": 1}', "invalid_body"),
        (b'{"labels": [1]}', "invalid_body"),
        (b'{"request_id": "x", "labels": []}', "invalid_body"),
        (b'{"request_id": "x", "labels": [7.5]}', "invalid_body"),
        (b'{"request_id": "x", "labels": [true]}', "invalid_body"),
    ]:
        status, _, raw = call(server, "POST", "/feedback", body, keys.feedback)
        assert status == 400, body
        error_shape(json.loads(raw), 400, reason)
    status, _, raw = call(server, "POST", "/feedback", b"7", keys.feedback, "text/plain")
    assert status == 415
    assert call(server, "POST", "/feedback", b"{}", None)[0] == 401
    assert call(server, "POST", "/feedback", b"{}", keys.predict)[0] == 403  # not a labeller

    written = records(directory, "feedback")
    assert [record["labels"] for record in written] == [[predicted[0], None], [None, wrong]]
    for record in written:
        jsonschema.validate(record, SCHEMA)
        assert record["request_id"] == request_id
        assert record["matched"] is True
        assert record["predicted"] == predicted
        assert record["client_id"] == "labeller"
    # The decision record (written within DIGITS_DECISION_FLUSH_SECONDS) is never rewritten.
    assert eventually(lambda: len(records(directory, "decisions")) == 1)
    assert records(directory, "decisions")[0]["request_id"] == request_id

    _, _, page = call(server, "GET", "/metrics", None, keys.read)
    text = page.decode()
    version = written[0]["model_version"]
    assert metric(text, "model_feedback_rows_total", model_version=version, outcome="correct") == 1
    assert (
        metric(text, "model_feedback_rows_total", model_version=version, outcome="incorrect") == 1
    )
    rejected = {"feedback_exists": 1, "label_count": 2, "label_out_of_range": 2, "no_labels": 1,
                "unknown_request": 1, "invalid_body": 8}  # fmt: skip
    for reason, count in rejected.items():
        assert metric(text, "model_feedback_rejected_total", reason=reason) == count, reason


def test_an_unwritable_record_is_503_and_claims_no_row(
    serve: Callable[..., RunningServer], tmp_path: Path, redis_server: RedisServer
) -> None:
    server, keys, directory = start(serve, tmp_path, redis_server.url)
    first, labels_first = predict(server, keys.predict, TWO_ROWS)
    second, labels_second = predict(server, keys.predict, TWO_ROWS)
    assert feedback(server, keys.feedback, first, labels_first)[0] == 202
    (path,) = directory.glob("feedback-*.jsonl")
    path.rename(path.with_suffix(".moved"))
    path.symlink_to(tmp_path / "elsewhere")  # the log file never follows a link

    status, answer = feedback(server, keys.feedback, second, labels_second)
    assert status == 503
    error_shape(answer, 503, "feedback_not_stored")
    assert not (tmp_path / "elsewhere").exists()

    path.unlink()
    status, answer = feedback(server, keys.feedback, second, labels_second)
    assert status == 202
    assert answer["new_rows"] == 2
    assert [record["request_id"] for record in records(directory, "feedback")] == [second]


def test_redis_gone_is_503_index_unavailable(
    serve: Callable[..., RunningServer], tmp_path: Path, redis_server: RedisServer
) -> None:
    server, keys, directory = start(serve, tmp_path, redis_server.url)
    request_id, labels = predict(server, keys.predict, TWO_ROWS)
    redis_server.stop()
    status, answer = feedback(server, keys.feedback, request_id, labels)
    assert status == 503
    error_shape(answer, 503, "index_unavailable")
    assert records(directory, "feedback") == []


def test_without_redis_an_unresolved_id_is_kept_unmatched_and_feedback_is_rate_limited(
    serve: Callable[..., RunningServer], tmp_path: Path
) -> None:
    server, keys, directory = start(serve, tmp_path, None, DIGITS_RATE_LIMIT="4/minute")
    request_id, labels = predict(server, keys.predict, TWO_ROWS)
    status, answer = feedback(server, keys.feedback, request_id, labels)
    assert status == 202
    assert answer["matched"] is True
    assert answer["live_accuracy"]["scope"] == "worker"
    status, answer = feedback(server, keys.feedback, "decided-elsewhere", [4, None, 2])
    assert status == 202
    assert (answer["matched"], answer["model_version"], answer["new_rows"]) == (False, None, 2)
    unmatched = records(directory, "feedback")[-1]
    jsonschema.validate(unmatched, SCHEMA)
    assert unmatched["labels"] == [4, None, 2]
    assert unmatched["matched"] is False
    assert unmatched["predicted"] is None
    assert unmatched["ood"] is None

    assert feedback(server, keys.feedback, request_id, labels)[0] == 202  # 3rd and 4th
    assert feedback(server, keys.feedback, request_id, labels)[0] == 202
    status, answer = feedback(server, keys.feedback, request_id, labels)
    assert status == 429
    error_shape(answer, 429, "rate_limited")
    _, _, page = call(server, "GET", "/metrics", None, keys.read)
    assert metric(page.decode(), "model_feedback_unmatched_rows_total") == 2
