"""Static checks of the container and compose files (the image itself is tested in
tests/integration/test_container.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def ignore_patterns(name: str) -> list[str]:
    lines = (REPO_ROOT / name).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())
    return document


def test_containerfile_is_hadolint_clean() -> None:
    result = subprocess.run(
        [str(VENV_BIN / "hadolint"), "--failure-threshold", "style", "Containerfile"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_containerfile_defaults_to_the_official_slim_python_image() -> None:
    text = (REPO_ROOT / "Containerfile").read_text(encoding="utf-8")
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm$", text, re.MULTILINE)
    assert "--require-hashes" in text
    assert "requirements/serving.lock" in text
    assert re.search(r"^USER \d+:\d+$", text, re.MULTILINE), "runtime user must be numeric"
    assert re.search(r"^HEALTHCHECK .*/ready", text, re.MULTILINE | re.DOTALL)
    assert "model.joblib" not in text


def test_dockerignore_and_containerignore_agree() -> None:
    patterns = ignore_patterns(".containerignore")
    assert patterns == ignore_patterns(".dockerignore")
    assert patterns[0] == "*", "the build context is an allow-list"
    for kept_out in (".venv", ".git", "models/model.joblib", "data/prepared/*.npz"):
        assert kept_out in patterns


def test_base_image_script_is_valid_bash() -> None:
    script = REPO_ROOT / "deploy" / "podman" / "build-base-image.sh"
    result = subprocess.run(
        ["bash", "-n", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert script.stat().st_mode & 0o111, "script must be executable"


def test_compose_file_matches_the_compose_spec() -> None:
    result = subprocess.run(
        [
            str(VENV_BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            "compose.yaml",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_api_is_hardened_and_health_checked() -> None:
    api = compose()["services"]["api"]
    assert api["read_only"] is True
    assert any(mount.startswith("/tmp") for mount in api["tmpfs"])
    assert api["restart"] == "unless-stopped"
    assert api["cap_drop"] == ["ALL"]
    assert "/ready" in " ".join(api["healthcheck"]["test"])
    assert set(api["deploy"]["resources"]["limits"]) == {"cpus", "memory"}
    assert api["environment"]["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")
    assert api["build"]["dockerfile"] == "Containerfile"


def test_compose_prometheus_uses_the_project_config_and_scrapes_the_api() -> None:
    services = compose()["services"]
    prometheus = services["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    config = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    api_job = next(job for job in config["scrape_configs"] if job["job_name"] == "digits-api")
    assert api_job["static_configs"][0]["targets"] == ["api:8000"]
    assert "api" in services


def test_cloud_run_service_probes_ready_and_health_on_the_image_port() -> None:
    service = yaml.safe_load((REPO_ROOT / "deploy" / "cloudrun" / "service.yaml").read_text())
    assert service["apiVersion"] == "serving.knative.dev/v1"
    assert service["kind"] == "Service"
    container = service["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "IMAGE", "placeholder substituted by docs/deployment.md"
    assert container["ports"] == [{"name": "http1", "containerPort": 8000}]
    assert container["startupProbe"]["httpGet"] == {"path": "/ready", "port": 8000}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": 8000}
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}
