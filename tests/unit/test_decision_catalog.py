"""The decision query tool over DuckDB (serving/decisions/catalog.py, query.py): ``list`` and
``show`` print the records exactly as the service wrote them, every line that is not a
record is skipped and reported with its file and line, and the exit statuses."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from serving.decisions.__main__ import main as decisions_main
from serving.decisions.catalog import Catalog
from serving.decisions.record import RecordRegistry
from tests.decision_files import START, decision, feedback, write_decisions, write_feedback

pytestmark = pytest.mark.unit
FIRST, SECOND = "decisions-host-1-0000.jsonl", "decisions-host-1-0001.jsonl"


def documents(text: bytes) -> list[Any]:
    """The JSON documents printed one after the other (show's indented records)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    body = text.decode()
    while body[at:].strip():
        document, end = decoder.raw_decode(body, at + len(body[at:]) - len(body[at:].lstrip()))
        found.append(document)
        at = end
    return found


def run(capsys: pytest.CaptureFixture[bytes], *argv: str) -> tuple[int, bytes, str]:
    status = decisions_main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err.decode()


@pytest.fixture
def records(tmp_path: Path) -> tuple[Path, list[bytes]]:
    """Six records in two rotated files: two versions, two clients, one client request id,
    one hour apart."""
    items = [
        decision(
            f"r{i}",
            [i % 10, (i + 1) % 10][: 1 + i % 2],
            version="v1" if i < 4 else "v2",
            started=START + 3600 * i,
            client="alice" if i % 2 else "bob",
            client_request_id="audit-7" if i in (1, 5) else None,
            registry=RecordRegistry("v1.0.0", "prod", None) if i == 2 else None,
        )
        for i in range(6)
    ]
    lines = write_decisions(tmp_path, items[:3], FIRST) + write_decisions(
        tmp_path, items[3:], SECOND
    )
    return tmp_path, lines


def test_list_prints_every_record_byte_for_byte_in_file_and_line_order(
    records: tuple[Path, list[bytes]], capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    directory, lines = records
    assert run(capsysbinary, "--dir", str(directory), "list") == (0, b"".join(lines), "")


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (["--model-version", "v2"], [4, 5]),
        (["--client", "alice"], [1, 3, 5]),
        (["--client-request-id", "audit-7"], [1, 5]),
        (["--since", "2025-11-30T07:20:00Z"], [2, 3, 4, 5]),
        (["--since", "2025-11-30T07:20:00.001Z"], [3, 4, 5]),
        (["--since", "2025-11-30T08:20:00", "--client", "bob", "--model-version", "v2"], [4]),
        (["--client", "carol"], []),
    ],
)
def test_list_filters(
    records: tuple[Path, list[bytes]],
    capsysbinary: pytest.CaptureFixture[bytes],
    filters: list[str],
    expected: list[int],
) -> None:
    directory, lines = records
    status, out, _ = run(capsysbinary, "--dir", str(directory), "list", *filters)
    assert (status, out) == (0, b"".join(lines[i] for i in expected))


