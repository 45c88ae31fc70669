"""The outcome of one request, handed from the response builder to the decision step.

A context variable: the chain step (:mod:`serving.decisions.step`) opens a slot for a
request; :func:`note_outcome` (called by :mod:`serving.payloads`) fills it. Outside a
decision-recording request there is no slot and noting costs one lookup.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Outcome:
    """Arrays of one answered request (references, not copies: they are not mutated)."""

    samples: Any = None
    labels: Any = None
    probabilities: Any = None
    ood: Any = None
    ood_score: Any = None


outcome_var: ContextVar[Outcome | None] = ContextVar("digits_outcome", default=None)


def note_outcome(samples: Any, labels: Any, probabilities: Any, ood: Any, ood_score: Any) -> None:
    """Record what this request decided, if its decision is being recorded."""
    slot = outcome_var.get()
    if slot is not None:
        slot.samples, slot.labels, slot.probabilities = samples, labels, probabilities
        slot.ood, slot.ood_score = ood, ood_score
