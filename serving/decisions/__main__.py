"""``python -m serving.decisions show REQUEST_ID [--repo DIR] | list [--since]
[--model-version] [--client] [--client-request-id] | sql STATEMENT [--format table|jsonl]``.

Reads ``DIGITS_DECISION_LOG_DIR`` (or ``--dir``) with DuckDB: the decision records
(``decisions-*.jsonl``, every schema version) and the feedback records
(``feedback-*.jsonl``). ``list`` prints records as JSON lines; ``show`` prints, for each
record of the request id, ``{"chain": ..., "record": ...}``: the lineage chain request id ->
model version -> registry version and stage -> commit -> params -> raw-data md5
(:mod:`serving.decisions.trace`; the commit is read in ``--repo``, default the current
directory), then the record itself. ``REQUEST_ID`` is the service's id (the answer's
``X-Request-ID``); a client's own id is found with ``list --client-request-id``.

``sql`` runs an auditor's own statement over the views ``decisions``, ``feedback`` and
``bad_lines`` (:mod:`serving.decisions.catalog`), e.g.
``sql "SELECT model_version, count(*) FROM decisions GROUP BY ALL"``.

A line that is not a record is skipped and reported on stderr (file and line number) with
a count: never fatal. Exit status: 0; 1 when ``show`` finds no record; 2 for a bad argument,
a broken lineage chain, bad SQL, or a missing tool library: DuckDB (and tabulate) come
with the dev lock (``make venv``), not with the service image.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec

from serving.decisions.catalog import BadLine, Catalog, QueryError
from serving.decisions.query import find, parse_since, select
from serving.decisions.sql import FORMATS, run_sql
from serving.decisions.trace import TraceError, trace


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m serving.decisions", description=__doc__)
    parser.add_argument(
        "--dir",
        default=os.environ.get("DIGITS_DECISION_LOG_DIR"),
        help="decision log directory (default: $DIGITS_DECISION_LOG_DIR)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("show", help="the lineage chain and record of one request id")
    show.add_argument("request_id")
    show.add_argument(
        "--repo",
        type=Path,
        default=Path.cwd(),
        help="git clone holding the registry commit (default: the current directory)",
    )
    since = "ISO 8601 time, or 30m / 2h / 7d back from now"
    listing = commands.add_parser("list", help="records matching every filter given")
    listing.add_argument("--since", help=since)
    listing.add_argument("--model-version")
    listing.add_argument("--client", help="authenticated client id")
    listing.add_argument(
        "--client-request-id",
        help="the X-Request-ID the client sent (schema version 3 records; not unique)",
    )
    sql = commands.add_parser("sql", help="an auditor's SQL over the decisions/feedback views")
    sql.add_argument("statement", help="DuckDB SQL; views: decisions, feedback, bad_lines")
    sql.add_argument("--format", choices=FORMATS, default="table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser()
    args = arguments.parse_args(argv)
    if not args.dir:
        arguments.error("set DIGITS_DECISION_LOG_DIR or pass --dir")
    skipped: list[BadLine] = []
    try:
        since = parse_since(args.since) if getattr(args, "since", None) else None
        with Catalog(Path(args.dir), feedback=args.command == "sql") as catalog:
            skipped = catalog.bad_lines()
            return run(args, catalog, since)
    except (QueryError, TraceError) as exc:
        print(f"serving.decisions: {exc}", file=sys.stderr)
        return 2
    finally:
        report(skipped)


def run(args: argparse.Namespace, catalog: Catalog, since: dt.datetime | None) -> int:
    out = sys.stdout.buffer
    if args.command == "show":
        found = find(catalog, args.request_id)
        if not found:
            print(f"no decision record with request id {args.request_id!r}", file=sys.stderr)
            return 1
        for record in found:
            shown = {"chain": trace(record, args.repo), "record": record}
            out.write(msgspec.json.format(msgspec.json.encode(shown), indent=2) + b"\n")
        return 0
    if args.command == "sql":
        out.write(run_sql(catalog, args.statement, args.format))
        return 0
    chosen = select(catalog, since, args.model_version, args.client, args.client_request_id)
    for record in chosen:
        out.write(msgspec.json.encode(record) + b"\n")
    return 0


def report(skipped: list[BadLine]) -> None:
    """Each line that is not a record, then how many (stderr): a torn line is skipped, the
    records after it are still read."""
    for bad in skipped:
        print(f"serving.decisions: skipped a line that is not a record: {bad}", file=sys.stderr)
    if skipped:
        print(f"serving.decisions: {len(skipped)} unreadable line(s) skipped", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
