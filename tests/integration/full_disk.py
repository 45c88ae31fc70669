"""Test helper, run in its own process: the service under a real file-size limit (a full disk).

``python -m tests.integration.full_disk DIR KEYS_FILE KEY`` answers predictions (Litestar's
TestClient) while its decision-log file may not grow more than ``CUT_AFTER`` bytes past
one written record (``RLIMIT_FSIZE`` with ``SIGXFSZ`` ignored: ``write`` writes up to the
limit, then fails with EFBIG, as on a disk that fills mid-write), then lifts the limit
(space again) and prints what it saw as one JSON object. The limit is per process, so the
test process itself (its captured output, its temporary files) is never limited.
"""

from __future__ import annotations

import json
import resource
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from serving.app import create_app
from serving.schemas import EXAMPLE_FLAT
from serving.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
CUT_AFTER = 100  # bytes of the next line that fit: every record line is longer
TIMEOUT_SECONDS = 30.0


def wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def main(argv: list[str]) -> int:
    directory, keys, key = Path(argv[0]), argv[1], argv[2]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write(), not a killed process
    settings = Settings(
        lock_file_path=str(REPO_ROOT / "dvc.lock"),
        auth="api-key",
        api_keys_file=keys,
        decision_log_dir=str(directory),
        decision_flush_seconds=0.05,
    )
    auth = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    body = json.dumps({"samples": [EXAMPLE_FLAT]})
    result: dict[str, Any] = {}
    with TestClient(app=create_app(settings)) as client:

        def metrics() -> str:
            return str(client.get("/metrics", headers=auth).text)

        def files() -> list[Path]:
            return sorted(directory.glob("decisions-*.jsonl"))

        # Warm up: the record file and every metric file exist before the limit is set.
        answers = [client.post("/predict", content=body, headers=auth)]
        wait_for("the first record", lambda: bool(files()) and files()[0].stat().st_size > 0)
        metrics()
        (path,) = files()
        result["first_size"] = path.stat().st_size
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (result["first_size"] + CUT_AFTER, hard))
        answers += [client.post("/predict", content=body, headers=auth) for _ in range(5)]
        failing = 'decision_log_write_errors_total{reason="EFBIG"}'
        wait_for("the write error", lambda: failing in metrics())
        wait_for("decision_log_healthy 0", lambda: "decision_log_healthy 0.0" in metrics())
        answers.append(client.post("/predict", content=body, headers=auth))
        result["cut_size"] = path.stat().st_size  # the start of a torn line is on disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space again
        wait_for("decision_log_healthy 1", lambda: "decision_log_healthy 1.0" in metrics())
    result["ids"] = [answer.headers["x-request-id"] for answer in answers]
    result["statuses"] = [answer.status_code for answer in answers]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
