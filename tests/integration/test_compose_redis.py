"""The Redis service of compose.yaml, started as the file says (its command, its environment,
its health check, as ``podman-compose config`` resolves them) with a real ``redis-server``:
it refuses a password that is not 32-128 hex characters, needs the password, keeps it off
its command line and environment, keeps its data across a restart, and the URL compose
gives the API authenticates for both the feedback index (redis-py) and the rate limits
(``limits``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import yaml
from limits.storage import storage_from_string

from tests.integration.conftest import free_port
from tests.integration.redis_server import shipped_command
from tests.unit.test_deploy_compose_records import PASSWORD, PASSWORD_VARIABLE, compose_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def services(password: str) -> dict[str, Any]:
    result = compose_config(**{PASSWORD_VARIABLE: password})
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = yaml.safe_load(result.stdout)["services"]
    return document


def environment(service: dict[str, Any], tmp_path: Path, port: int) -> dict[str, str]:
    """The service's environment with this host's directories and port; PATH to find
    redis-server and redis-cli."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.fail("redis-server and redis-cli are not installed (make system-deps)")
    env = {name: str(value) for name, value in service["environment"].items()}
    for name in ("REDIS_CONF_DIR", "REDIS_DATA_DIR"):
        (where := tmp_path / name.lower()).mkdir(exist_ok=True)
        env[name] = str(where)
    return {"PATH": os.environ["PATH"], **env, "REDIS_PORT": str(port)}


def healthy(service: dict[str, Any], env: dict[str, str]) -> bool:
    """The service's health check, run here."""
    kind, command = service["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    probe = subprocess.run(["sh", "-c", command], env=env, capture_output=True, timeout=10)
    return probe.returncode == 0


def compose_redis(
    service: dict[str, Any], env: dict[str, str]
) -> AbstractContextManager[subprocess.Popen[bytes]]:
    """The service's command, as the container runs it, until its health check passes."""
    return shipped_command(service["command"], env, lambda: healthy(service, env))


@pytest.mark.parametrize(
    "password",
    ["0123abcd" * 3, "0123ABCD" * 4, "0123abcd" * 3 + "not-hex!", "0" * 129],
    ids=["short", "upper-case", "not-hex", "too-long"],
)
def test_compose_redis_refuses_a_password_that_is_not_hex(tmp_path: Path, password: str) -> None:
    service = services(password)["redis"]
    env = environment(service, tmp_path, free_port())
    started = subprocess.run(
        service["command"], env=env, capture_output=True, text=True, timeout=15
    )
    assert started.returncode == 1
    assert started.stderr.startswith("digits-redis: ")
    assert "hex characters" in started.stderr
    assert not (tmp_path / "redis_conf_dir" / "auth.conf").exists()
    assert not healthy(service, env)


def test_compose_redis_needs_the_password_keeps_its_data_and_takes_the_api_url(
    tmp_path: Path,
) -> None:
    resolved = services(PASSWORD)
    service, port = resolved["redis"], free_port()
    env = environment(service, tmp_path, port)
    api_url = urlsplit(resolved["api"]["environment"]["DIGITS_RATE_LIMIT_REDIS_URL"])
    url = api_url._replace(netloc=f":{api_url.password}@127.0.0.1:{port}").geturl()
    with compose_redis(service, env) as process:
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()  # no password, no answer
        assert not healthy(service, {**env, "REDISCLI_AUTH": "f" * 64})
        assert (tmp_path / "redis_conf_dir" / "auth.conf").stat().st_mode & 0o777 == 0o600
        for exposed in ("cmdline", "environ"):  # neither ps nor /proc shows the password
            assert PASSWORD.encode() not in Path(f"/proc/{process.pid}/{exposed}").read_bytes()
        client = redis.Redis.from_url(url)  # the feedback index's client, the API's URL
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        client.set("feedback:probe", "kept", ex=600)
        client.close()
        assert storage_from_string(url).check()  # the rate limits' storage, the same URL
    assert process.returncode == 0  # a clean shutdown on SIGTERM
    assert list((tmp_path / "redis_data_dir").glob("appendonlydir/*.aof"))

    with compose_redis(service, env):  # restarted on its volume: the index is still there
        client = redis.Redis.from_url(url)
        assert client.get("feedback:probe") == b"kept"
        client.close()
