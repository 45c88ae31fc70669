"""Schemathesis fuzzes every operation of the live service's own OpenAPI document.

The real server (2 granian workers) is started as a subprocess; ``st run`` reads
``/docs/openapi.json`` from it and generates valid and invalid requests for every
documented operation (examples, coverage, fuzzing and stateful phases). It must find
no server error, no response that violates the documented schema, no undocumented
status code and no undocumented content type.

Not in the OpenAPI document, so not fuzzed here: ``GET /`` (demo page), the static asset
routes and ``/docs`` itself (HTML, no parameters); test_bad_inputs.py attacks those
with path traversal and wrong methods. ``/metrics`` is in the document (text/plain) and
fuzzed like the rest.

The server runs with API-key authentication, as in production: every request carries a
key with every scope, so each operation is reached (test_access_walk.py walks every
operation without, and with wrong, credentials).
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from serving.keys import add_key
from tests.conftest import VENV_BIN
from tests.integration.conftest import RunningServer, http_get

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]
CHECKS = (
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
    "content_type_conformance",
)
MAX_EXAMPLES = 60
MIN_CASES = 1000
SEED = 20261128
# Path parameters: the served model's real name/version most of the time, so inference is
# reached; the rest of the time schemathesis generates arbitrary strings (404 paths).
CONFIG = """\
[dictionaries.models]
values = [{name}]
[dictionaries.versions]
values = [{version}]
[parameters]
"path.name" = {{ dictionary = "models", probability = 0.8 }}
"path.version" = {{ dictionary = "versions", probability = 0.7 }}
"""


def documented_operations(server: RunningServer) -> list[str]:
    status, body = http_get(f"{server.base_url}/docs/openapi.json")
    assert status == 200
    paths = json.loads(body)["paths"]
    return sorted(f"{method.upper()} {path}" for path, item in paths.items() for method in item)


def test_schemathesis_finds_no_failures(
    serve: Callable[..., RunningServer], tmp_path: Path
) -> None:
    keys = tmp_path / "keys.jsonl"
    key = add_key(keys, "fuzzer", ["predict", "explain", "read"])
    server = serve(
        {
            "DIGITS_AUTH": "api-key",
            "DIGITS_API_KEYS_FILE": str(keys),
            "DIGITS_METRICS_AUTH": "true",
        },
        workers=2,
    )
    operations = documented_operations(server)
    for expected in ("POST /predict", "POST /explain", "GET /metrics", "GET /drift"):
        assert expected in operations
    assert any(operation.startswith("POST /v2/") for operation in operations)
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{server.base_url}/model", headers={"authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
        model = json.loads(response.read())
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        CONFIG.format(name=json.dumps(model["name"]), version=json.dumps(model["version"])),
        encoding="utf-8",
    )
    command = [
        str(VENV_BIN / "st"),
        "--config-file",
        str(config),
        "run",
        f"{server.base_url}/docs/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "2",
        "--request-timeout",
        "20",
        "--no-color",
        "--header",
        f"Authorization: Bearer {key}",
    ]
    result = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=360,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    counts = re.search(r"(\d+) generated, (\d+) passed", output)
    assert counts is not None, output
    cases = int(counts.group(1))
    assert int(counts.group(2)) == cases, output
    for problem in ("failure", "error"):
        assert not re.search(rf"\d+ {problem}s? ", output.rpartition("SUMMARY")[2]), output
    print(f"schemathesis: {cases} generated cases, {len(operations)} operations")
    assert cases >= MIN_CASES, output
    tested = re.search(r"Tested:\s+(\d+)", output)
    assert tested is not None, output
    assert int(tested.group(1)) == len(operations), output
    # The service survived the run.
    assert http_get(f"{server.base_url}/health")[0] == 200
    assert server.process.poll() is None
