"""The serving package's layout: small modules, no import cycles, the URL space in one place."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
SERVING = Path(__file__).resolve().parents[2] / "serving"
MAX_LINES = 350


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(SERVING.rglob("*.py")):
        parts = path.relative_to(SERVING.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _imports(path: Path, known: set[str]) -> set[str]:
    """Every serving module ``path`` imports, ``TYPE_CHECKING`` and function-level included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        found.update(name for name in names if name in known)
    return found


def test_every_serving_module_is_small() -> None:
    sizes = {
        name: len(path.read_text(encoding="utf-8").splitlines())
        for name, path in _modules().items()
    }
    assert {name: size for name, size in sizes.items() if size > MAX_LINES} == {}


def test_serving_has_no_import_cycle() -> None:
    modules = _modules()
    graph = {name: _imports(path, set(modules)) - {name} for name, path in modules.items()}
    graph = {name: deps - {"serving"} for name, deps in graph.items()}
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for dep in sorted(graph[name]):
            if state.get(dep) == "open":
                pytest.fail(f"import cycle: {' -> '.join([*trail, name, dep])}")
            if dep not in state:
                visit(dep, [*trail, name])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


@pytest.mark.parametrize("path", ['"/predict"', '"/explain"', "/infer", '"/health"', '"/ready"'])
def test_the_url_space_is_written_only_in_the_route_table(path: str) -> None:
    spelled = sorted(
        name for name, module in _modules().items() if path in module.read_text(encoding="utf-8")
    )
    assert spelled
    assert all(name.startswith("serving.routes") for name in spelled), spelled
