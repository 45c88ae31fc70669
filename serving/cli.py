"""What the service's command-line tools (``python -m serving.access.keys``,
``python -m serving.decisions``) share: the file or directory they work on is an option
whose default is the service's own environment variable, and one of the two must give it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import NamedTuple


class EnvOption(NamedTuple):
    """``flag`` (e.g. ``--dir``), by default ``$variable``; ``what`` names it in the help."""

    flag: str
    variable: str
    what: str

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            self.flag,
            default=os.environ.get(self.variable),
            help=f"{self.what} (default: ${self.variable})",
        )

    def path(self, parser: argparse.ArgumentParser, args: argparse.Namespace) -> Path:
        """The path given, or the usage error (exit status 2) that says how to give it."""
        value: str | None = getattr(args, self.flag.removeprefix("--").replace("-", "_"))
        if not value:
            parser.error(f"set {self.variable} or pass {self.flag}")
        return Path(value)
