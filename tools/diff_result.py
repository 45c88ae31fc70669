"""The comparison of two versions of one file and its verdict (tools/content_diff.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from tools.numeric_diff import NumericDiff, fmt

MAX_DETAILS = 12


class Category(Enum):
    IDENTICAL = "identical"
    FORMATTING = "formatting"
    NOISE = "noise"
    HASHES = "hashes"
    SUBSTANTIVE = "substantive"
    NOT_COMPARED = "not compared"


@dataclass
class ContentDiff:
    """The comparison of one file: structural differences, numeric ones, and a text diff."""

    kind: str
    structural: list[str] = field(default_factory=list)
    numeric: list[tuple[str, NumericDiff]] = field(default_factory=list)
    diff: list[str] = field(default_factory=list)
    hashes: int = 0  # lines of a text that differ in hex hashes
    compared: bool = True
    identical: bool = False

    @property
    def category(self) -> Category:
        if self.identical:
            return Category.IDENTICAL
        if not self.compared:
            return Category.NOT_COMPARED
        if self.structural or any(not d.noise for _, d in self.numeric):
            return Category.SUBSTANTIVE
        if self.hashes:
            return Category.HASHES
        return Category.NOISE if self.numeric else Category.FORMATTING

    @property
    def largest(self) -> tuple[str, NumericDiff] | None:
        """The numeric comparison to quote: the worst one beyond noise, else the largest."""

        def severity(item: tuple[str, NumericDiff]) -> tuple[bool, float]:
            diff = item[1]
            pair = diff.worst or diff.largest_rel
            return diff.worst is not None, pair.relative

        return max(self.numeric, key=severity, default=None)

    @property
    def verdict(self) -> str:
        category, largest = self.category, self.largest
        if category is Category.IDENTICAL:
            return "identical content"
        if category is Category.NOT_COMPARED:
            return f"differs, not compared ({self.kind})"
        if category is Category.FORMATTING:
            return "formatting only: the same values"
        if category is Category.HASHES:
            lines = "1 line" if self.hashes == 1 else f"{self.hashes} lines"
            return f"only hashes changed ({lines}): it follows other outputs"
        if category is Category.NOISE and largest is not None:
            diff = largest[1]
            return (
                f"numeric noise only (max rel diff {fmt(diff.largest_rel.relative)},"
                f" max abs diff {fmt(diff.largest_abs.absolute)})"
            )
        reasons = []
        if self.structural:
            more = len(self.structural) - 1
            reasons.append(self.structural[0] + (f" (+{more} more)" if more else ""))
        worst = largest[1].worst if largest is not None else None
        if largest is not None and worst is not None:
            reasons.append(
                f"{largest[1].beyond} number(s) beyond noise in {largest[0]},"
                f" largest rel diff {worst.describe()}"
            )
        return "substantive change: " + "; ".join(reasons)

    def details(self) -> list[str]:
        """Report lines: the numeric comparisons, then the structural differences, limited."""
        lines = [f"{name}: {d.describe()}" for name, d in self.numeric]
        lines += self.structural
        if len(lines) > MAX_DETAILS:
            lines = [*lines[:MAX_DETAILS], f"... and {len(lines) - MAX_DETAILS} more"]
        return lines


def short(value: Any) -> str:
    """A value in a report line: JSON, at most 60 characters."""
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
