"""What `dvc repro` changed: dvc.lock and its outputs, committed (HEAD) against the working tree.

    python -m tools.lock_diff [--lock dvc.lock] [--rev HEAD] [--rtol 1e-9] [--atol 1e-12] [PATH ...]

Per stage: the cmd and params that changed, each dep and out whose md5 changed (old -> new
md5 and size), and outs added or removed. Each changed out is compared by content
(tools/content_diff.py): JSON numbers by path, .npz arrays, ONNX initializers, a short diff
of text, and binaries (joblib) reported as "differs, not compared", never unpickled. Each file
gets a one-line verdict: "numeric noise only" when every changed number is within the noise
thresholds (relative ``--rtol``, default 1e-9, float32 data 16 ulps; or absolute ``--atol``,
default 1e-12: tools/numeric_diff.py explains both) and nothing structural changed; "only
hashes changed" for a text (a generated document) whose lines differ only in the md5s of
other outputs; else "substantive change". PATHs (git pathspecs, e.g. ``reports/ docs/``) add
the files under them that differ from REV although dvc.lock does not show it.

The old version of a file is the one in git at REV, or else the DVC cache object of the md5
that REV's dvc.lock records (CI's clean checkout has no cache: then only the md5s are shown).

The report goes to stdout, and as Markdown to ``$GITHUB_STEP_SUMMARY`` when that is set (the
"pipeline consistency" job in .github/workflows/ci.yml). Exit status: 0 nothing differs,
1 something differs, 2 usage error (no git work tree, unreadable lock, unknown REV).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.lock_compare import LockDiffError, build_report
from tools.lock_report import render_markdown, render_text
from tools.numeric_diff import NOISE_ATOL, NOISE_RTOL, Noise

EXIT_SAME = 0
EXIT_DIFFERS = 1
EXIT_USAGE = 2


def _tolerance(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError("must be a finite number >= 0")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.lock_diff",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument(
        "--lock", type=Path, default=Path("dvc.lock"), help="the lock file (working tree)"
    )
    parser.add_argument(
        "--rev", default="HEAD", help="the committed state to compare with (default HEAD)"
    )
    parser.add_argument(
        "--rtol",
        type=_tolerance,
        default=NOISE_RTOL,
        help=f"largest relative difference that is numeric noise (default {NOISE_RTOL:g})",
    )
    parser.add_argument(
        "--atol",
        type=_tolerance,
        default=NOISE_ATOL,
        help=f"largest absolute difference that is numeric noise (default {NOISE_ATOL:g})",
    )
    parser.add_argument("paths", nargs="*", help="also compare changed files under these paths")
    args = parser.parse_args(argv)
    try:
        report = build_report(args.lock, args.rev, args.paths, Noise(args.rtol, args.atol))
    except LockDiffError as error:
        print(f"lock_diff: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(render_text(report))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with Path(summary).open("a", encoding="utf-8") as handle:  # the runner's append protocol
            handle.write(render_markdown(report))
    return EXIT_DIFFERS if report.differs else EXIT_SAME


if __name__ == "__main__":
    sys.exit(main())
