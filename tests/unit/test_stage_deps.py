"""Every stage in dvc.yaml depends on exactly the repository's Python files its code imports.

A stage's hand-written ``deps`` list drifts from its code (``select`` once used
``stages/lib/gates.py`` without depending on it, so editing the gate maths left its report
"up to date"). Here the import closure of each ``python -m stages.X`` entry point is derived
with the standard library's ``modulefinder`` (it scans bytecode, so imports inside
functions count too, and executes nothing), restricted to the repository, and compared
with the ``.py`` files the stage declares.
"""

from __future__ import annotations

import re
from modulefinder import ModuleFinder
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

ENTRY_POINT = re.compile(r"\bpython -m (stages\.[a-z_]+)\b")


def stages_of(dvc_yaml: Path) -> dict[str, dict[str, Any]]:
    """The ``stages`` mapping of a dvc.yaml."""
    document = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))
    stages: dict[str, dict[str, Any]] = document["stages"]
    return stages


def entry_module(stage: dict[str, Any]) -> str:
    """The ``stages.X`` module a stage's command runs."""
    match = ENTRY_POINT.search(" ".join(str(stage["cmd"]).split()))
    assert match, f"command does not run python -m stages.X: {stage['cmd']!r}"
    return match.group(1)


def import_closure(module: str, root: Path) -> set[str]:
    """Repository-relative paths of ``module``'s source and of every repo module it imports."""
    finder = ModuleFinder(path=[str(root)])  # third-party and stdlib modules stay unresolved
    finder.run_script(str(root / (module.replace(".", "/") + ".py")))
    paths = {str(root / (module.replace(".", "/") + ".py"))}
    # modulefinder's Module objects carry __file__ (None for built-ins); typeshed omits it.
    found = (getattr(found_module, "__file__", None) for found_module in finder.modules.values())
    paths.update(path for path in found if path)
    files = {Path(p).resolve() for p in paths}
    return {
        f.relative_to(root).as_posix()
        for f in files
        if f.is_relative_to(root) and f.name != "__init__.py"
    }


def declared_sources(stage: dict[str, Any]) -> set[str]:
    """The ``.py`` files in a stage's deps (directories would need expanding: none are used)."""
    return {str(dep) for dep in stage.get("deps", []) if str(dep).endswith(".py")}


STAGES = stages_of(REPO_ROOT / "dvc.yaml")


@pytest.mark.parametrize("name", sorted(STAGES))
def test_declared_source_deps_are_the_import_closure(name: str) -> None:
    stage = STAGES[name]
    closure = import_closure(entry_module(stage), REPO_ROOT)
    declared = declared_sources(stage)
    missing, extra = sorted(closure - declared), sorted(declared - closure)
    assert (missing, extra) == ([], []), (
        f"dvc.yaml stage {name!r}: add to deps {missing}; remove from deps {extra} "
        "(its code imports exactly the first set plus what it already declares)"
    )


def test_the_closure_follows_imports_inside_functions(tmp_path: Path) -> None:
    """A lazy import in a function body is a dependency like a top-level one."""
    package = tmp_path / "stages"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "entry.py").write_text(
        "import numpy\nfrom stages import top\n\ndef main():\n    from stages.lazy import f\n",
        encoding="utf-8",
    )
    (package / "top.py").write_text("from stages.deeper import g\n", encoding="utf-8")
    (package / "lazy.py").write_text("def f(): pass\n", encoding="utf-8")
    (package / "deeper.py").write_text("def g(): pass\n", encoding="utf-8")
    (package / "unused.py").write_text("", encoding="utf-8")
    assert import_closure("stages.entry", tmp_path) == {
        "stages/entry.py",
        "stages/top.py",
        "stages/lazy.py",
        "stages/deeper.py",
    }


def test_a_missing_dependency_is_named(tmp_path: Path) -> None:
    """The comparison reports the path that dvc.yaml forgot (the select/gates case)."""
    stage = {
        "cmd": "python -m stages.select --params params.yaml",
        "deps": ["stages/select.py", "data/prepared/train.npz"],
    }
    closure = import_closure(entry_module(stage), REPO_ROOT)
    assert "stages/lib/gates.py" in closure - declared_sources(stage)
