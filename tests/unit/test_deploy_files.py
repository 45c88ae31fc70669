"""Static checks of the container and compose files (the image itself is tested in
tests/integration/test_container.py)."""

from __future__ import annotations

import os
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


# A command or file reference naming the build file the repository does not have.
STALE_BUILD_FILE = re.compile(
    r"(?:-f|--file)[ =]\S*Containerfile|dockerfile: *Containerfile|`Containerfile`"
    r"|hadolint +Containerfile|\.containerignore"
)


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())
    return document


def test_dockerfile_is_hadolint_clean() -> None:
    result = subprocess.run(
        [str(VENV_BIN / "hadolint"), "--failure-threshold", "style", "Dockerfile"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_defaults_to_the_official_slim_python_image() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm$", text, re.MULTILINE)
    assert "--require-hashes" in text
    assert "requirements/serving.lock" in text
    assert re.search(r"^USER \d+:\d+$", text, re.MULTILINE), "runtime user must be numeric"
    assert re.search(r"^HEALTHCHECK .*/ready", text, re.MULTILINE | re.DOTALL)
    assert "model.joblib" not in text


def test_one_build_file_and_one_ignore_file_serve_docker_and_podman() -> None:
    # docker build . reads ./Dockerfile; podman build . reads ./Containerfile if present,
    # else ./Dockerfile, and .containerignore if present, else .dockerignore.
    assert (REPO_ROOT / "Dockerfile").is_file()
    assert not (REPO_ROOT / "Dockerfile").is_symlink()
    assert not (REPO_ROOT / "Containerfile").exists()
    assert not (REPO_ROOT / ".containerignore").exists()
    patterns = ignore_patterns(".dockerignore")
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
    assert api["build"]["dockerfile"] == "Dockerfile"


def test_compose_stop_lets_requests_in_flight_finish() -> None:
    """``docker compose stop`` waits 10 s before SIGKILL by default; granian gives requests in
    flight up to its worker kill timeout (R13)."""
    from serving.__main__ import WORKER_KILL_TIMEOUT_SECONDS

    grace = compose()["services"]["api"]["stop_grace_period"]
    assert grace.endswith("s")
    assert int(grace[:-1]) > WORKER_KILL_TIMEOUT_SECONDS


def test_podman_compose_reads_the_compose_file_and_finds_the_build_file() -> None:
    result = subprocess.run(
        [str(VENV_BIN / "podman-compose"), "--file", "compose.yaml", "config"],
        cwd=REPO_ROOT,
        env={**os.environ, "DIGITS_REDIS_PASSWORD": "0123456789abcdef" * 4},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    resolved: dict[str, Any] = yaml.safe_load(result.stdout)
    build = resolved["services"]["api"]["build"]
    assert (Path(build["context"]) / build["dockerfile"]).resolve() == REPO_ROOT / "Dockerfile"
    assert set(resolved["services"]) == {"api", "redis", "prometheus"}


def test_documented_commands_name_no_build_file_that_does_not_exist() -> None:
    documents = [
        REPO_ROOT / "README.md",
        REPO_ROOT / "Dockerfile",
        REPO_ROOT / "compose.yaml",
        *(REPO_ROOT / "docs").glob("*.md"),
        *(REPO_ROOT / "deploy").rglob("*.sh"),
    ]
    stale = [
        f"{path.relative_to(REPO_ROOT)}: {match.group(0)}"
        for path in documents
        for match in STALE_BUILD_FILE.finditer(path.read_text("utf-8"))
    ]
    assert stale == []


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
    # Public production endpoints serve the API only, as the Kubernetes deployment does.
    assert (env["DIGITS_DOCS"], env["DIGITS_DEMO"]) == ("off", "off")
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}


def test_every_test_the_deployment_guide_cites_exists() -> None:
    text = (REPO_ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    cited = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", text)
    assert len({path for path, _ in cited}) >= 6
    missing = []
    for path, name in cited:
        source = REPO_ROOT / path
        if not source.is_file():
            missing.append(path)
        elif name and not re.search(rf"^def {name}\(", source.read_text("utf-8"), re.MULTILINE):
            missing.append(f"{path}::{name}")
    assert missing == []
