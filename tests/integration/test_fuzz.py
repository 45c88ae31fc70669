"""Schemathesis fuzzes every operation of the live service's own OpenAPI document, in each
access configuration the document must describe.

The real server (2 granian workers) is started as a subprocess; ``st run`` reads
``/docs/openapi.json`` from it and generates valid and invalid requests for every
documented operation (examples, coverage, fuzzing and stateful phases) with every check
the locked schemathesis has (``--checks all``): no server error, responses, status codes,
content types and headers as documented, schema-valid requests accepted
(positive_data_acceptance), schema-invalid ones refused (negative_data_rejection),
unsupported methods, missing or ignored authentication, and the rest. At least
``MIN_CASES`` cases per configuration, no failure. The document follows the running
configuration (serving/openapi_access.py), so each run checks the contract of its own:

- ``none``: started the README way (loopback, ``DIGITS_AUTH`` unset, default limits).
  Nothing asks for a credential, and the document says so: no security anywhere.
- ``api-key``: every request carries a key with every scope, so each operation is
  reached (``POST /feedback`` too: feedback and decision records on), and schemathesis
  checks that the operations the document secures refuse a missing or wrong key
  (test_access_walk.py walks every operation without, and with wrong, credentials). Row
  limits of 2 (``/explain``: 1): the document follows those too.

The accepted-status lists are schemathesis's defaults, widened by one status in exactly
two cases, each scoped to the operations it concerns (``[[operations]]`` sections):

(a) ``negative_data_rejection`` also counts 413 on the four operations with a row limit
    (``/predict``, ``/explain``, both OIP infer routes): a ``samples`` list longer than its
    ``maxItems``, or a tensor whose ``shape[0]`` is over its ``maximum``, is schema-invalid
    and refused with 413 (the documented answer for more rows than the limit), not 400.
(b) ``positive_data_acceptance`` also accepts 400 on the two OIP infer operations: an OIP
    ``data`` array must hold exactly ``prod(shape)`` values in a regular array, a relation
    between two fields JSON Schema cannot express (the schema states it in the
    description). Schemathesis draws ``shape`` and ``data`` independently, so a
    schema-valid request can break it, and the service must refuse it (400).

No hook rewrites generated cases. Positive inference requests still reach the model: the
documented examples (a flat FP32 and a nested UINT8 sample) seed generated cases, and the
test asserts that both infer routes answered many of them 200.

``--workers 1``: with two schemathesis threads, CPython 3.11's ``ast.parse`` (which
Hypothesis calls to describe strategies) can raise a spurious SystemError
(cpython gh-106905), a schemathesis runtime error unrelated to the service.

Not in the OpenAPI document, so not fuzzed here: ``GET /`` (demo page), the static asset
routes and ``/docs`` itself (HTML, no parameters); test_bad_inputs_http.py attacks those
with path traversal and wrong methods. ``/metrics`` is in the document (text/plain) and
fuzzed like the rest.
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
from schemathesis.config import ChecksConfig

from serving.access.keys import add_key
from tests.conftest import REPO_ROOT, VENV_BIN
from tests.integration.conftest import RunningServer, http_get

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]
MAX_EXAMPLES = 300
MIN_CASES = 2000
SEED = 20261128
INFER_ROUTES = ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer")
ROW_LIMITED = ("/predict", "/explain", *INFER_ROUTES)
DEFAULTS = ChecksConfig()
# (a) and (b) of the module docstring: schemathesis's default list and one status more.
# Both are met in each run, not only allowed: the test asserts 413s and infer 400s.
NEGATIVE_WITH_413 = [*DEFAULTS.negative_data_rejection.expected_statuses, "413"]
POSITIVE_WITH_400 = [*DEFAULTS.positive_data_acceptance.expected_statuses, "400"]
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

# (a) more rows than the limit is refused with 413
[[operations]]
include-path = {row_limited}
checks.negative_data_rejection.expected-statuses = {negative}

# (b) OIP data must hold prod(shape) values, which JSON Schema cannot state
[[operations]]
include-path = {infer}
checks.positive_data_acceptance.expected-statuses = {positive}
"""
CONFIGURATIONS = {
    "none": {"DIGITS_AUTH": ""},  # empty is unset: the README's loopback default
    "api-key": {
        "DIGITS_AUTH": "api-key",
        "DIGITS_MAX_ROWS": "2",
        "DIGITS_EXPLAIN_MAX_ROWS": "1",
        "DIGITS_FEEDBACK": "on",  # POST /feedback in the document (with decision records)
        "DIGITS_DOCS": "on",  # the document schemathesis reads (off by default with auth on)
    },
}


