"""Signing helpers shared by the model and integration tiers: throwaway P-256 keys and
projects holding this checkout's served files (signed, tampered with, registry-bundled)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from serving.lineage import REGISTRY_JSON, file_md5
from serving.lineage.signature import SIGNED_FILES
from tests.conftest import REPO_ROOT


def write_key_pair(directory: Path, name: str) -> tuple[Path, Path]:
    """A fresh ECDSA P-256 key pair as PEM files: (private, public)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = directory / f"{name}.pem"
    public = directory / f"{name}.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def copy_served_files(project: Path) -> None:
    """The signed files of this checkout, under their dvc.lock paths, in ``project``."""
    for rel in SIGNED_FILES:
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / rel, project / rel)


def tamper_and_relock(project: Path) -> None:
    """Change a weight of the served ONNX model and rewrite dvc.lock to its new md5: another
    model version that the md5 check alone accepts."""
    path = project / "models" / "model.onnx"
    model = onnx.load(str(path))
    initializer = next(i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT)
    weights = onnx.numpy_helper.to_array(initializer).copy()
    weights.flat[0] += 1.0
    initializer.CopyFrom(onnx.numpy_helper.from_array(weights, initializer.name))
    old_md5 = file_md5(path)
    onnx.save(model, str(path))
    lock_path = project / "dvc.lock"
    lock = yaml.safe_load(lock_path.read_text(encoding="utf-8"))
    for stage in lock["stages"].values():
        for entry in [*(stage.get("outs") or []), *(stage.get("deps") or [])]:
            if entry.get("md5") == old_md5:
                entry["md5"] = file_md5(path)
                entry["size"] = path.stat().st_size
    lock_path.write_text(yaml.safe_dump(lock, sort_keys=False), encoding="utf-8")


def write_registry_entry(project: Path, stage: str = "prod") -> Path:
    """``models/registry.json`` as tools/registry_bundle.py writes it, for the served files."""
    served = ("models/model.onnx", "models/model.json", "models/ood.onnx", "models/ood.json")
    entry = {
        "artifact": "digits-classifier",
        "version": "v1.0.0",
        "stage": stage,
        "ref": f"digits-classifier#{stage}",
        "commit": "c" * 40,
        "artifacts": {rel: file_md5(project / rel) for rel in served},
    }
    path = project / REGISTRY_JSON
    path.write_text(json.dumps(entry, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
