"""``python -m serving.decisions show REQUEST_ID [--repo DIR] | list [--since]
[--model-version] [--client] [--client-request-id] | quality [--since] [--model-version]
[--metrics] [--min-labels] [--format table|json] | sql STATEMENT [--format table|jsonl]``.

Reads ``DIGITS_DECISION_LOG_DIR`` (or ``--dir``) with DuckDB: the decision records
(``decisions-*.jsonl``, every schema version) and the feedback records
(``feedback-*.jsonl``). ``list`` prints records as JSON lines; ``show`` prints, for each
record of the request id, ``{"chain": ..., "record": ...}``: the lineage chain request id ->
model version -> registry version and stage -> commit -> params -> raw-data md5
(:mod:`serving.decisions.trace`; the commit is read in ``--repo``, default the current
directory), then the record itself. ``REQUEST_ID`` is the service's id (the answer's
``X-Request-ID``); a client's own id is found with ``list --client-request-id``.

``quality`` joins the feedback to the decisions and reports, per model version, the label
coverage, the accuracy with its 95 % Wilson interval beside the test split's
(``--metrics``, default ``reports/metrics.json``) and a verdict (consistent, degraded, or
too few labels under ``--min-labels``, default 100), recall per class, the most frequent
confusions and the accuracy of OOD-flagged rows apart (:mod:`serving.decisions.quality`).

``sql`` runs an auditor's own statement over the views ``decisions``, ``feedback`` and
``bad_lines`` (:mod:`serving.decisions.catalog`), e.g.
``sql "SELECT model_version, count(*) FROM decisions GROUP BY ALL"``.

A line that is not a record is skipped and reported on stderr (file and line number) with
a count: never fatal. Exit status: 0; 1 when ``show`` finds no record; 2 for a bad argument,
a broken lineage chain, bad SQL, or a missing tool library: DuckDB (and scipy, tabulate)
come with the dev lock (``make venv``), not with the service image.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec

from serving.cli import EnvOption
from serving.decisions.catalog import BadLine, Catalog, QueryError
from serving.decisions.quality import MIN_LABELS, TOP_CONFUSIONS, as_json, quality
from serving.decisions.quality_table import render
from serving.decisions.query import find, parse_since, select
from serving.decisions.sql import FORMATS, run_sql
from serving.decisions.trace import TraceError, trace

LOG_DIR = EnvOption("--dir", "DIGITS_DECISION_LOG_DIR", "decision log directory")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m serving.decisions", description=__doc__)
    LOG_DIR.add_to(parser)
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
    report = commands.add_parser("quality", help="live accuracy per model version (feedback)")
    report.add_argument("--since", help=f"decisions made since: {since}")
    report.add_argument("--model-version")
    report.add_argument(
        "--metrics",
        type=Path,
        default=Path("reports/metrics.json"),
        help="the test split's metrics (default: reports/metrics.json)",
    )
    report.add_argument(
        "--min-labels",
        type=int,
        default=MIN_LABELS,
        help=f"labelled rows a verdict needs (default: {MIN_LABELS})",
    )
    report.add_argument(
        "--confusions",
        type=int,
        default=TOP_CONFUSIONS,
        help=f"most frequent confusions shown per version (default: {TOP_CONFUSIONS})",
    )
    report.add_argument("--format", choices=("table", "json"), default="table")
    sql = commands.add_parser("sql", help="an auditor's SQL over the decisions/feedback views")
    sql.add_argument("statement", help="DuckDB SQL; views: decisions, feedback, bad_lines")
    sql.add_argument("--format", choices=FORMATS, default="table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser()
    args = arguments.parse_args(argv)
    directory = LOG_DIR.path(arguments, args)
    if args.command == "quality" and (args.min_labels < 1 or args.confusions < 0):
        arguments.error("--min-labels must be at least 1 and --confusions at least 0")
    skipped: list[BadLine] = []
    try:
        since = parse_since(args.since) if getattr(args, "since", None) else None
        with Catalog(directory, feedback=args.command in ("quality", "sql")) as catalog:
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
    if args.command == "quality":
        figures = quality(
            catalog, args.metrics, since, args.model_version, args.min_labels, args.confusions
        )
        out.write(as_json(figures) if args.format == "json" else render(figures).encode())
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
