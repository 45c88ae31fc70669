"""A small HTTP client for the feedback tests: predictions with their request ids, feedback."""

from __future__ import annotations

import http.client
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from serving.access.keys import add_key
from tests.integration.conftest import RunningServer


class Keys:
    """One key per duty: predictions, labels, metrics."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.predict = add_key(path, "app", ["predict"])
        self.feedback = add_key(path, "labeller", ["feedback"])
        self.read = add_key(path, "monitor", ["read"])


def call(
    server: RunningServer,
    method: str,
    path: str,
    body: bytes | None = None,
    key: str | None = None,
    content_type: str = "application/json",
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    headers = {"Content-Type": content_type, "Connection": "close"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def predict(
    server: RunningServer, key: str, rows: Sequence[Sequence[float]]
) -> tuple[str, list[int]]:
    """The request id and labels of one ``/predict`` answer."""
    status, headers, body = call(
        server,
        "POST",
        "/predict",
        json.dumps({"samples": [list(row) for row in rows]}).encode(),
        key,
    )
    assert status == 200, body
    return headers["x-request-id"], json.loads(body)["labels"]


def feedback(
    server: RunningServer, key: str | None, request_id: str, labels: Sequence[int | None]
) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"request_id": request_id, "labels": list(labels)}).encode()
    status, _, answer = call(server, "POST", "/feedback", body, key)
    return status, json.loads(answer)


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of ``name`` with exactly ``labels`` (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        metric_name, _, rest = sample.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if metric_name == name and got == wanted:
            return float(value)
    return 0.0


def records(directory: Path, kind: str) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(directory.glob(f"{kind}-*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
