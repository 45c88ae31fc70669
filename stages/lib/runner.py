"""The thin shell every stage's ``main()`` runs in.

It pins BLAS/OpenMP threads (so floating-point results are bit-identical run
to run), and turns expected failures into one clear line on stderr and a
non-zero exit code instead of a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from threadpoolctl import threadpool_limits

from stages.lib.artifacts import ArtifactError
from stages.lib.params import ParamsError


class StageError(RuntimeError):
    """An expected, user-facing stage failure (bad data, failed gate, ...)."""


EXIT_FAILURE = 1
EXIT_BAD_PARAMS = 2


def run_stage(name: str, body: Callable[[], None]) -> int:
    """Run a stage body single-threaded; map known failures to exit codes."""
    try:
        with threadpool_limits(limits=1):
            body()
    except ParamsError as exc:
        print(f"{name}: invalid params: {exc}", file=sys.stderr)
        return EXIT_BAD_PARAMS
    except (StageError, ArtifactError, FileNotFoundError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:  # disk full, read-only or vanished output directory, ...
        where = f" {exc.filename}" if exc.filename else ""
        print(f"{name}: error: cannot write output{where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE
    return 0
