"""``python -m serving.decisions sql``: an auditor's SQL over the views ``decisions``,
``feedback`` and ``bad_lines``; and the query tool without DuckDB (the service image)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from serving.decisions.__main__ import main as decisions_main
from serving.decisions.catalog import Catalog
from serving.decisions.legacy import DecisionRecordV1, DecisionRecordV2
from serving.decisions.record import DecisionRecord
from serving.feedback.record import FeedbackRecord
from tests.decision_files import START, decision, feedback, write_decisions, write_feedback

pytestmark = pytest.mark.unit
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    items = [
        decision("r1", [3, 5], [False, True], version="v1"),
        decision("r2", [8], version="v2", started=START + 60),
    ]
    write_decisions(tmp_path, items)
    write_feedback(tmp_path, [feedback("r1", [3, None], items[0]), feedback("r2", [1])])
    with (tmp_path / "feedback-host-2-0000.jsonl").open("wb") as out:
        out.write(b'{"torn": \n')
    return tmp_path


def sql(
    capsys: pytest.CaptureFixture[str], directory: Path, statement: str, *options: str
) -> tuple[int, str, str]:
    status = decisions_main(["--dir", str(directory), "sql", statement, *options])
    out, err = capsys.readouterr()
    return status, out, err


def test_sql_over_the_decisions_and_feedback_views(
    directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    joined = """
        SELECT d.request_id, d.model_version, d.labels, f.labels AS truth, f.matched, d.time
        FROM decisions d JOIN feedback f USING (request_id) ORDER BY d.request_id
    """
    status, out, err = sql(capsys, directory, joined, "--format", "jsonl")
    assert status == 0
    assert [json.loads(line) for line in out.splitlines()] == [
        {
            "request_id": "r1",
            "model_version": "v1",
            "labels": [3, 5],
            "truth": [3, None],
            "matched": True,
            "time": "2025-11-30T05:20:00Z",
        },
        {
            "request_id": "r2",
            "model_version": "v2",
            "labels": [8],
            "truth": [1],
            "matched": False,
            "time": "2025-11-30T05:21:00Z",
        },
    ]
    # the torn feedback line is a row of bad_lines, and reported as for every command
    assert "feedback-host-2-0000.jsonl:1: " in err
    assert err.splitlines()[-1] == "serving.decisions: 1 unreadable line(s) skipped"
    status, out, _ = sql(
        capsys, directory, "SELECT kind, line FROM bad_lines; SELECT count(*) AS n FROM feedback"
    )
    assert status == 0
    assert out.split() == ["n", "---", "2"]  # a text table of the last statement's result
    status, out, _ = sql(capsys, directory, "SELECT kind, line, reason FROM bad_lines")
    header, _, row = out.splitlines()
    assert header.split() == ["kind", "line", "reason"]
    assert row.split()[:2] == ["feedback", "1"]
    nothing = "SELECT request_id FROM decisions WHERE rows > 2"
    assert sql(capsys, directory, nothing, "--format", "jsonl")[:2] == (0, "")


def test_the_views_have_every_field_of_every_record_version(directory: Path) -> None:
    fields = [
        *DecisionRecord.__struct_fields__,
        *DecisionRecordV2.__struct_fields__,
        *DecisionRecordV1.__struct_fields__,
    ]
    with Catalog(directory, feedback=True) as catalog:
        described = {
            view: [row[0] for row in catalog.db.execute(f"DESCRIBE {view}").fetchall()]
            for view in ("decisions", "feedback")
        }
    assert described["decisions"][0] == "schema_version"
    assert sorted(described["decisions"][1:]) == sorted({*fields, "file", "line"})
    assert described["feedback"] == [
        "schema_version",
        *FeedbackRecord.__struct_fields__,
        "file",
        "line",
    ]


def test_bad_sql_exits_2_and_says_why(directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = sql(capsys, directory, "SELEC 1")
    assert (status, out) == (2, "")
    assert "serving.decisions: SQL: Parser Error" in err
    status, out, err = sql(capsys, directory, "SELECT nope FROM decisions")
    assert (status, out) == (2, "")
    assert 'column "nope"' in err


# The service image installs requirements/serving.lock: no DuckDB. Blocked here through
# sys.modules (any import of it raises ImportError), then the module runs as
# ``python -m serving.decisions`` does: it imports, and says what is missing.
WITHOUT_DUCKDB = """
import runpy, sys
sys.modules["duckdb"] = None
sys.argv = ["serving.decisions", *sys.argv[1:]]
runpy.run_module("serving.decisions", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("command", [["list"], ["show", "r1"], ["quality"], ["sql", "SELECT 1"]])
def test_without_duckdb_every_command_exits_2_and_says_how_to_install_it(
    directory: Path, command: list[str]
) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", WITHOUT_DUCKDB, "--dir", str(directory), *command],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (completed.returncode, completed.stdout) == (2, "")
    assert completed.stderr.startswith(
        "serving.decisions: python -m serving.decisions needs duckdb"
    )
    assert "make venv" in completed.stderr
    assert "requirements/serving.lock" in completed.stderr


def test_decoded_records_are_the_written_ones(directory: Path) -> None:
    """The views read what the files say: the feedback view's rows are the records."""
    written = [
        msgspec.json.decode(line, type=FeedbackRecord)
        for line in (directory / "feedback-host-1-0000.jsonl").read_bytes().splitlines()
    ]
    with Catalog(directory, feedback=True) as catalog:
        rows = catalog.db.execute(
            "SELECT feedback_id, request_id, labels, matched, model_version, predicted, ood "
            "FROM feedback ORDER BY file, line"
        ).fetchall()
    assert rows == [
        (r.feedback_id, r.request_id, r.labels, r.matched, r.model_version, r.predicted, r.ood)
        for r in written
    ]
