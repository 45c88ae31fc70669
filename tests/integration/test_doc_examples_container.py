"""docs/deployment.md's container commands as written, under the image's default auth
(``DIGITS_AUTH=api-key``): the first-run keys file, mounted into a real podman container that
must become ready and answer the documented key; and compose's keys files, readable by the
users the containers run as.

Rewrites, and only these: ``docker run`` -> ``podman run --name NAME`` (podman takes the same
options; the name lets the test remove the container whatever happens), the image name
``digits-api`` -> the image ``make image`` builds here, and ``127.0.0.1:8000`` -> a free port.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.doc_examples import examples_for
from tests.integration.conftest import free_port
from tests.integration.doc_shell import run_blocks
from tests.integration.dvc_repo import clone
from tests.integration.test_container import (  # noqa: F401 - image is a fixture
    CONTAINERS_CONF,
    image,
    locked_model_md5,
    podman,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]

CONTAINER_USERS = {"api": "10001", "prometheus (nobody)": "65534"}


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A clone of the repository with the checkout's venv, where a reader runs the commands."""
    repo = clone(tmp_path / "repo")
    (repo / ".venv").symlink_to(REPO_ROOT / ".venv")
    return repo


def test_documented_first_run_serves_with_a_key(
    request: pytest.FixtureRequest,
    image: str,  # noqa: F811 - the fixture imported above
    checkout: Path,
) -> None:
    (block,) = examples_for(request.node.nodeid)
    name = f"digits-doc-{os.getpid()}-{secrets.token_hex(3)}"
    text = block.text.replace("docker run ", f"podman run --name {name} ", 1)
    text = text.replace(" digits-api &", f" {image} &", 1)
    assert text.count(name) == 1, "the documented docker run changed"
    assert text.count(image) == 1, "the documented image name changed"
    try:
        result = run_blocks(
            [replace(block, text=text)],
            cwd=checkout,
            port=free_port(),
            env={"CONTAINERS_CONF": str(CONTAINERS_CONF)},
            timeout=180,
        )
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
        model = json.loads(result.stdout.splitlines()[-1])
        assert model["version"] == locked_model_md5()[:12]
        # The block ran the image as it ships: non-root, keys required by default.
        config = json.loads(podman("image", "inspect", image).stdout)[0]["Config"]
        assert config["User"] == "10001:10001"
        assert "DIGITS_AUTH=api-key" in config["Env"]
    finally:
        podman("rm", "--force", "--time", "5", name)


def test_compose_keys_are_readable_by_the_container_users(
    request: pytest.FixtureRequest,
    image: str,  # noqa: F811 - the fixture imported above
    checkout: Path,
) -> None:
    result = run_blocks(examples_for(request.node.nodeid), cwd=checkout)
    assert result.returncode == 0, result.stderr
    keys, token = checkout / "api-keys.jsonl", checkout / "metrics-token"
    assert [json.loads(line)["client_id"] for line in keys.read_text().splitlines()] == [
        "me",
        "prometheus",
    ]
    for path in (keys, token):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        for user, uid in CONTAINER_USERS.items():
            read = podman(
                "run", "--rm", "--user", uid, "--network", "none", "--entrypoint", "cat",
                "-v", f"{path}:/run/secrets/file:ro", image, "/run/secrets/file",
            )  # fmt: skip
            assert read.returncode == 0, f"{user} cannot read {path.name}: {read.stderr}"
            assert read.stdout == path.read_text()
