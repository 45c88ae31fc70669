"""``python -m tools.registry_bundle digits-classifier#prod --out build/bundle``: the image
build context of a GTO registry reference, with its artifacts pulled from the DVC remote.

1. GTO resolves the reference (``NAME#STAGE`` or ``NAME@vX.Y.Z``) to a version and its git tag;
2. a clone of this repository is checked out at that tag's commit (its code, Dockerfile,
   ``dvc.lock``); ``.dvc/config.local`` is copied, so a ``--local`` remote applies too;
3. ``dvc pull`` fetches that revision's served artifacts from the remote (no stage runs:
   a missing artifact is an error, never a retrain);
4. ``models/registry.json`` records artifact, version, stage, reference, commit and the md5
   of each served file (read by the service for ``/model``, ``model_info`` and decision
   records; refused if the served files differ); ``--sign-key`` signs the served files.

``deploy/podman/build-image.sh TAG build/bundle`` builds the image from it; a test can serve
it directly with ``DIGITS_LOCK_FILE=build/bundle/dvc.lock python -m serving``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess  # nosec B404 - runs git, gto and dvc with fixed arguments
import sys
from pathlib import Path

from serving.lineage import LineageError, read_lock
from serving.lineage.registry_lookup import served_md5s

SERVED_OUTS = (
    "models/model.onnx",
    "models/model.json",
    "models/ood.onnx",
    "models/ood.json",
    "data/prepared/reference_stats.json",
)
REF_PATTERN = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9-]*)(?:#(?P<stage>[a-z0-9-]+)|@(?P<ver>v[\w.+-]+))$"
)


class BundleError(RuntimeError):
    """The reference cannot be resolved or its artifacts cannot be fetched."""


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    completed = subprocess.run(  # noqa: S603  # nosec B603 - fixed tools, no shell
        args, cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise BundleError(f"{' '.join(args)} failed:\n{completed.stdout}{completed.stderr}")
    return completed.stdout.strip()


def _tool(name: str) -> str:
    """A console script of this interpreter's environment (gto, dvc), else from PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def resolve(ref: str, repo: Path) -> dict[str, str | None]:
    """Artifact, version, stage, tag and commit of ``NAME#STAGE`` / ``NAME@VERSION``."""
    match = REF_PATTERN.match(ref)
    if match is None:
        raise BundleError(f"{ref!r}: expected NAME#STAGE or NAME@vX.Y.Z")
    gto = _tool("gto")
    version = _run([gto, "show", ref, "--version"], repo)
    tag = _run([gto, "show", ref, "--ref"], repo)
    if not version or not tag:
        raise BundleError(f"{ref}: not found in the registry (gto show)")
    commit = _run(["git", "rev-parse", f"{tag}^{{commit}}"], repo)
    return {
        "artifact": match["name"],
        "version": version,
        "stage": match["stage"],
        "ref": ref,
        "commit": commit,
    }


def build_bundle(ref: str, repo: Path, out: Path) -> dict[str, str | None]:
    """Clone ``repo`` at the commit of ``ref`` into ``out`` and pull its served artifacts."""
    entry = resolve(ref, repo)
    if out.exists():
        raise BundleError(f"{out} exists: remove it first")
    _run(["git", "clone", "--quiet", "--no-checkout", str(repo), str(out)], repo)
    _run(
        ["git", "-c", "advice.detachedHead=false", "checkout", "--quiet", str(entry["commit"])], out
    )
    local_config = repo / ".dvc" / "config.local"
    if local_config.exists():
        shutil.copyfile(local_config, out / ".dvc" / "config.local")
    _run([_tool("dvc"), "pull", "--quiet", *SERVED_OUTS], out)
    try:
        recorded = {**entry, "artifacts": served_md5s(read_lock(out / "dvc.lock"))}
    except LineageError as exc:
        raise BundleError(f"{entry['ref']}: {exc}") from None
    registry = out / "models" / "registry.json"
    partial = registry.with_name(f".{registry.name}.tmp")
    partial.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    partial.replace(registry)
    return entry


def sign_bundle(bundle: Path, private_key: Path) -> None:
    """``make sign`` on the bundle: the signature lands at ``models/model.sig`` in it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITS_")}
    env["DIGITS_LOCK_FILE"] = str(bundle / "dvc.lock")
    project = Path(__file__).resolve().parent.parent
    _run(
        [sys.executable, "-m", "serving.lineage.verify_signature", "--sign", str(private_key)],
        project,
        env,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.registry_bundle", description=__doc__)
    parser.add_argument("ref", help="digits-classifier#prod or digits-classifier@vX.Y.Z")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repo", type=Path, default=Path.cwd())
    parser.add_argument("--sign-key", type=Path, help="ECDSA private key: sign the bundle")
    args = parser.parse_args(argv)
    try:
        entry = build_bundle(args.ref, args.repo.resolve(), args.out.resolve())
        if args.sign_key is not None:
            sign_bundle(args.out.resolve(), args.sign_key.resolve())
    except BundleError as exc:
        print(f"registry_bundle: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(entry, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
