"""Schemathesis fuzzes every operation of the live service's own OpenAPI document.

The real server (2 granian workers) is started as a subprocess; ``st run`` reads
``/docs/openapi.json`` from it and generates valid and invalid requests for every
documented operation (examples, coverage, fuzzing and stateful phases) with every check
the locked schemathesis has (``--checks all``): no server error, responses, status codes,
content types and headers as documented, schema-valid requests accepted
(positive_data_acceptance), schema-invalid ones refused (negative_data_rejection),
unsupported methods, missing or ignored authentication, and the rest. At least
``MIN_CASES`` cases, no failure.

Two settings, each because the service and its contract say so, not to excuse a failure:

- ``negative_data_rejection`` also counts 413 as a refusal: more samples (or tensor rows)
  than ``DIGITS_MAX_ROWS``, or a body over ``DIGITS_MAX_BODY_BYTES``, is answered 413,
  which every inference operation documents. The other statuses are schemathesis's
  defaults.
- ``SCHEMATHESIS_HOOKS`` loads fuzz_hooks.py: the OIP inference request has two rules
  JSON Schema cannot state (``data`` holds ``prod(shape)`` values; no output named twice;
  both in the schema's descriptions). The hook makes every drawn case keep them, and
  changes nothing else; schemathesis re-validates the edited case, so the checks still
  judge it against the schema. Without it almost no schema-valid inference request is
  valid, and every invalid one is refused for its size before the service reads what the
  mutation broke. tests/unit/test_oip_schema.py checks both rules are enforced.

``--workers 1``: with two schemathesis threads, CPython 3.11's ``ast.parse`` (which
Hypothesis calls to describe strategies) can raise a spurious SystemError
(cpython gh-106905), a schemathesis runtime error unrelated to the service.

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
import os
import re
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving.keys import add_key
from tests.conftest import REPO_ROOT, VENV_BIN
from tests.integration.conftest import RunningServer, http_get

pytestmark = [pytest.mark.integration, pytest.mark.timeout(540)]
HOOKS = Path(__file__).resolve().parent / "fuzz_hooks.py"
MAX_EXAMPLES = 150
MIN_CASES = 2000
SEED = 20261128
INFER_ROUTES = ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer")
# Path parameters: the served model's real name/version most of the time, so inference is
# reached; the rest of the time schemathesis generates arbitrary strings (404 paths).
# negative_data_rejection: schemathesis's default statuses, and 413 (see the docstring).
CONFIG = """\
[dictionaries.models]
values = [{name}]
[dictionaries.versions]
values = [{version}]
[parameters]
"path.name" = {{ dictionary = "models", probability = 0.8 }}
"path.version" = {{ dictionary = "versions", probability = 0.7 }}
[checks.negative_data_rejection]
expected-statuses = [
  "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx",
]
"""


def documented_operations(server: RunningServer) -> list[str]:
    status, body = http_get(f"{server.base_url}/docs/openapi.json")
    assert status == 200
    paths = json.loads(body)["paths"]
    # 413 counts as a refusal (CONFIG) because every operation that takes a body documents it.
    for path, item in paths.items():
        if "post" in item:
            assert "413" in item["post"]["responses"], path
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
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--no-color",
        "--header",
        f"Authorization: Bearer {key}",
    ]
    result = subprocess.run(
        command,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS), "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=480,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    counts = re.search(r"(\d+) generated, (\d+) passed", output)
    assert counts is not None, output
    cases = int(counts.group(1))
    assert int(counts.group(2)) == cases, output
    summary = output.rpartition("SUMMARY")[2]
    for problem in ("failure", "error"):
        assert not re.search(rf"\d+ {problem}s? ", summary), output
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in summary, output
    scenarios = re.search(r"Scenarios:\s+(\d+)", output)
    assert scenarios is not None, output
    assert int(scenarios.group(1)) > 0, output
    print(f"schemathesis: {cases} generated cases, {len(operations)} operations")
    assert cases >= MIN_CASES, output
    tested = re.search(r"Tested:\s+(\d+)", output)
    assert tested is not None, output
    assert int(tested.group(1)) == len(operations), output
    # Generated inference requests reached the model (the hook keeps them consistent).
    answered = infer_answers(server, key)
    for route in INFER_ROUTES:
        assert answered.get((route, "200"), 0) >= 50, answered
        assert answered.get((route, "400"), 0) >= 50, answered
    # The service survived the run.
    assert http_get(f"{server.base_url}/health")[0] == 200
    assert server.process.poll() is None


def infer_answers(server: RunningServer, key: str) -> dict[tuple[str, str], float]:
    """``(route, status) -> count`` of POST answers on the inference routes, from /metrics."""
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{server.base_url}/metrics", headers={"authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    answered: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "http_requests_total"
                and labels.get("method") == "POST"
                and labels.get("route") in INFER_ROUTES
            ):
                answered[(labels["route"], labels["status"])] = sample.value
    return answered
