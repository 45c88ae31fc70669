"""Every test the risk register cites exists and passed in this run of the suite.

    pytest --junitxml=build/test-report.xml
    python -m tools.cited_tests build/test-report.xml        (the last step of `make test`)

Each row's "verified by" cell must name at least one test file (`tests/...py`) or test
(`tests/...py::test_name`). Against the JUnit report of the whole run: a named test must
have run and passed in every parametrisation; a named file must have passed tests and no
failed or skipped one. A cited test that was deleted, renamed, deselected, skipped or not
collected therefore fails the build, not only one that failed.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from defusedxml import ElementTree

REGISTER = Path("docs/risk_register.md")
ROW = re.compile(r"^\| (R\d\d) \|")
CITED_TEST = re.compile(r"`(tests/[\w./-]+?\.py)(?:::(\w+))?`")


@dataclass(frozen=True)
class Citation:
    risk: str
    path: str
    test: str | None

    @property
    def module(self) -> str:
        """The JUnit classname pytest gives the tests of this file."""
        return self.path.removesuffix(".py").replace("/", ".")

    def __str__(self) -> str:
        return self.path + (f"::{self.test}" if self.test else "")


def citations(register_text: str) -> tuple[list[Citation], list[str]]:
    """The tests each risk cites in its last ("verified by") cell, and rows citing none."""
    found: list[Citation] = []
    uncited: list[str] = []
    for line in register_text.splitlines():
        row = ROW.match(line)
        if not row:
            continue
        verified_by = line.rstrip().rstrip("|").rsplit("|", 1)[-1]
        cited = [Citation(row.group(1), m.group(1), m.group(2)) for m in CITED_TEST.finditer(line)]
        cited = [c for c in cited if f"`{c}`" in verified_by]
        if not cited:
            uncited.append(row.group(1))
        found += cited
    return found, uncited


def outcomes(report: Path) -> list[tuple[str, str, str]]:
    """(classname, name, outcome) of every test case in a JUnit XML report."""
    cases = []
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        children = {child.tag for child in case}
        if children & {"failure", "error"}:
            outcome = "failed"
        elif "skipped" in children:
            outcome = "skipped"
        else:
            outcome = "passed"
        cases.append((case.get("classname", ""), case.get("name", ""), outcome))
    return cases


def problems(register_text: str, cases: list[tuple[str, str, str]]) -> list[str]:
    """Why the suite run does not back the register (empty when it does)."""
    cited, uncited = citations(register_text)
    found = [f"{risk}: 'verified by' names no test under tests/" for risk in uncited]
    for citation in cited:
        in_file = [
            (name, outcome)
            for classname, name, outcome in cases
            if classname == citation.module or classname.startswith(citation.module + ".")
        ]
        if citation.test is not None:
            in_file = [
                (name, outcome)
                for name, outcome in in_file
                if name == citation.test or name.startswith(citation.test + "[")
            ]
        tally = Counter(outcome for _, outcome in in_file)
        if not in_file:
            found.append(f"{citation.risk}: {citation} did not run (missing or deselected)")
        elif tally["failed"] or tally["skipped"] or not tally["passed"]:
            counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(tally.items()))
            found.append(f"{citation.risk}: {citation} did not pass ({counts})")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("report", type=Path, help="JUnit XML report of the whole suite")
    parser.add_argument("--register", type=Path, default=REGISTER)
    args = parser.parse_args(argv)
    try:
        register_text = args.register.read_text(encoding="utf-8")
        cases = outcomes(args.report)
    except (OSError, ElementTree.ParseError) as exc:
        print(f"cited_tests: cannot read the inputs: {exc}", file=sys.stderr)
        return 2
    found = problems(register_text, cases)
    for problem in found:
        print(f"cited_tests: {problem}", file=sys.stderr)
    if found:
        return 1
    cited, _ = citations(register_text)
    print(f"cited_tests: all {len(cited)} tests cited by {args.register} ran and passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