def schemathesis_config(name: str, version: str) -> str:
    return CONFIG.format(
        name=json.dumps(name),
        version=json.dumps(version),
        row_limited=json.dumps(list(ROW_LIMITED)),
        negative=json.dumps(NEGATIVE_WITH_413),
        infer=json.dumps(list(INFER_ROUTES)),
        positive=json.dumps(POSITIVE_WITH_400),
    )


def documented_operations(server: RunningServer, auth: str) -> list[str]:
    status, body = http_get(f"{server.base_url}/docs/openapi.json")
    assert status == 200
    spec = json.loads(body)
    paths = spec["paths"]
    # (a): every operation with a row limit documents its 413.
    for path in ROW_LIMITED:
        assert "413" in paths[path]["post"]["responses"], path
    secured = [
        f"{method.upper()} {path}"
        for path, item in paths.items()
        for method, operation in item.items()
        if operation.get("security")
    ]
    if auth == "none":  # the document promises no credential where none is asked for
        assert secured == []
        assert "securitySchemes" not in spec.get("components", {})
    else:
        assert "POST /predict" in secured
    return sorted(f"{method.upper()} {path}" for path, item in paths.items() for method in item)


def authorized(url: str, key: str | None) -> bytes:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
        return bytes(response.read())


@pytest.mark.parametrize("auth", list(CONFIGURATIONS))
def test_schemathesis_finds_no_failures(
    serve: Callable[..., RunningServer], tmp_path: Path, auth: str
) -> None:
    env = dict(CONFIGURATIONS[auth])
    key = None
    if auth == "api-key":
        keys = tmp_path / "keys.jsonl"
        key = add_key(keys, "fuzzer", ["predict", "explain", "read", "feedback"])
        env["DIGITS_API_KEYS_FILE"] = str(keys)
        env["DIGITS_DECISION_LOG_DIR"] = str(tmp_path / "records")
    server = serve(env, workers=2)
    operations = documented_operations(server, auth)
    for expected in ("POST /predict", "POST /explain", "GET /metrics", "GET /drift"):
        assert expected in operations
    assert ("POST /feedback" in operations) == (auth == "api-key")
    assert any(operation.startswith("POST /v2/") for operation in operations)
    model = json.loads(authorized(f"{server.base_url}/model", key))
    config = tmp_path / "schemathesis.toml"
    config.write_text(schemathesis_config(model["name"], model["version"]), encoding="utf-8")
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
    ]
    if key is not None:
        command += ["--header", f"Authorization: Bearer {key}"]
    result = subprocess.run(
        command,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
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
    print(f"schemathesis ({auth}): {cases} generated cases, {len(operations)} operations")
    assert cases >= MIN_CASES, output
    tested = re.search(r"Tested:\s+(\d+)", output)
    assert tested is not None, output
    assert int(tested.group(1)) == len(operations), output
    answered = post_answers(authorized(f"{server.base_url}/metrics", key).decode())
    # Generated inference requests reached the model, and (b)'s refusals happened.
    for route in INFER_ROUTES:
        assert answered.get((route, "200"), 0) >= 50, answered
        assert answered.get((route, "400"), 0) >= 50, answered
    assert sum(answered.get((route, "413"), 0) for route in ROW_LIMITED) > 0, answered  # (a)
    # The service survived the run.
    assert http_get(f"{server.base_url}/health")[0] == 200
    assert server.process.poll() is None


def post_answers(metrics: str) -> dict[tuple[str, str], float]:
    """``(route, status) -> count`` of POST answers on the row-limited routes, from /metrics."""
    answered: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "http_requests_total"
                and labels.get("method") == "POST"
                and labels.get("route") in ROW_LIMITED
            ):
                answered[(labels["route"], labels["status"])] = sample.value
    return answered
