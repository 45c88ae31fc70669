"""Test helper: decision records encoded in the test process, as the writer's path does."""

from __future__ import annotations

from collections.abc import Sequence

from serving.decisions.packing import Pending, pack
from serving.decisions.record import RecordTime, chunk_lines


def record_lines(items: Sequence[Pending], with_inputs: bool, time_of: RecordTime) -> list[bytes]:
    """The JSON lines of answered requests, in order: :func:`pack`, then :func:`chunk_lines`
    (what the encoder process runs), split into lines."""
    if not items:
        return []
    lines, _ = chunk_lines(pack(items), with_inputs, time_of)
    return lines.splitlines(keepends=True)
