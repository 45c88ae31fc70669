"""The service image, built and run for real with podman.

Builds the Dockerfile (deploy/podman/build-image.sh: runc via the project-local
containers.conf, the official slim base or a local debootstrap base, the host CA for
pip), runs it like production (read-only root, tmpfs /tmp, no capabilities, two
workers) and checks what a user relies on.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import yaml

from serving.access.keys import add_key
from serving.lineage import REFERENCE_STATS_JSON, REQUIRED_ARTIFACTS
from tests.conftest import REPO_ROOT, VENV_BIN
from tests.integration.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]

IMAGE = os.environ.get("DIGITS_TEST_IMAGE", "localhost/digits-api:test")
CONTAINERS_CONF = REPO_ROOT / "deploy" / "podman" / "containers.conf"
READY_TIMEOUT_SECONDS = 60.0
VERSION_LENGTH = 12


@dataclass(frozen=True)
class RunningContainer:
    name: str
    base_url: str
    seconds_to_ready: float
    auth: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class KeysFile:
    path: Path
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"}


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> KeysFile:
    """An API keys file (hashes only) the container's user (uid 10001) can read."""
    path = tmp_path_factory.mktemp("container-keys") / "api-keys.jsonl"
    key = add_key(path, "container-test", ["predict", "explain", "read"])
    path.chmod(0o644)
    path.parent.chmod(0o755)
    return KeysFile(path, key)


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args],
        env=podman_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def locked_model_md5() -> str:
    """md5 of models/model.onnx as recorded by the train stage in dvc.lock."""
    lock = yaml.safe_load((REPO_ROOT / "dvc.lock").read_text(encoding="utf-8"))
    outs = lock["stages"]["train"]["outs"]
    md5: str = next(out["md5"] for out in outs if out["path"] == "models/model.onnx")
    return md5


