"""What compose and Cloud Run ship for the rate limits and decision records (issue 28, part 4:
risk register R28-R30), read as shipped.

compose.yaml: the API shares the rate limits and the feedback index through the compose
Redis, with the password compose refuses to start without; decision and feedback records
are on a named volume; Redis keeps its append-only file on another. The file is resolved
by ``podman-compose config`` (the operator's interpolation, not a re-implementation), and
the API's settings are loaded by the service's own settings code. Cloud Run: per-instance
rate limits, and no records (deploy/cloudrun/service.yaml says why).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from serving.settings import load_settings
from tests.conftest import REPO_ROOT, VENV_BIN

pytestmark = pytest.mark.unit
PASSWORD = "0123456789abcdef" * 4  # what the operator exports (openssl rand -hex 32)
PASSWORD_VARIABLE = "DIGITS_REDIS_PASSWORD"  # noqa: S105 - the name of the variable


def compose_config(**env: str) -> subprocess.CompletedProcess[str]:
    """``podman-compose config`` of the repository's compose.yaml, with ``env`` exported."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DIGITS_")}
    return subprocess.run(
        [str(VENV_BIN / "podman-compose"), "--file", "compose.yaml", "config"],
        cwd=REPO_ROOT,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def resolved() -> dict[str, Any]:
    result = compose_config(**{PASSWORD_VARIABLE: PASSWORD})
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = yaml.safe_load(result.stdout)
    return document


def named_volume(service: dict[str, Any], path: str, volumes: dict[str, Any]) -> str:
    """The named volume (not a host directory) holding ``path`` in ``service``."""
    mounts = {}
    for mount in service["volumes"]:
        source, target = str(mount).split(":")[:2]
        mounts[PurePosixPath(target)] = source
    holding = [where for where in mounts if PurePosixPath(path).is_relative_to(where)]
    assert holding, f"{path} is on no volume"
    source = mounts[max(holding, key=lambda where: len(where.parts))]
    assert source in volumes, f"{path} is on {source}, not a named volume"
    return source


def test_compose_refuses_to_start_without_the_redis_password() -> None:
    result = compose_config()
    assert result.returncode != 0
    assert f"{PASSWORD_VARIABLE} is missing a value" in result.stderr
    assert "openssl rand -hex 32" in result.stderr  # and says how to make one


def test_compose_api_shares_limits_through_redis_and_keeps_records_on_a_volume() -> None:
    document = resolved()
    services, volumes = document["services"], document["volumes"]
    api = services["api"]
    settings = load_settings(api["environment"])  # feedback on is refused without records
    assert settings.feedback == "on"
    assert settings.rate_limit is not None
    assert settings.explain_rate_limit is not None
    assert settings.rate_limit_redis_url is not None
    url = urlsplit(settings.rate_limit_redis_url)
    assert (url.scheme, url.hostname, url.password) == ("redis", "redis", PASSWORD)
    redis = services[url.hostname]
    assert url.port == int(redis["environment"]["REDIS_PORT"])
    assert "redis" in api["depends_on"]

    records = settings.decision_log_dir
    assert records is not None
    volume = named_volume(api, records, volumes)
    assert PurePosixPath(records) != PurePosixPath("/var/lib/digits")  # a directory made 0700
    assert api["user"] == "10001:10001"
    assert api["read_only"] is True  # the volume is the only persistent writable path
    # The service's user can write it: tests/integration/test_container.py runs the API
    # service of this file and finds its records on the volume.
    assert volume != named_volume(redis, redis["environment"]["REDIS_DATA_DIR"], volumes)


def test_compose_redis_needs_the_password_keeps_its_file_and_is_not_published() -> None:
    document = resolved()
    redis = document["services"]["redis"]
    env = redis["environment"]
    assert env["REDIS_PASSWORD"] == PASSWORD
    assert named_volume(redis, env["REDIS_DATA_DIR"], document["volumes"]) == "redis-data"
    assert any(mount.startswith(env["REDIS_CONF_DIR"] + ":") for mount in redis["tmpfs"])
    script = redis["command"][-1]
    assert "--appendonly yes" in script
    assert "requirepass" in script
    assert "--requirepass" not in script  # not on the command line, where ps shows it
    assert "ports" not in redis  # reached by the API on the project's network only
    assert redis["read_only"] is True
    assert redis["cap_drop"] == ["ALL"]


def cloud_run_env() -> dict[str, str]:
    service = yaml.safe_load((REPO_ROOT / "deploy/cloudrun/service.yaml").read_text("utf-8"))
    (container,) = service["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item["value"] for item in container["env"]}


def test_cloud_run_ships_per_instance_limits_and_no_records() -> None:
    """What the register says of Cloud Run: limits per instance, no decision records."""
    settings = load_settings(cloud_run_env())
    assert settings.rate_limit is not None
    assert settings.explain_rate_limit is not None
    assert settings.rate_limit_redis_url is None  # per instance, unless one is configured
    assert settings.decision_log_dir is None  # no persistent volume for records
    assert settings.feedback != "on"
