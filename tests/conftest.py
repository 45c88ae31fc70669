"""Fixtures shared by every test tier."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout under test."""
    return REPO_ROOT


TIERS = ("unit", "model", "integration")


def tier_of(path: Path) -> str | None:
    """The tier of a test file: the folder under tests/ it lives in."""
    parts = path.resolve().relative_to(REPO_ROOT / "tests").parts
    return parts[0] if len(parts) > 1 and parts[0] in TIERS else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test carries the marker of its folder (so ``-m unit`` selects exactly tests/unit);
    a test outside the tier folders, one that declares another tier's marker, or a `serial`
    one outside tests/integration is an error: `make test` runs the tiers by folder and only
    tests/integration in a serial pass, so such a test would silently run wrong or not at all."""
    misplaced = []
    for item in items:
        tier = tier_of(item.path)
        if tier is None:
            misplaced.append(f"{item.nodeid}: not in a tier folder (tests/{{{','.join(TIERS)}}}/)")
            continue
        declared = {mark.name for mark in item.iter_markers() if mark.name in TIERS}
        if declared - {tier}:
            misplaced.append(f"{item.nodeid}: marked {sorted(declared)}, lives in tests/{tier}/")
        if tier != "integration" and item.get_closest_marker("serial"):
            misplaced.append(f"{item.nodeid}: only the integration tier runs serial tests apart")
        item.add_marker(tier)
    if misplaced:
        raise pytest.UsageError("test tier markers do not match folders:\n" + "\n".join(misplaced))
    # Files marked `slow` first (a stable sort: the order within and between the other files is
    # kept): with `-n 2 --dist loadfile --no-loadscope-reorder` the longest files start at once
    # instead of last, where one of them would run alone while the other worker idles.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
