"""DVC remotes for real: a fresh clone pulls every locked artifact from the zero-setup default
remote and serves it without running a stage; an SSH remote (dvc-ssh) against a real sshd."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import RunningServer, free_port, http_get
from tests.integration.dvc_repo import cached_outs, clone, md5, run, seed_from_checkout

pytestmark = pytest.mark.integration

DEFAULT_REMOTE = "/var/tmp/digits-dvc-remote"  # documented in docs/deployment.md
SSHD = Path("/usr/sbin/sshd")


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone whose artifacts were pushed to the default remote with `dvc push` (make push)."""
    repo = clone(tmp_path_factory.mktemp("push") / "repo")
    seed_from_checkout(repo)
    run("dvc", "push", cwd=repo)  # what `make push` runs
    return repo


def test_default_remote_is_a_directory_outside_the_work_tree(pushed: Path) -> None:
    assert run("dvc", "remote", "default", cwd=pushed).strip() == "local"
    assert run("dvc", "config", "remote.local.url", cwd=pushed).strip() == DEFAULT_REMOTE
    assert not Path(DEFAULT_REMOTE).resolve().is_relative_to(pushed.resolve())
    for path, digest in cached_outs(pushed).items():
        stored = Path(DEFAULT_REMOTE) / "files" / "md5" / digest[:2] / digest[2:]
        assert stored.is_file(), f"{path} was not pushed"


def test_fresh_clone_pulls_byte_identical_artifacts_and_serves_them(
    pushed: Path, tmp_path: Path, serve: Callable[..., RunningServer]
) -> None:
    repo = clone(tmp_path / "fresh")
    outs = cached_outs(repo)
    assert "models/model.onnx" in outs
    assert "data/raw/digits.csv" in outs
    assert not any((repo / path).exists() for path in outs)
    output = run("dvc", "pull", cwd=repo)  # what `make pull` runs
    assert "Running stage" not in output
    for path, digest in outs.items():
        assert md5(repo / path) == digest, path
    assert run("git", "status", "--porcelain", cwd=repo).strip() == ""  # nothing regenerated
    assert run("dvc", "status", cwd=repo).strip() == "Data and pipelines are up to date."

    server = serve({"DIGITS_LOCK_FILE": str(repo / "dvc.lock")}, workers=1, cwd=repo)
    status, body = http_get(f"{server.base_url}/ready")
    assert status == 200
    assert json.loads(body)["model_version"] == outs["models/model.onnx"][:12]
    _, model = http_get(f"{server.base_url}/model")
    lineage = json.loads(model)
    assert lineage["raw_data"]["md5"] == outs["data/raw/digits.csv"]
    assert lineage["registry"] is None


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A real OpenSSH server on a free loopback port: throwaway host and user keys, key-only
    login (root included). Yields the port and the user's private key."""
    assert SSHD.exists(), "openssh-server is missing: run make system-deps"
    ssh_dir = tmp_path / "ssh"
    ssh_dir.mkdir()
    host_key, user_key = ssh_dir / "host_ed25519", ssh_dir / "user_ed25519"
    for key in (host_key, user_key):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
            check=True,
            capture_output=True,
        )
    shutil.copyfile(user_key.with_suffix(".pub"), ssh_dir / "authorized_keys")
    port = free_port()
    config = ssh_dir / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"PidFile {ssh_dir / 'sshd.pid'}\nAuthorizedKeysFile {ssh_dir / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\nPubkeyAuthentication yes\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nSubsystem sftp internal-sftp\n",
        encoding="utf-8",
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    process = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=(ssh_dir / "sshd.log").open("wb"),
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, (ssh_dir / "sshd.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "sshd did not listen"
                time.sleep(0.05)
        yield port, user_key
    finally:
        process.terminate()
        process.wait(timeout=10)


def _add_ssh_remote(repo: Path, port: int, key: Path, remote_dir: Path) -> None:
    run("dvc", "remote", "add", "--local", "ssh", f"ssh://127.0.0.1:{port}{remote_dir}", cwd=repo)
    run("dvc", "remote", "modify", "--local", "ssh", "user", getpass.getuser(), cwd=repo)
    run("dvc", "remote", "modify", "--local", "ssh", "keyfile", str(key), cwd=repo)


def test_ssh_remote_push_from_one_clone_pull_into_another(
    sshd: tuple[int, Path], tmp_path: Path
) -> None:
    port, key = sshd
    remote_dir = tmp_path / "ssh-remote"
    source = clone(tmp_path / "source")
    seed_from_checkout(source)
    _add_ssh_remote(source, port, key, remote_dir)
    run("dvc", "push", "-r", "ssh", cwd=source)
    outs = cached_outs(source)
    for digest in outs.values():
        assert (remote_dir / "files" / "md5" / digest[:2] / digest[2:]).is_file()

    target = clone(tmp_path / "target")
    _add_ssh_remote(target, port, key, remote_dir)
    output = run("dvc", "pull", "-r", "ssh", cwd=target)
    assert "Running stage" not in output
    for path, digest in outs.items():
        assert md5(target / path) == digest, path
    assert run("dvc", "status", cwd=target).strip() == "Data and pipelines are up to date."
    assert ".dvc/config.local" not in run("git", "status", "--porcelain", cwd=target)