def test_show_prints_the_chain_and_the_record(
    records: tuple[Path, list[bytes]], capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    directory, lines = records
    status, out, err = run(capsysbinary, "--dir", str(directory), "show", "r4")
    assert (status, err) == (0, "")
    shown = json.loads(out)
    assert shown["record"] == json.loads(lines[4])
    assert out == msgspec.json.format(msgspec.json.encode(shown), indent=2) + b"\n"
    assert shown["chain"] == {
        "request_id": "r4",
        "model_version": "v2",
        "registry_version": None,
        "registry_stage": None,
        "commit": None,
        "params": None,
        "raw_data": None,
        "note": shown["chain"]["note"],
    }
    assert "no registry version" in shown["chain"]["note"]
    # The same id recorded twice (a re-written line): both records, in file order.
    write_decisions(directory, [decision("r4", [7], version="v2")], FIRST)
    status, out, _ = run(capsysbinary, "--dir", str(directory), "show", "r4")
    assert status == 0
    assert [item["record"]["labels"] for item in documents(out)] == [[7], [4]]


def test_exit_statuses(
    records: tuple[Path, list[bytes]],
    capsysbinary: pytest.CaptureFixture[bytes],
    tmp_path: Path,
) -> None:
    directory, _ = records
    status, out, err = run(capsysbinary, "--dir", str(directory), "show", "audit-7")
    assert (status, out) == (1, b"")
    assert "no decision record with request id 'audit-7'" in err
    # r2's registry entry names no commit: the chain stops there, no error.
    assert run(capsysbinary, "--dir", str(directory), "show", "r2")[0] == 0
    committed = RecordRegistry("v1.0.0", "prod", "ab" * 20)  # not a commit of this repository
    write_decisions(directory, [decision("lost", [1], registry=committed)], SECOND)
    status, out, err = run(capsysbinary, "--dir", str(directory), "show", "lost")
    assert (status, out) == (2, b"")
    assert f"commit {'ab' * 20} has no dvc.lock" in err
    status, _, err = run(capsysbinary, "--dir", str(tmp_path / "absent"), "list")
    assert status == 2
    assert "is not a directory" in err
    status, _, err = run(capsysbinary, "--dir", str(directory), "list", "--since", "yesterday")
    assert status == 2
    assert "expected ISO 8601 or 30m/2h/7d" in err
    with pytest.raises(SystemExit) as usage:
        decisions_main(["--dir", str(directory), "list", "--format", "json"])
    assert usage.value.code == 2
    assert "unrecognized arguments: --format" in capsysbinary.readouterr().err.decode()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(capsysbinary, "--dir", str(empty), "list") == (0, b"", "")
    assert run(capsysbinary, "--dir", str(empty), "show", "r1")[0] == 1


def test_lines_that_are_not_records_are_skipped_counted_and_located(
    records: tuple[Path, list[bytes]], capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Torn, not JSON, not UTF-8, an object that is no record, a record with an unknown
    field: each skipped and reported with file and line; blank lines are not lines; every
    record around them is still listed."""
    directory, lines = records
    path = directory / FIRST
    record = json.loads(lines[0])
    bad = [
        lines[1][:50],  # torn: a worker killed mid-write
        b"not json",
        b'{"request_id": "\xff\xfe"}',  # not UTF-8
        b'{"hello": "world"}',
        json.dumps({**record, "surprise": 1}).encode(),
        json.dumps([record]).encode(),
    ]
    path.write_bytes(
        lines[0] + b"\n  \n" + b"\n".join(bad) + b"\n" + lines[1].replace(b"\n", b"\r\n")
    )
    status, out, err = run(capsysbinary, "--dir", str(directory), "list")
    assert status == 0
    assert out == b"".join([lines[0], lines[1], *lines[3:]])
    reported = [line for line in err.splitlines() if "skipped a line" in line]
    where = re.compile(rf"^serving\.decisions: skipped a line that is not a record: {path}:(\d+): ")
    assert [int(where.match(line)[1]) for line in reported] == list(range(4, 10))  # type: ignore[index]
    assert "JSON is malformed" in reported[1]
    assert "unknown field `surprise`" in reported[4]
    assert err.splitlines()[-1] == "serving.decisions: 6 unreadable line(s) skipped"
    # show reports them too, and still finds a record after them
    status, out, err = run(capsysbinary, "--dir", str(directory), "show", "r1")
    assert status == 0
    assert json.loads(out)["record"]["request_id"] == "r1"
    assert "6 unreadable line(s) skipped" in err


def test_a_feedback_line_is_checked_against_the_feedback_record(tmp_path: Path) -> None:
    """Each file kind against its own record type: a decision record in a feedback file
    is a bad line, and the other way round."""
    item = decision("r1", [3])
    lines = write_decisions(tmp_path, [item])
    write_feedback(tmp_path, [feedback("r1", [3], item)])
    with (tmp_path / "feedback-host-1-0000.jsonl").open("ab") as out:
        out.write(lines[0])
    with (tmp_path / FIRST).open("ab") as out:
        out.write(msgspec.json.encode(feedback("r1", [4])) + b"\n")
    with Catalog(tmp_path, feedback=True) as catalog:
        found = catalog.db.execute("SELECT kind, line FROM bad_lines ORDER BY kind").fetchall()
        assert found == [("decision", 2), ("feedback", 2)]
        count = "SELECT (SELECT count(*) FROM decisions), (SELECT count(*) FROM feedback)"
        assert catalog.db.execute(count).fetchall() == [(1, 1)]
    with Catalog(tmp_path) as catalog:  # show and list read the decision files only
        assert [bad.line for bad in catalog.bad_lines()] == [2]
        assert catalog.db.execute("SELECT count(*) FROM feedback").fetchall() == [(0,)]
