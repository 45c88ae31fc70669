"""What a deciding request decided, handed from its handler to the decision step.

A deciding handler (a route declared with ``needs(..., decides=True)``, :mod:`serving.access`)
returns a :class:`DecidedResponse`: its encoded answer and the :class:`Decided` arrays the
answer was built from. The fast dispatch (:mod:`serving.http.dispatch`) puts the outcome in the
request's scope under :data:`OUTCOME`, where the decision step's answer hook reads it.
Nothing travels through a context variable, and a deciding route that answers 2xx without
an outcome is an error, not a silently missing record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from litestar import Response

OUTCOME = "digits.outcome"  # scope key: the Decided of the request's answer


@dataclass(frozen=True, slots=True)
class Decided:
    """Arrays of one answered request (references, not copies: they are not mutated)."""

    samples: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int64]
    probabilities: npt.NDArray[np.float32]
    ood: npt.NDArray[np.bool_]
    ood_score: npt.NDArray[np.float32]


class DecidedResponse(Response[bytes]):
    """A deciding handler's answer: the encoded body and what it decided."""

    __slots__ = ("outcome",)

    def __init__(self, content: bytes, outcome: Decided, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.outcome = outcome
