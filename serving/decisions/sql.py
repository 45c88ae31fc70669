"""``python -m serving.decisions sql "SELECT ..."``: an auditor's own SQL over the records.

The statement runs in the catalog's DuckDB (:mod:`serving.decisions.catalog`), where the
views ``decisions``, ``feedback`` and ``bad_lines`` read the record directory; the files
themselves are never written. The result prints as a text table, or as JSON lines (one
object per row, column names as keys, times in RFC 3339) with ``--format jsonl``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from serving.decisions.catalog import Catalog, QueryError, tool

FORMATS = ("table", "jsonl")
_ENCODER = msgspec.json.Encoder(enc_hook=str)


def run_sql(catalog: Catalog, statement: str, output: str = "table") -> bytes:
    """The result of ``statement`` (the last one, if several) in the ``output`` format."""
    duckdb: Any = tool("duckdb")
    try:
        result = catalog.db.execute(statement)
        columns = [column[0] for column in result.description or ()]
        rows = result.fetchall() if columns else []
    except duckdb.Error as exc:
        raise QueryError(f"SQL: {exc}") from None
    if not columns:
        return b""
    if output == "jsonl":
        return b"".join(
            _ENCODER.encode(dict(zip(columns, row, strict=True))) + b"\n" for row in rows
        )
    tabulate: Any = tool("tabulate")
    text: str = tabulate.tabulate(
        rows, columns, tablefmt="simple", disable_numparse=True, missingval="NULL"
    )
    return text.encode() + b"\n"
