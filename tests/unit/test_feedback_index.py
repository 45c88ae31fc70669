"""The in-memory feedback index: bounded, expiring, one answer per row."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from serving.feedback.index import Claim, Decided, MemoryIndex, claim_rows

T = TypeVar("T")
DECIDED = Decided("0123456789ab", (3, 8, 1), (False, True, False))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def test_rows_are_claimed_once_and_a_different_label_conflicts() -> None:
    assert claim_rows([3, None, 7], [None, None, None]) == Claim([], [0, 2], [])
    assert claim_rows([3, None, 7], [3, None, None]) == Claim([], [2], [0])
    # One conflicting row claims nothing, not even the rows that would be new.
    assert claim_rows([4, 5, 7], [3, None, None]) == Claim([0], [], [])


def test_a_decision_resolves_until_its_window_ends() -> None:
    clock = Clock()
    index = MemoryIndex(window=60, size=10, clock=clock)
    index.add("a", DECIDED)
    assert run(index.resolve("a")) == DECIDED
    clock.now += 59.9
    assert run(index.resolve("a")) == DECIDED
    clock.now += 0.2
    assert run(index.resolve("a")) is None
    assert run(index.resolve("never")) is None


def test_the_oldest_decisions_leave_a_full_index() -> None:
    index = MemoryIndex(window=60, size=3)
    for name in "abcd":
        index.add(name, DECIDED)
    assert run(index.resolve("a")) is None
    assert all(run(index.resolve(name)) == DECIDED for name in "bcd")


def test_claims_accumulate_per_row_and_a_release_frees_them() -> None:
    index = MemoryIndex(window=60, size=10)
    index.add("a", DECIDED)
    assert run(index.claim("a", [3, None, None])) == Claim([], [0], [])
    assert run(index.claim("a", [3, 8, None])) == Claim([], [1], [0])
    assert run(index.claim("a", [3, 8, 2])) == Claim([], [2], [0, 1])
    assert run(index.claim("a", [4, None, None])) == Claim([0], [], [])
    run(index.release("a", [2]))
    assert run(index.claim("a", [None, None, 1])) == Claim([], [2], [])


@pytest.mark.parametrize(("new", "correct"), [(3, 2), (5, 5)])
def test_running_figures_add_up_per_version(new: int, correct: int) -> None:
    index = MemoryIndex(window=60, size=10)
    assert run(index.tally("v1", new, correct)) == (new, correct)
    assert run(index.tally("v1", 2, 1)) == (new + 2, correct + 1)
    assert run(index.tally("v2", 1, 0)) == (1, 0)
