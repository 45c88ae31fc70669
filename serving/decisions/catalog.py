"""The record files as DuckDB views: ``decisions``, ``feedback`` and ``bad_lines``.

DuckDB reads the files themselves (``read_blob``: bytes, so a line that is not UTF-8 is a
bad line, not a failed query), splits them into numbered lines and keeps a line as a record
only if it decodes as one: :class:`~serving.decisions.record.DecisionRecord` or an older
version (:mod:`serving.decisions.legacy`) in ``decisions-*.jsonl``,
:class:`~serving.feedback.record.FeedbackRecord` in ``feedback-*.jsonl``. The check is the
records' own msgspec types, run inside the query as a DuckDB function, so "a record" means
exactly what the service writes. Any other non-blank line (torn by a killed worker, not
JSON, an object that is not a record, an unknown field) is a row of ``bad_lines`` with its
file, line number and why; it is never fatal.

The lines are read once per :class:`Catalog` (the table ``record_lines``: ``kind``, ``file``,
``line``, ``text``, ``error``); the views type them at each query:

- ``decisions``: every field of every schema version (absent ones null: ``client_request_id``
  and ``input_hash`` before version 3, ``registry`` in version 1, ``registry_tag`` after
  it), ``time`` as ``TIMESTAMPTZ``, then ``file`` and ``line``.
- ``feedback``: the feedback record's fields, ``time`` as ``TIMESTAMPTZ``, ``file``, ``line``.
- ``bad_lines``: ``kind`` (decision or feedback), ``file``, ``line``, ``reason``.

DuckDB is a tool of the query CLI, not of the service: it is imported when a catalog is
opened, and its absence is a :class:`MissingToolError` error that says how to install it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

from serving.decisions.legacy import DecisionRecordV1, DecisionRecordV2, LegacyRecord
from serving.decisions.record import DecisionRecord
from serving.feedback.record import FILE_PREFIX as FEEDBACK_PREFIX
from serving.feedback.record import FeedbackRecord

if TYPE_CHECKING:
    import duckdb

AnyRecord = DecisionRecord | LegacyRecord
# What a decision line decodes as: a record of any schema version, told apart by its tag.
RECORD_TYPES: Any = DecisionRecord | DecisionRecordV2 | DecisionRecordV1
DECISION_FILES = "decisions-*.jsonl"
FEEDBACK_FILES = f"{FEEDBACK_PREFIX}-*.jsonl"
INSTALL_HINT = (
    "the service image installs requirements/serving.lock only; run the query tool where the "
    "dev lock is installed (make venv, then .venv/bin/python -m serving.decisions ...)"
)


class QueryError(ValueError):
    """A bad query argument or an unreadable record directory."""


class MissingToolError(QueryError):
    """A library the query tool needs (not the service) is not installed."""


def tool(name: str) -> ModuleType:
    """``import name``, or :class:`MissingToolError` saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise MissingToolError(
            f"python -m serving.decisions needs {name}, which is not installed: {INSTALL_HINT}"
        ) from None


class BadLine(NamedTuple):
    """A line that is not a record: where it is and why."""

    path: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


_DECODERS = {
    "decision": msgspec.json.Decoder(RECORD_TYPES),
    "feedback": msgspec.json.Decoder(FeedbackRecord),
}


def record_error(kind: str, line: bytes) -> str | None:
    """Why ``line`` is not a record of ``kind`` (None: it is one)."""
    try:
        _DECODERS[kind].decode(line)
    except msgspec.DecodeError as exc:
        return str(exc)
    return None


# One row per non-blank line of every file: the file's bytes are split on newlines as
# DuckDB's escaped text of a BLOB (every byte outside printable ASCII, and the quote and the
# backslash, written \xNN), then each piece is turned back into its bytes: no line can fail
# the query, whatever its bytes.
_LINES = r"""
CREATE OR REPLACE TABLE record_lines AS
WITH files AS (
    SELECT filename AS file, string_split(content::VARCHAR, '\x0A') AS pieces
    FROM read_blob($files)
), pieces AS (
    SELECT
        file,
        generate_subscripts(pieces, 1) AS line,
        unnest(pieces)::BLOB AS bytes,
        CASE WHEN starts_with(parse_filename(file), 'decisions-') THEN 'decision'
             ELSE 'feedback' END AS kind
    FROM files
)
SELECT kind, file, line, try(decode(bytes)) AS text, record_error(kind, bytes) AS error
FROM pieces
WHERE coalesce(trim(try(decode(bytes)), chr(32) || chr(9) || chr(11) || chr(12) || chr(13)), 'x')
    <> ''
"""

