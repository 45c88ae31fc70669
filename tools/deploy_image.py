"""The image a GTO stage deploys, by digest, and the manifests that reference it.

``make promote VERSION=v1.2.0 STAGE=prod IMAGE_DIGEST=REGISTRY/digits-api@sha256:...``
records the image of the version in the stage's assignment tag (its message,
``image NAME@sha256:HEX``). This tool reads those records with ``gto history`` and sets the
image in the deployment manifests, always in digest form and always the same in each:

* ``python -m tools.deploy_image current digits-classifier prod``: ``VERSION IMAGE`` of the
  stage's latest assignment;
* ``python -m tools.deploy_image previous digits-classifier prod``: the same for the version
  assigned to the stage before the current one (what a rollback deploys);
* ``python -m tools.deploy_image check IMAGE``: exit 2 unless IMAGE is in digest form;
* ``python -m tools.deploy_image set IMAGE``: writes IMAGE into the kustomization's
  ``digits-api`` entry (``newName`` and ``digest``, as ``kustomize edit set image`` does) and
  into the Cloud Run service's container (docs/operations.md, "Roll back").
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess  # nosec B404 - runs gto with fixed arguments
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

DIGEST_REF = re.compile(r"(?P<name>[a-z0-9][a-z0-9._/:-]*[a-z0-9])@(?P<digest>sha256:[0-9a-f]{64})")
RECORD = re.compile(r"^image (\S+)$", re.MULTILINE)
KUSTOMIZATION = Path("deploy/k8s/kustomization.yaml")
CLOUD_RUN = Path("deploy/cloudrun/service.yaml")
IMAGE_NAME = "digits-api"  # the kustomization's name for the API image


class DeployImageError(Exception):
    """Bad input or a registry without the record asked for: one line for the operator."""


@dataclass(frozen=True)
class Assignment:
    version: str
    image: str | None
    ref: str


def image_ref(text: str) -> str:
    """``text`` if it is ``NAME@sha256:<64 hex>`` (a tag alone can move: refused)."""
    if DIGEST_REF.fullmatch(text) is None:
        raise DeployImageError(f"not an image by digest (NAME@sha256:<64 hex digits>): {text!r}")
    return text


def assignments(artifact: str, stage: str, repo: Path) -> list[Assignment]:
    """The stage's assignments, latest first, from ``gto history``."""
    gto = Path(sys.executable).parent / "gto"  # this environment's, else from PATH
    result = subprocess.run(  # noqa: S603  # nosec B603 - a fixed tool, no shell
        [str(gto) if gto.exists() else "gto", "history", artifact, "--json", "--repo", str(repo)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise DeployImageError(f"gto history {artifact} failed: {result.stderr.strip()}")
    events: list[dict[str, Any]] = json.loads(result.stdout or "[]")
    chosen = [e for e in events if e["event"] == "assignment" and e["stage"] == stage]
    # The tag's counter (NAME#STAGE#N) orders assignments made within the same second.
    chosen.sort(key=lambda e: (e["timestamp"], int(e["ref"].rsplit("#", 1)[-1])), reverse=True)
    found = []
    for event in chosen:
        record = RECORD.search(event.get("message") or "")
        found.append(Assignment(event["version"], record[1] if record else None, event["ref"]))
    return found


def pick(artifact: str, stage: str, repo: Path, *, previous: bool) -> Assignment:
    history = assignments(artifact, stage, repo)
    if not history:
        raise DeployImageError(f"{artifact} has never been assigned to {stage}")
    chosen = history[0]
    if previous:
        earlier = [a for a in history if a.version != history[0].version]
        if not earlier:
            raise DeployImageError(
                f"{stage} has had only {history[0].version}: nothing to roll back to"
            )
        chosen = earlier[0]
    if chosen.image is None:
        raise DeployImageError(
            f"{chosen.ref} ({chosen.version}) records no image: promote it again with "
            "make promote VERSION=... STAGE=... IMAGE_DIGEST=NAME@sha256:..."
        )
    return Assignment(chosen.version, image_ref(chosen.image), chosen.ref)


def _round_trip() -> YAML:
    yaml = YAML()  # round trip: comments and order stay as the file has them
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


def _write_atomically(path: Path, data: Any, yaml: YAML) -> None:
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            yaml.dump(data, out)
        Path(name).replace(path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def set_image(image: str, kustomization: Path, cloud_run: Path) -> None:
    """Point both manifests at ``image`` (``NAME@sha256:...``)."""
    match = DIGEST_REF.fullmatch(image_ref(image))
    if match is None:  # image_ref has refused it already
        raise DeployImageError(image)
    yaml = _round_trip()
    kustom = yaml.load(kustomization.read_text(encoding="utf-8"))
    entries = [e for e in kustom.get("images") or [] if e.get("name") == IMAGE_NAME]
    if len(entries) != 1:
        raise DeployImageError(f"{kustomization}: no single images entry named {IMAGE_NAME}")
    entry = entries[0]
    trailing = entry.ca.items.pop("newTag", None)  # the comment after the entry stays
    entry.pop("newTag", None)
    entry["newName"] = match["name"]
    entry["digest"] = match["digest"]
    if trailing is not None:
        entry.ca.items["digest"] = trailing
    service = yaml.load(cloud_run.read_text(encoding="utf-8"))
    containers = service["spec"]["template"]["spec"]["containers"]
    if len(containers) != 1:
        raise DeployImageError(f"{cloud_run}: expected one container, found {len(containers)}")
    containers[0]["image"] = image
    _write_atomically(kustomization, kustom, yaml)
    _write_atomically(cloud_run, service, yaml)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.deploy_image", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("current", "previous"):
        sub = commands.add_parser(name, help=f"VERSION IMAGE of the stage's {name} version")
        sub.add_argument("artifact")
        sub.add_argument("stage")
        sub.add_argument("--repo", type=Path, default=Path())
    checker = commands.add_parser("check", help="exit 2 unless IMAGE is NAME@sha256:<64 hex>")
    checker.add_argument("image")
    setter = commands.add_parser("set", help="set IMAGE (NAME@sha256:...) in the manifests")
    setter.add_argument("image")
    setter.add_argument("--kustomization", type=Path, default=KUSTOMIZATION)
    setter.add_argument("--cloud-run", type=Path, default=CLOUD_RUN)
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            image_ref(args.image)
            return 0
        if args.command == "set":
            set_image(args.image, args.kustomization, args.cloud_run)
            print(f"{args.kustomization} and {args.cloud_run} now deploy {args.image}")
            return 0
        found = pick(args.artifact, args.stage, args.repo, previous=args.command == "previous")
    except DeployImageError as error:
        print(f"deploy_image: {error}", file=sys.stderr)
        return 2
    print(f"{found.version} {found.image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
