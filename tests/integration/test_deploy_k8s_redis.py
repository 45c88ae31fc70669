"""The Redis of deploy/k8s/redis.yaml, started as its manifest says (its command, its
environment, its readiness probe) with a real ``redis-server``: it refuses to run without a
proper password, needs it, keeps its data across a restart, and the URL the API pods build
from the same Secret (deploy/k8s/deployment.yaml) authenticates for both the feedback index
(redis-py) and the rate limits (``limits``)."""

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
from tests.unit.test_deploy_k8s import K8S_DIR, api, api_container
from tests.unit.test_deploy_k8s_records import PASSWORD, container_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def redis_container() -> dict[str, Any]:
    documents = yaml.safe_load_all((K8S_DIR / "redis.yaml").read_text(encoding="utf-8"))
    workload = next(doc for doc in documents if doc["kind"] == "StatefulSet")
    container: dict[str, Any] = workload["spec"]["template"]["spec"]["containers"][0]
    return container


def environment(tmp_path: Path, port: int, password: str) -> dict[str, str]:
    """The container's environment with this host's paths and port, and ``password`` in the
    Secret; PATH to find redis-server and redis-cli."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.fail("redis-server and redis-cli are not installed (make system-deps)")
    env = container_env(redis_container())
    for name, where in (
        ("REDIS_CONF_DIR", tmp_path / "conf"),
        ("REDIS_DATA_DIR", tmp_path / "data"),
    ):
        where.mkdir(exist_ok=True)
        env[name] = str(where)
    env.update(REDIS_PASSWORD=password, REDISCLI_AUTH=password, REDIS_PORT=str(port))
    return {"PATH": os.environ["PATH"], **env}


def ready(env: dict[str, str]) -> bool:
    """The manifest's readiness probe, run here."""
    probe = redis_container()["readinessProbe"]["exec"]["command"]
    return (
        subprocess.run(probe, env=env, capture_output=True, timeout=10, check=False).returncode == 0
    )


def shipped_redis(env: dict[str, str]) -> AbstractContextManager[subprocess.Popen[bytes]]:
    """The manifest's command, as the container runs it, until its readiness probe passes."""
    return shipped_command(redis_container()["command"], env, lambda: ready(env))


@pytest.mark.parametrize(
    "password",
    ["", "0123abcd" * 3, "0123ABCD" * 4, "0123abcd" * 3 + "not hex!", "0" * 129],
    ids=["empty", "short", "upper-case", "not-hex", "too-long"],
)
def test_redis_refuses_to_start_without_a_proper_password(tmp_path: Path, password: str) -> None:
    port = free_port()
    env = environment(tmp_path, port, password)
    started = subprocess.run(
        redis_container()["command"], env=env, capture_output=True, text=True, timeout=15
    )
    assert started.returncode == 1
    assert started.stderr.startswith("digits-redis: ")
    assert "hex characters" in started.stderr
    assert not (tmp_path / "conf" / "auth.conf").exists()
    assert not ready(env)


def test_shipped_redis_needs_the_password_keeps_its_data_and_takes_the_api_url(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = environment(tmp_path, port, PASSWORD)
    api_url = urlsplit(container_env(api_container(api()))["DIGITS_RATE_LIMIT_REDIS_URL"])
    assert api_url.password == PASSWORD
    url = api_url._replace(netloc=f":{api_url.password}@127.0.0.1:{port}").geturl()
    with shipped_redis(env) as process:
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()  # no password, no answer
        assert not ready({**env, "REDISCLI_AUTH": "f" * 64})
        conf = tmp_path / "conf" / "auth.conf"
        assert conf.stat().st_mode & 0o777 == 0o600
        for exposed in ("cmdline", "environ"):  # neither ps nor /proc shows the password
            assert PASSWORD.encode() not in Path(f"/proc/{process.pid}/{exposed}").read_bytes()

        client = redis.Redis.from_url(url)  # the feedback index's client, the API's URL
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.config_get("maxmemory") == {"maxmemory": str(400 * 1024**2)}
        client.set("feedback:probe", "kept", ex=600)
        client.close()
        assert storage_from_string(url).check()  # the rate limits' storage, the same URL
    assert process.returncode == 0  # a clean shutdown on SIGTERM
    assert list((tmp_path / "data").glob("appendonlydir/*.aof"))

    with shipped_redis(env):  # the pod is back on its claim: the index is still there
        client = redis.Redis.from_url(url)
        assert client.get("feedback:probe") == b"kept"
        client.close()
