"""One JUnit XML report of several pytest runs: the report `make test` checks.

    python -m tools.junit_merge --out build/test-report.xml build/junit/unit.xml ...

`make test` runs the test tiers as separate pytest runs (in parallel where they can, then
the serial tests); tools/cited_tests.py must see every tier, so it reads the merged report.
Each input's <testsuite> elements are kept as they are, in the order given, under one
<testsuites> root. An input that is missing or not a pytest JUnit report is an error (a tier
that did not run must not look like one without tests). The output is written atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from defusedxml import ElementTree

from stages.lib.artifacts import atomic_write_bytes

ROOT = b'<testsuites name="pytest tests"/>'


class ReportError(Exception):
    """An input that is not a JUnit report of a pytest run."""


def merge(reports: list[Path]) -> bytes:
    """The XML of one report holding every <testsuite> of ``reports``."""
    merged = ElementTree.fromstring(ROOT)
    for report in reports:
        try:
            root = ElementTree.parse(report).getroot()
        except (OSError, ElementTree.ParseError) as exc:
            raise ReportError(f"{report}: {exc}") from exc
        suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
        if root.tag not in ("testsuite", "testsuites") or not suites:
            raise ReportError(f"{report}: not a JUnit report (root <{root.tag}>, no <testsuite>)")
        merged.extend(suites)
    xml: bytes = ElementTree.tostring(merged, encoding="utf-8", xml_declaration=True)
    return xml


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, required=True, help="the merged report")
    parser.add_argument("reports", type=Path, nargs="+", help="JUnit XML reports, in order")
    args = parser.parse_args(argv)
    try:
        xml = merge(args.reports)
    except ReportError as exc:
        print(f"junit_merge: {exc}", file=sys.stderr)
        return 2
    try:
        atomic_write_bytes(args.out, xml)
    except OSError as exc:
        print(f"junit_merge: cannot write the report: {exc}", file=sys.stderr)
        return 2
    print(f"junit_merge: {len(args.reports)} reports -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