@pytest.fixture(scope="module")
def image() -> str:
    """Build (or reuse cached layers of) the service image."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed: this machine cannot build or run containers")
    result = subprocess.run(
        [str(REPO_ROOT / "deploy" / "podman" / "build-image.sh"), IMAGE],
        env=podman_env(),
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert result.returncode == 0, f"image build failed:\n{result.stdout[-4000:]}{result.stderr}"
    return IMAGE


def wait_until_ready(base_url: str, name: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    last = "no response"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{base_url}/ready", timeout=2)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text}"
        except httpx.TransportError as exc:
            last = repr(exc)
        state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
        if state not in {"created", "running"}:
            break
        time.sleep(0.1)
    logs = podman("logs", name)
    pytest.fail(f"container not ready ({last}); logs:\n{logs.stdout}{logs.stderr}")


@pytest.fixture(scope="module")
def container(image: str, keys_file: KeysFile) -> Iterator[RunningContainer]:
    """Run the image like production; always removed afterwards."""
    name = f"digits-test-{os.getpid()}-{secrets.token_hex(3)}"
    started = time.monotonic()
    try:
        run = podman(
            "run",
            "--detach",
            "--name",
            name,
            "--read-only",
            "--tmpfs",
            "/tmp:rw,noexec,nosuid,size=64m",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--env",
            "DIGITS_WORKERS=2",
            # The image's DIGITS_AUTH=api-key reads the keys file at its default path.
            "--volume",
            f"{keys_file.path}:/run/secrets/digits-api-keys:ro",
            "--publish",
            "127.0.0.1::8000",
            image,
        )
        assert run.returncode == 0, run.stderr
        port = podman("port", name, "8000/tcp")
        assert port.returncode == 0, port.stderr
        host_port = port.stdout.strip().splitlines()[0]
        base_url = f"http://{host_port}"
        wait_until_ready(base_url, name)
        yield RunningContainer(name, base_url, time.monotonic() - started, keys_file.auth)
    finally:
        podman("rm", "--force", "--time", "5", name)


def exec_in(container: RunningContainer, *command: str) -> subprocess.CompletedProcess[str]:
    return podman("exec", container.name, *command)


def test_image_has_oci_labels_and_a_ready_healthcheck(image: str) -> None:
    inspected = podman("image", "inspect", image)
    assert inspected.returncode == 0, inspected.stderr
    inspection: dict[str, Any] = json.loads(inspected.stdout)[0]
    config = inspection["Config"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == locked_model_md5()[:VERSION_LENGTH]
    assert labels["org.opencontainers.image.source"]
    # The commit checked out at build time: HEAD itself or, if someone committed since,
    # one of its ancestors.
    revision = labels["org.opencontainers.image.revision"]
    assert len(revision) == 40, revision
    ancestor = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "merge-base", "--is-ancestor", revision, "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ancestor.returncode == 0, f"revision label {revision} is not in HEAD's history"
    assert config["User"] == "10001:10001"
    assert "8000/tcp" in config["ExposedPorts"]
    # podman reports the (docker-format) HEALTHCHECK next to Config, docker inside it.
    healthcheck = config.get("Healthcheck") or inspection["Healthcheck"]
    assert "/ready" in " ".join(healthcheck["Test"])


def test_container_becomes_ready_and_healthcheck_passes(container: RunningContainer) -> None:
    assert container.seconds_to_ready < READY_TIMEOUT_SECONDS
    print(f"container start-to-ready: {container.seconds_to_ready:.2f} s")
    assert httpx.get(f"{container.base_url}/health", timeout=5).status_code == 200
    check = podman("healthcheck", "run", container.name)
    assert check.returncode == 0, check.stdout + check.stderr


def test_served_model_version_is_the_locked_md5(container: RunningContainer) -> None:
    assert httpx.get(f"{container.base_url}/model", timeout=5).status_code == 401
    model = httpx.get(f"{container.base_url}/model", headers=container.auth, timeout=5)
    assert model.status_code == 200
    lineage = model.json()
    md5 = locked_model_md5()
    assert lineage["version"] == md5[:VERSION_LENGTH]
    assert lineage["artifacts"]["models/model.onnx"]["md5"] == md5
    # Auth is on in the image, so /metrics needs the read scope like /model.
    assert httpx.get(f"{container.base_url}/metrics", timeout=5).status_code == 401
    metrics = httpx.get(f"{container.base_url}/metrics", headers=container.auth, timeout=5).text
    assert f'version="{md5[:VERSION_LENGTH]}"' in metrics


def test_predictions_match_the_locked_onnx_model_on_the_host(container: RunningContainer) -> None:
    with np.load(REPO_ROOT / "data" / "prepared" / "test.npz") as test_set:
        X = test_set["X"][:16]
    response = httpx.post(
        f"{container.base_url}/predict",
        json={"samples": X.tolist()},
        headers=container.auth,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    session = ort.InferenceSession(
        str(REPO_ROOT / "models" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    labels, probabilities = session.run(None, {"pixels": X.astype(np.float32)})
    assert body["labels"] == labels.tolist()
    np.testing.assert_allclose(body["probabilities"], probabilities, atol=1e-6)
    assert body["model_version"] == locked_model_md5()[:VERSION_LENGTH]


def test_bad_input_is_rejected_with_a_client_error(container: RunningContainer) -> None:
    response = httpx.post(
        f"{container.base_url}/predict", json={"samples": [[1.0] * 63]}, headers=container.auth
    )
    assert 400 <= response.status_code < 500


def test_runs_as_non_root_without_training_libraries(container: RunningContainer) -> None:
    uid = exec_in(container, "id", "-u")
    assert uid.returncode == 0, uid.stderr
    assert uid.stdout.strip() != "0"
    for module in ("sklearn", "dvc", "joblib", "art", "skl2onnx"):
        imported = exec_in(container, "python", "-c", f"import {module}")
        assert imported.returncode != 0, f"{module} is importable in the runtime image"
        assert "ModuleNotFoundError" in imported.stderr
    for tool in ("gcc", "cc", "curl", "pip", "pip3"):
        found = exec_in(container, "sh", "-c", f"command -v {tool}")
        assert found.returncode != 0, f"{tool} is present in the runtime image"
    for interpreter in ("python", "python3", "/usr/local/bin/python3", "/usr/bin/python3"):
        # The venv's python and the base's own: neither can install anything.
        found = exec_in(
            container, "sh", "-c", f"command -v {interpreter} && {interpreter} -c 'import pip'"
        )
        assert found.returncode != 0, f"pip is importable by {interpreter} in the runtime image"


def test_image_holds_only_the_runtime_artifacts(container: RunningContainer) -> None:
    listing = exec_in(container, "find", "/app", "-type", "f", "-not", "-name", "*.pyc")
    assert listing.returncode == 0, listing.stderr
    files = {line.removeprefix("/app/") for line in listing.stdout.split()}
    expected = {"dvc.lock", *REQUIRED_ARTIFACTS, REFERENCE_STATS_JSON}
    assert expected <= files
    # Present only after `make sign` / in a registry build (tests/integration/test_registry.py).
    optional = {"models/model.sig", "models/registry.json"}
    outside_serving = {path for path in files if not path.startswith("serving/")}
    assert outside_serving - optional == expected
    assert not any(part in path for path in files for part in (".git/", ".venv/", "joblib"))


def test_root_filesystem_is_read_only_and_tmp_is_writable(container: RunningContainer) -> None:
    read_only = podman("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", container.name)
    assert read_only.stdout.strip() == "true"
    for path in ("/app/dvc.lock", "/app/new-file", "/opt/venv/new-file", "/etc/new-file"):
        as_service = exec_in(container, "sh", "-c", f"echo x >> {path}")
        assert as_service.returncode != 0, f"{path} is writable by the service user"
        # Even root inside the container (owner of these files) cannot write them.
        as_root = podman("exec", "--user", "0", container.name, "sh", "-c", f"echo x >> {path}")
        assert as_root.returncode != 0, f"{path} is writable by root"
        assert "Read-only file system" in as_root.stderr
    assert exec_in(container, "sh", "-c", "echo x > /tmp/probe").returncode == 0
    multiproc = exec_in(container, "ls", "/tmp/prometheus")
    assert multiproc.returncode == 0, multiproc.stderr
    assert multiproc.stdout.split(), "no multiprocess metric files under /tmp/prometheus"


def test_podman_compose_runs_the_api_service_as_declared(image: str, keys_file: KeysFile) -> None:
    """`podman-compose up api` with the compose file as written (the image built above;
    the Prometheus and Redis services need a registry pull, so only the API service is
    started: its rate limits fall back to each worker's count). Its decision records land
    on the named volume, written by uid 10001, and outlive the container."""
    project = f"digits-compose-test-{os.getpid()}"
    port = free_port()
    env = {
        **podman_env(),
        "DIGITS_IMAGE": image,
        "DIGITS_HOST_PORT": str(port),
        "DIGITS_API_KEYS_HOST_FILE": str(keys_file.path),
        "DIGITS_REDIS_PASSWORD": "0123456789abcdef" * 4,
    }

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(VENV_BIN / "podman-compose"), "--project-name", project, *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def up_api() -> RunningContainer:
        up = compose("up", "--detach", "--no-build", "--no-deps", "api")
        assert up.returncode == 0, up.stdout + up.stderr
        listed = podman("ps", "--filter", f"label=io.podman.compose.project={project}", "-q")
        names = listed.stdout.split()
        assert len(names) == 1, listed.stdout + listed.stderr
        wait_until_ready(f"http://127.0.0.1:{port}", names[0])
        return RunningContainer(names[0], f"http://127.0.0.1:{port}", 0.0)

    def record_files(api: RunningContainer) -> list[str]:
        listed = exec_in(api, "sh", "-c", "ls /var/lib/digits/records/decisions-*.jsonl")
        return listed.stdout.split()

    try:
        api = up_api()
        name = api.name
        inspected = json.loads(podman("inspect", name).stdout)[0]
        host = inspected["HostConfig"]
        assert host["ReadonlyRootfs"] is True
        assert inspected["Config"]["User"] == "10001:10001"
        assert "no-new-privileges" in " ".join(host["SecurityOpt"])
        assert {"CAP_NET_RAW", "CAP_CHOWN"} <= set(host["CapDrop"])
        assert httpx.get(f"http://127.0.0.1:{port}/model", timeout=5).status_code == 401
        model = httpx.get(
            f"http://127.0.0.1:{port}/model", headers=keys_file.auth, timeout=5
        ).json()
        auth = exec_in(RunningContainer(name, "", 0.0), "printenv", "DIGITS_AUTH")
        assert auth.stdout.strip() == "api-key"
        assert model["version"] == locked_model_md5()[:VERSION_LENGTH]
        workers = exec_in(RunningContainer(name, "", 0.0), "printenv", "DIGITS_WORKERS")
        assert workers.stdout.strip() == "2"
        limit = exec_in(RunningContainer(name, "", 0.0), "printenv", "DIGITS_RATE_LIMIT")
        assert limit.stdout.strip() == "600/minute"  # compose ships a rate limit by default

        predicted = httpx.post(
            f"{api.base_url}/predict", json={"samples": [[0.0] * 64]}, headers=keys_file.auth
        )
        assert predicted.status_code == 200, predicted.text
        deadline = time.monotonic() + 10
        while not record_files(api):  # flushed every 0.5 s
            assert time.monotonic() < deadline, "no decision record on the volume"
            time.sleep(0.2)
        (written,) = record_files(api)
        # The new volume took the image's /var/lib/digits (10001, 0700): docker gives a new
        # volume the owner of the image's directory, and root's when it has none.
        paths = ("/var/lib/digits", "/var/lib/digits/records", written)
        owner = exec_in(api, "stat", "-c", "%u %a", *paths)
        assert owner.stdout.split() == ["10001", "700"] * 2 + ["10001", "640"], owner.stdout
        assert predicted.headers["x-request-id"] in exec_in(api, "cat", written).stdout
        stopped = compose("down")  # the container goes, the named volume stays
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        again = up_api()
        assert again.name != name
        assert written in record_files(again)
    finally:
        down = compose("down", "--volumes")
        assert down.returncode == 0, down.stdout + down.stderr
