"""Debian's real Prometheus, with the project's config and alert rules, scraping the real
service (`python -m serving`) on loopback."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from serving.access.keys import add_key
from serving.lineage import REQUIRED_ARTIFACTS
from tests.conftest import REPO_ROOT
from tests.integration.conftest import RunningServer, free_port, start_server, stop_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
JOB = "digits-api"
WAIT_SECONDS = 45.0
SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")
# Artifacts the service verifies against dvc.lock (copied for the tampered instance).
SERVED = REQUIRED_ARTIFACTS


@dataclass(frozen=True)
class Stack:
    prometheus_url: str
    healthy: RunningServer
    tampered: RunningServer
    client_key: str  # a predict-scoped API key


def render_config(
    targets: list[str], rules_dir: Path, self_target: str, token_file: Path
) -> dict[str, Any]:
    """The project's prometheus.yml with loopback targets, a 1 s scrape/eval interval and
    the bearer token file at ``token_file``."""
    config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    config["global"]["scrape_timeout"] = "1s"
    config["rule_files"] = [str(rules_dir / Path(pattern).name) for pattern in config["rule_files"]]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs[JOB]["static_configs"][0]["targets"] == ["api:8000"]
    jobs[JOB]["static_configs"][0]["targets"] = targets
    assert jobs[JOB]["authorization"]["credentials_file"] == "/run/secrets/digits-metrics-token"
    jobs[JOB]["authorization"]["credentials_file"] = str(token_file)
    jobs["prometheus"]["static_configs"][0]["targets"] = [self_target]
    return config


def tampered_project(root: Path) -> Path:
    """A copy of the locked artifacts whose model.onnx no longer matches dvc.lock."""
    root.mkdir()
    shutil.copy2(REPO_ROOT / "dvc.lock", root / "dvc.lock")
    for relative in SERVED:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / relative, root / relative)
    with (root / "models" / "model.onnx").open("ab") as handle:
        handle.write(b"tampered")
    return root / "dvc.lock"


def wait_for(description: str, check: Callable[[], bool], logs: Callable[[], str]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {description}\n{logs()}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus not found: run `make system-deps` (Debian package prometheus)")
    work = tmp_path_factory.mktemp("prometheus")
    # As in compose: auth on, and Prometheus scrapes with a read-scoped key.
    keys = work / "keys.jsonl"
    token_file = work / "metrics-token"
    token_file.write_text(add_key(keys, "prometheus", ["read"]) + "\n", encoding="utf-8")
    client_key = add_key(keys, "client", ["predict"])
    auth = {"DIGITS_AUTH": "api-key", "DIGITS_API_KEYS_FILE": str(keys)}
    # As the Kubernetes manifests ship it: decision records and feedback on, so the series of
    # the live-accuracy rules are exported (at 0 until labels arrive).
    records = {"DIGITS_DECISION_LOG_DIR": str(work / "records"), "DIGITS_FEEDBACK": "on"}
    healthy = start_server({**auth, **records}, workers=2, log_dir=work / "logs")
    tampered = None
    process = None
    try:
        tampered = start_server(
            {**auth, "DIGITS_LOCK_FILE": str(tampered_project(work / "tampered"))},
            workers=1,
            log_dir=work / "logs",
            expect_ready=False,
        )
        port = free_port()
        config = render_config(
            [f"127.0.0.1:{healthy.port}", f"127.0.0.1:{tampered.port}"],
            PROMETHEUS_DIR / "rules",
            f"127.0.0.1:{port}",
            token_file,
        )
        config_path = work / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        log_path = work / "prometheus.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={work / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            assert process is not None
            if process.poll() is not None:
                pytest.fail(f"prometheus exited:\n{log_path.read_text()}")
            try:
                return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for("prometheus /-/ready", ready, log_path.read_text)
        yield Stack(url, healthy, tampered, client_key)
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
        if tampered is not None:
            stop_server(tampered)
        stop_server(healthy)


def api(stack: Stack, path: str, **params: str) -> Any:
    response = httpx.get(f"{stack.prometheus_url}/api/v1/{path}", params=params, timeout=5)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]


def query(stack: Stack, promql: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = api(stack, "query", query=promql)["result"]
    return result


def locked_version() -> str:
    lock = yaml.safe_load((REPO_ROOT / "dvc.lock").read_text(encoding="utf-8"))
    outs = lock["stages"]["train"]["outs"]
    md5: str = next(out["md5"] for out in outs if out["path"] == "models/model.onnx")
    return md5[:12]


def no_logs() -> str:
    return ""


def test_both_service_targets_are_up(stack: Stack) -> None:
    def all_up() -> bool:
        targets = api(stack, "targets", state="active")["activeTargets"]
        health = {t["scrapeUrl"]: t["health"] for t in targets if t["labels"]["job"] == JOB}
        return len(health) == 2 and set(health.values()) == {"up"}

    wait_for("both digits-api targets up", all_up, no_logs)
    up = query(stack, f'up{{job="{JOB}"}}')
    assert sorted(float(series["value"][1]) for series in up) == [1.0, 1.0]


def test_service_series_arrive_with_the_locked_model_version(stack: Stack) -> None:
    healthy = f"127.0.0.1:{stack.healthy.port}"
    with httpx.Client(
        base_url=stack.healthy.base_url,
        headers={"authorization": f"Bearer {stack.client_key}"},
        timeout=10,
    ) as client:
        for _ in range(5):
            response = client.post("/predict", json={"samples": [[8.0] * 64, [0.0] * 64]})
            assert response.status_code == 200, response.text

    def predictions_scraped() -> bool:
        series = query(
            stack,
            f'sum(http_requests_total{{job="{JOB}", instance="{healthy}", route="/predict"}})',
        )
        return bool(series) and float(series[0]["value"][1]) >= 5

    wait_for("/predict requests in http_requests_total", predictions_scraped, no_logs)
    info = query(stack, f'model_info{{job="{JOB}", instance="{healthy}"}}')
    assert [series["metric"]["version"] for series in info] == [locked_version()]

    def readiness() -> dict[str, float]:
        ready = query(stack, f'model_ready{{job="{JOB}"}}')
        return {series["metric"]["instance"]: float(series["value"][1]) for series in ready}

    # Each target is scraped on its own schedule: wait until both have been.
    wait_for("model_ready from both targets", lambda: len(readiness()) == 2, no_logs)
    assert readiness() == {healthy: 1.0, f"127.0.0.1:{stack.tampered.port}": 0.0}
    rows = query(stack, f'model_rows_per_request_count{{job="{JOB}", instance="{healthy}"}}')
    assert rows
    assert query(stack, f'http_request_duration_seconds_bucket{{job="{JOB}", route="/predict"}}')


def test_every_series_the_alert_rules_select_is_exposed(stack: Stack) -> None:
    """The rules' metric names match what the running service really exports (a typo
    would make an alert silently never fire)."""
    exported = {
        series["metric"]["__name__"]
        for series in query(stack, f'count by (__name__) ({{job="{JOB}"}})')
    }
    rules = [rule for group in api(stack, "rules")["groups"] for rule in group["rules"]]
    selected = {name for rule in rules for name in SELECTOR.findall(rule["query"])}
    assert {
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "model_ready",
    } <= selected
    missing = selected - exported - {"up"}
    if not any(name.startswith("input_drift_") for name in exported):
        # Drift gauges arrive with the drift-monitoring issue; until then only they may be absent.
        missing = {name for name in missing if not name.startswith("input_drift_")}
    assert not missing, f"rules select series the service does not export: {sorted(missing)}"


def test_rules_load_and_evaluate_without_errors(stack: Stack) -> None:
    def evaluated() -> bool:
        rules = [rule for group in api(stack, "rules")["groups"] for rule in group["rules"]]
        return all(rule.get("lastEvaluation", "").startswith("20") for rule in rules)

    wait_for("one evaluation of every rule", evaluated, no_logs)
    rules = [rule for group in api(stack, "rules")["groups"] for rule in group["rules"]]
    names = {rule["name"] for rule in rules}
    assert {"DigitsHighErrorRatio", "DigitsHighLatencyP99", "DigitsModelNotReady"} <= names
    assert {"DigitsInputDrift", "DigitsApiDown"} <= names
    for rule in rules:
        assert rule["health"] == "ok", rule


def test_model_not_ready_alert_goes_pending_only_for_the_tampered_instance(stack: Stack) -> None:
    tampered = f"127.0.0.1:{stack.tampered.port}"

    def alerting() -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = api(stack, "alerts")["alerts"]
        return [alert for alert in alerts if alert["labels"]["alertname"] == "DigitsModelNotReady"]

    wait_for("DigitsModelNotReady pending", lambda: bool(alerting()), no_logs)
    alerts = alerting()
    assert [alert["labels"]["instance"] for alert in alerts] == [tampered]
    assert alerts[0]["state"] in {"pending", "firing"}
    others = {alert["labels"]["alertname"] for alert in api(stack, "alerts")["alerts"]}
    assert others == {"DigitsModelNotReady"}
