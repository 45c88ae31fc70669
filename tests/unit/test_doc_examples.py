"""Every shell and HTTP block of README.md and docs/*.md is accounted for (tests/doc_examples.py):
run by a named test that reads it from the document, or marked illustrative with a reason."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.doc_examples import (
    REPO_ROOT,
    Example,
    dangling_markers,
    documents,
    examples,
    examples_for,
)

MIN_REASON_LENGTH = 10  # "needs a cloud account": a reason, not "n/a"


def _test_function(test_id: str, root: Path = REPO_ROOT) -> ast.FunctionDef | None:
    """The function ``path::name`` (or ``path::Class::name``) names, parsed with ``ast``."""
    path, _, qualified = test_id.partition("::")
    file = root / path
    if not path.startswith("tests/") or not file.is_file() or not qualified:
        return None
    scope: list[ast.stmt] = ast.parse(file.read_text(encoding="utf-8")).body
    *classes, name = qualified.split("::")
    for class_name in classes:
        owner = next(
            (n for n in scope if isinstance(n, ast.ClassDef) and n.name == class_name), None
        )
        if owner is None:
            return None
        scope = owner.body
    return next((n for n in scope if isinstance(n, ast.FunctionDef) and n.name == name), None)


def _calls_examples_for(function: ast.FunctionDef) -> bool:
    return any(
        isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id == "examples_for")
            or (isinstance(node.func, ast.Attribute) and node.func.attr == "examples_for")
        )
        for node in ast.walk(function)
    )


def test_every_shell_and_http_block_carries_a_marker() -> None:
    found = examples()
    assert len(found) >= 20, "the parser found almost no blocks: is it still reading the docs?"
    unmarked = [str(example) for example in found if example.marker is None]
    assert unmarked == [], "add <!-- runs-in: tests/...::test --> or <!-- illustrative: why -->"


def test_every_illustrative_block_says_why() -> None:
    vague = [
        f"{example}: {example.value!r}"
        for example in examples()
        if example.marker == "illustrative" and len(example.value) < MIN_REASON_LENGTH
    ]
    assert vague == []


def test_every_runs_in_names_a_test_that_reads_its_blocks() -> None:
    runs_in = [example for example in examples() if example.marker == "runs-in"]
    assert runs_in, "no documented command is run by the suite"
    wrong: list[str] = []
    for example in runs_in:
        function = _test_function(example.value)
        if function is None:
            wrong.append(f"{example}: no test function {example.value}")
        elif not _calls_examples_for(function):
            wrong.append(f"{example}: {example.value} never calls examples_for")
    assert wrong == []


def test_no_marker_is_left_without_its_block() -> None:
    assert [marker for path in documents() for marker in dangling_markers(path)] == []


@pytest.fixture
def document(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        "from tests.doc_examples import examples_for\n\n"
        "def test_runs():\n    assert examples_for('tests/test_x.py::test_runs')\n\n"
        "def test_forgets():\n    pass\n",
        encoding="utf-8",
    )
    readme = tmp_path / "README.md"
    readme.write_text(
        "# t\n\n"
        "<!-- runs-in: tests/test_x.py::test_runs -->\n\n\n"
        "```bash\necho run\n```\n\n"
        "<!--\n  illustrative: needs a\n  cloud account\n-->\n"
        "```sh\ngcloud run deploy\n```\n\n"
        "Some prose.\n\n"
        "```console\n$ echo unmarked\n```\n\n"
        "```\n$ echo unlabelled\nunlabelled\n```\n\n"
        '```json\n{"not": "shell"}\n```\n\n'
        "```\nplain text, no prompt\n```\n\n"
        "<!-- illustrative: a marker with no block after it -->\n\n"
        "Prose, not a block.\n\n"
        "- a list item\n\n"
        "  <!-- runs-in: tests/test_x.py::test_forgets -->\n"
        "  ```http\n  GET /health HTTP/1.1\n  ```\n",
        encoding="utf-8",
    )
    return tmp_path


def test_parser_reads_markers_blank_lines_and_reasons(document: Path) -> None:
    found = examples(root=document)
    summary = [(e.line, e.language, e.marker, e.value) for e in found]
    assert summary == [
        (6, "bash", "runs-in", "tests/test_x.py::test_runs"),
        (14, "sh", "illustrative", "needs a\n  cloud account"),
        (20, "console", None, ""),
        (24, "console", None, ""),  # no language, but a $ prompt: still a command
        (44, "http", "runs-in", "tests/test_x.py::test_forgets"),
    ]
    assert found[0].text == "echo run\n"
    assert found[4].text == "GET /health HTTP/1.1\n"  # the list item's indentation removed
    assert found[0] == Example("README.md", 6, "bash", "echo run\n", "runs-in", found[0].value)


def test_examples_for_ignores_parameters_and_other_tests(document: Path) -> None:
    texts = [e.text for e in examples_for("tests/test_x.py::test_runs[podman]", root=document)]
    assert texts == ["echo run\n"]
    assert examples_for("tests/test_x.py::test_other", root=document) == []


def test_dangling_markers_name_the_line(document: Path) -> None:
    assert dangling_markers(document / "README.md", root=document) == ["README.md:37"]


def test_the_named_test_must_exist_and_read_its_blocks(document: Path) -> None:
    runs = _test_function("tests/test_x.py::test_runs", root=document)
    forgets = _test_function("tests/test_x.py::test_forgets", root=document)
    assert runs is not None
    assert _calls_examples_for(runs)
    assert forgets is not None
    assert not _calls_examples_for(forgets)
    assert _test_function("tests/test_x.py::test_missing", root=document) is None
    assert _test_function("tests/test_y.py::test_runs", root=document) is None
    assert _test_function("README.md::test_runs", root=document) is None
