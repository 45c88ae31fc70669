"""The GTO model registry in a temporary repository: release, promote, roll back, and build
the serving bundle / image of ``digits-classifier#prod`` from artifacts pulled from the remote.

v1 is this checkout's model; v2 changes the MLP's L2 strength (the served, selected model) and
reruns the pipeline up to the model. Promoting v2 and then v1 to prod must serve v1 again.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO_ROOT, VENV_BIN
from tests.integration.conftest import RunningServer, http_get
from tests.integration.dvc_repo import cached_outs, clone, md5, run, seed_from_checkout

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]

ARTIFACT = "digits-classifier"
# Never rebuild the clone's venv: the suite's venv is on PATH (tests/integration/dvc_repo.py).
MAKE = ("make", "--no-print-directory", "-o", ".venv/.installed-dev.lock")


@dataclass(frozen=True)
class Registry:
    repo: Path
    remote: Path
    v1_md5: str
    v2_md5: str
    v1_commit: str


def _set_param(params_file: Path, old: str, new: str) -> None:
    text = params_file.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} not found exactly once in params.yaml"
    params_file.write_text(text.replace(old, new), encoding="utf-8")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    root = tmp_path_factory.mktemp("registry")
    remote = root / "remote"
    repo = clone(root / "repo")
    seed_from_checkout(repo)
    run("dvc", "remote", "modify", "--local", "local", "url", str(remote), cwd=repo)
    run("dvc", "push", cwd=repo)
    v1_md5 = cached_outs(repo)["models/model.onnx"]
    v1_commit = run("git", "rev-parse", "HEAD", cwd=repo).strip()
    run(*MAKE, "release", "VERSION=v1.0.0", cwd=repo)

    _set_param(repo / "params.yaml", "    alpha: 1.0e-4\n", "    alpha: 2.0e-4\n")
    run("dvc", "repro", "train", cwd=repo)
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "--quiet", "-m", "Stronger regularisation", cwd=repo)
    run("dvc", "push", cwd=repo)
    v2_md5 = cached_outs(repo)["models/model.onnx"]
    assert v2_md5 != v1_md5, "the param change must change the served model"
    run(*MAKE, "release", "VERSION=v2.0.0", cwd=repo)
    run(*MAKE, "promote", "VERSION=v2.0.0", "STAGE=prod", cwd=repo)
    run(*MAKE, "promote", "VERSION=v1.0.0", "STAGE=prod", cwd=repo)  # the rollback
    return Registry(repo, remote, v1_md5, v2_md5, v1_commit)


def _bundle(registry: Registry, ref: str, out: Path, *extra: str) -> dict[str, str | None]:
    output = run(
        str(VENV_BIN / "python"),
        "-m",
        "tools.registry_bundle",
        ref,
        "--out",
        str(out),
        *extra,
        cwd=registry.repo,
    )
    entry: dict[str, str | None] = json.loads(output.strip().splitlines()[-1])
    return entry


def test_gto_show_lists_versions_and_the_prod_stage(registry: Registry) -> None:
    shown = json.loads(run("gto", "show", ARTIFACT, "--json", cwd=registry.repo))
    versions = {row["version"]: row for row in shown}
    assert set(versions) == {"v1.0.0", "v2.0.0"}
    assert run("gto", "show", f"{ARTIFACT}#prod", "--version", cwd=registry.repo).strip() == (
        "v1.0.0"
    )
    tags = run("git", "tag", "--list", cwd=registry.repo).split()
    assert f"{ARTIFACT}@v1.0.0" in tags
    assert sum(tag.startswith(f"{ARTIFACT}#prod") for tag in tags) == 2
    kind = run("git", "cat-file", "-t", f"{ARTIFACT}@v1.0.0", cwd=registry.repo).strip()
    assert kind == "tag"  # annotated


def test_rollback_serves_v1_from_prod(
    registry: Registry, tmp_path: Path, serve: Callable[..., RunningServer]
) -> None:
    bundle = tmp_path / "bundle"
    entry = _bundle(registry, f"{ARTIFACT}#prod", bundle)
    assert entry == {
        "artifact": ARTIFACT,
        "version": "v1.0.0",
        "stage": "prod",
        "ref": f"{ARTIFACT}#prod",
        "commit": registry.v1_commit,
    }
    assert md5(bundle / "models" / "model.onnx") == registry.v1_md5
    assert not (bundle / "models" / "model.joblib").exists()  # only the served artifacts
    assert not (bundle / "data" / "prepared" / "train.npz").exists()

    server = serve({"DIGITS_LOCK_FILE": str(bundle / "dvc.lock")}, workers=1, cwd=bundle)
    _, ready = http_get(f"{server.base_url}/ready")
    assert json.loads(ready)["model_version"] == registry.v1_md5[:12]
    _, body = http_get(f"{server.base_url}/model")
    model = json.loads(body)
    assert model["artifacts"]["models/model.onnx"]["md5"] == registry.v1_md5
    assert model["registry"]["version"] == "v1.0.0"
    assert model["registry"]["stage"] == "prod"
    _, metrics = http_get(f"{server.base_url}/metrics")
    assert 'registry_stage="prod",registry_version="v1.0.0"' in metrics.decode()


def test_version_reference_and_no_retraining(registry: Registry, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    entry = _bundle(registry, f"{ARTIFACT}@v2.0.0", bundle)
    assert (entry["version"], entry["stage"]) == ("v2.0.0", None)
    assert md5(bundle / "models" / "model.onnx") == registry.v2_md5


def test_missing_artifacts_fail_instead_of_retraining(registry: Registry, tmp_path: Path) -> None:
    emptied = tmp_path / "empty-remote"
    shutil.copytree(registry.remote, emptied)
    shutil.rmtree(emptied / "files" / "md5" / registry.v1_md5[:2])
    config = registry.repo / ".dvc" / "config.local"
    saved = config.read_text(encoding="utf-8")
    try:
        run("dvc", "remote", "modify", "--local", "local", "url", str(emptied), cwd=registry.repo)
        completed = subprocess.run(
            [
                str(VENV_BIN / "python"),
                "-m",
                "tools.registry_bundle",
                f"{ARTIFACT}#prod",
                "--out",
                str(tmp_path / "bundle"),
            ],
            cwd=registry.repo,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        config.write_text(saved, encoding="utf-8")
    assert completed.returncode == 1
    assert "dvc pull" in completed.stderr
    assert not (tmp_path / "bundle" / "models" / "model.onnx").exists()


def test_unknown_reference_is_a_clear_error(registry: Registry, tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            str(VENV_BIN / "python"),
            "-m",
            "tools.registry_bundle",
            f"{ARTIFACT}#staging",
            "--out",
            str(tmp_path / "bundle"),
        ],
        cwd=registry.repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 1
    assert "registry_bundle:" in completed.stderr
    assert not (tmp_path / "bundle").exists()


def test_prod_image_through_podman_is_v1_signed_and_labelled(
    registry: Registry, tmp_path: Path
) -> None:
    """`make image REF=digits-classifier#prod KEY=...` for real: bundle, sign, podman build,
    run with the public key: the container serves v1 and reports the registry entry; with
    another key it stays not ready."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed: this machine cannot build or run containers")
    from serving.access.keys import add_key
    from tests.integration.test_container import podman, podman_env, wait_until_ready

    # The image's DIGITS_AUTH=api-key reads the keys file at its default path.
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    keys_file = keys_dir / "api-keys.jsonl"
    api_key = add_key(keys_file, "registry-test", ["read"])
    keys_file.chmod(0o644)
    keys_dir.chmod(0o755)
    auth = {"authorization": f"Bearer {api_key}"}
    from tests.signing import write_key_pair

    private, public = write_key_pair(tmp_path, "signer")
    _, wrong = write_key_pair(tmp_path, "other")
    for key in (public, wrong):
        key.chmod(0o644)
    bundle = tmp_path / "bundle"
    _bundle(registry, f"{ARTIFACT}#prod", bundle, "--sign-key", str(private))
    assert (bundle / "models" / "model.sig").is_file()
    image = "localhost/digits-api:registry-test"
    built = subprocess.run(
        [str(REPO_ROOT / "deploy" / "podman" / "build-image.sh"), image, str(bundle)],
        env=podman_env(),
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert built.returncode == 0, f"image build failed:\n{built.stdout[-4000:]}{built.stderr}"
    labels = json.loads(podman("image", "inspect", image).stdout)[0]["Config"]["Labels"]
    assert labels["io.digits.registry.version"] == "v1.0.0"
    assert labels["io.digits.registry.stage"] == "prod"
    assert labels["io.digits.registry.ref"] == f"{ARTIFACT}#prod"
    assert labels["org.opencontainers.image.revision"] == registry.v1_commit
    assert labels["org.opencontainers.image.version"] == registry.v1_md5[:12]

    def start(key: Path) -> tuple[str, str]:
        name = f"digits-registry-{secrets.token_hex(3)}"
        started = podman(
            "run",
            "--detach",
            "--name",
            name,
            "--read-only",
            "--tmpfs",
            "/tmp:rw,noexec,nosuid,size=64m",
            "--cap-drop",
            "ALL",
            "--volume",
            f"{key}:/keys/model.pub:ro",
            "--volume",
            f"{keys_file}:/run/secrets/digits-api-keys:ro",
            "--env",
            "DIGITS_MODEL_PUBLIC_KEY=/keys/model.pub",
            "--publish",
            "127.0.0.1::8000",
            image,
        )
        assert started.returncode == 0, started.stderr
        port = podman("port", name, "8000/tcp").stdout.strip().splitlines()[0]
        return name, f"http://{port}"

    names = []
    try:
        name, base_url = start(public)
        names.append(name)
        wait_until_ready(base_url, name)
        model = httpx.get(f"{base_url}/model", headers=auth, timeout=5).json()
        assert model["artifacts"]["models/model.onnx"]["md5"] == registry.v1_md5
        assert (model["registry"]["version"], model["registry"]["stage"]) == ("v1.0.0", "prod")

        name, base_url = start(wrong)
        names.append(name)
        deadline = time.monotonic() + 60
        while True:
            try:
                ready = httpx.get(f"{base_url}/ready", timeout=2)
                if ready.status_code == 503 and ready.json().get("reason") != "loading":
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, podman("logs", name).stderr
            time.sleep(0.2)
        assert ready.json()["reason"] == "signature_invalid"
    finally:
        for name in names:
            podman("rm", "--force", "--time", "5", name)
