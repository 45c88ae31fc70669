"""MLServer, an anchor of `make bench`, runs from its own lock (requirements/mlserver.lock,
compiled from bench/mlserver/requirements.in): it must load models/model.joblib with the
libraries the model was trained with, so the packages of the pickle are pinned in that lock
at the versions of requirements/dev.lock."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

PICKLE_PACKAGES = ("scikit-learn", "numpy", "scipy", "joblib", "threadpoolctl")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\\n]+?))?\s*\\?$")


def pins(path: Path) -> dict[str, str]:
    """Package -> version for Python 3.11 (markers for other versions are skipped)."""
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match is None:
            continue
        name, version, marker = match.groups()
        if marker and "python_full_version < '3.12'" not in marker:
            continue
        found[name.lower()] = version
    return found


def test_the_mlserver_lock_pins_the_models_libraries_at_the_dev_lock_versions() -> None:
    dev = pins(REPO_ROOT / "requirements" / "dev.lock")
    mlserver = pins(REPO_ROOT / "requirements" / "mlserver.lock")
    requested = pins(REPO_ROOT / "bench" / "mlserver" / "requirements.in")
    for package in PICKLE_PACKAGES:
        assert mlserver[package] == dev[package], package
        assert requested[package] == dev[package], package
    assert {"mlserver", "mlserver-sklearn"} <= set(mlserver)
    assert mlserver["mlserver"] == requested["mlserver"]