# The views type every line that is a record, once per query: view name -> the kind of its
# lines, and the JSON structure its rows are read with (the decisions' lists every field of
# every version: version 3's, then what only older ones have).
_TYPED_VIEWS = {
    "decisions": (
        "decision",
        """{
        "schema_version": "INTEGER", "request_id": "VARCHAR", "client_request_id": "VARCHAR",
        "time": "TIMESTAMPTZ", "client_id": "VARCHAR", "route": "VARCHAR", "method": "VARCHAR",
        "status": "INTEGER", "model_version": "VARCHAR",
        "registry": {"version": "VARCHAR", "stage": "VARCHAR", "commit": "VARCHAR"},
        "rows": "INTEGER", "input_hash": "VARCHAR", "input_sha256": "VARCHAR",
        "labels": "INTEGER[]", "top_probability": "DOUBLE[]", "ood": "BOOLEAN[]",
        "ood_score": "DOUBLE[]", "latency_ms": "DOUBLE", "inputs": "DOUBLE[][]",
        "registry_tag": "VARCHAR"}""",
    ),
    "feedback": (
        "feedback",
        """{
        "schema_version": "INTEGER", "feedback_id": "VARCHAR", "request_id": "VARCHAR",
        "time": "TIMESTAMPTZ", "client_id": "VARCHAR", "labels": "INTEGER[]",
        "matched": "BOOLEAN", "model_version": "VARCHAR", "predicted": "INTEGER[]",
        "ood": "BOOLEAN[]"}""",
    ),
}


def _typed_view(view: str, kind: str, structure: str) -> str:
    """The view of the record lines of ``kind``, typed with the JSON ``structure``."""
    return f"""
CREATE OR REPLACE VIEW {view} AS
SELECT unnest(json_transform(text, '{structure}')), file, line
FROM record_lines WHERE kind = '{kind}' AND error IS NULL;
"""  # noqa: S608  # nosec B608 - only ever called with the constants above


_BAD_LINES_VIEW = """
CREATE OR REPLACE VIEW bad_lines AS
SELECT kind, file, line, error AS reason FROM record_lines WHERE error IS NOT NULL;
"""
_VIEWS = "".join(
    [*(_typed_view(view, *typed) for view, typed in _TYPED_VIEWS.items()), _BAD_LINES_VIEW]
)


class Catalog:
    """An in-memory DuckDB over the record files of ``directory`` (decision files, and the
    feedback files too with ``feedback=True``); a context manager (closes the connection)."""

    def __init__(self, directory: Path, feedback: bool = False) -> None:
        if not directory.is_dir():
            raise QueryError(f"{directory} is not a directory (DIGITS_DECISION_LOG_DIR)")
        patterns = (DECISION_FILES, FEEDBACK_FILES) if feedback else (DECISION_FILES,)
        files = sorted(str(path) for pattern in patterns for path in directory.glob(pattern))
        duck: Any = tool("duckdb")
        self.db: duckdb.DuckDBPyConnection = duck.connect(
            config={"autoinstall_known_extensions": False, "TimeZone": "UTC"}
        )
        self.db.create_function(
            "record_error",
            record_error,
            ["VARCHAR", "BLOB"],
            "VARCHAR",
            null_handling="special",
            side_effects=False,
        )
        self.db.execute(_LINES, {"files": files})
        self.db.execute(_VIEWS)

    def bad_lines(self) -> list[BadLine]:
        """Every line that is not a record, in file and line order."""
        found = self.db.execute("SELECT file, line, reason FROM bad_lines ORDER BY file, line")
        return [BadLine(Path(file), line, reason) for file, line, reason in found.fetchall()]

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
